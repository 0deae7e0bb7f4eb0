package storage

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The local store has no S3 to sign upload URLs, so it signs its own: an
// HMAC-SHA256 over the key, the expiry, the exact size, the content type
// and the metadata the upload is to carry, with a key kept in the store's
// directory so that URLs survive a restart.

// metaParam prefixes the query parameters that carry an upload's metadata:
// meta-focus=0.3,0.25 is the metadata focus.
const metaParam = "meta-"

// signingKeyFile holds the key, in the store's directory.
const signingKeyFile = ".signing-key"

// loadSigningKey reads the key from the store's root, creating it on first
// use.
func (d *Dir) loadSigningKey() ([]byte, error) {
	b, err := d.root.ReadFile(signingKeyFile)
	if err == nil && len(b) == 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := d.writeOwn(signingKeyFile, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}

// SignUpload returns the query parameters that allow one PUT of key with
// exactly size bytes of contentType, to be stored with the metadata meta,
// until expires. A key that the directory cannot hold is refused now
// (ErrInvalidKey, see checkKey), rather than when the upload arrives;
// metadata that checkMetadata refuses is an error.
func (d *Dir) SignUpload(key, contentType string, size int64, meta map[string]string, expires time.Time) (url.Values, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if d.signKey == nil {
		return nil, fmt.Errorf("sign upload %q: %w", key, errReadOnly)
	}
	if err := checkMetadata(meta); err != nil {
		return nil, fmt.Errorf("sign upload %q: %w", key, err)
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	n := strconv.FormatInt(size, 10)
	q := url.Values{
		"expires": {exp},
		"size":    {n},
		"type":    {contentType},
		"sig":     {d.sign(key, exp, n, contentType, meta)},
	}
	for k, v := range meta {
		q.Set(metaParam+k, v)
	}
	return q, nil
}

// VerifyUpload checks a PUT of key against its signed query: the signature,
// which covers the metadata parameters too (none may be added, changed or
// left out), the expiry, and that the request's size and content type are
// the ones signed. The error wraps ErrBadSignature and says which check
// failed.
func (d *Dir) VerifyUpload(key string, q url.Values, contentType string, size int64, now time.Time) error {
	if d.signKey == nil {
		return fmt.Errorf("%w: %w", ErrBadSignature, errReadOnly) // no key: no signature is good
	}
	exp, n, typ := q.Get("expires"), q.Get("size"), q.Get("type")
	got, err := hex.DecodeString(q.Get("sig"))
	if err != nil || len(got) == 0 || exp == "" || n == "" {
		return fmt.Errorf("%w: missing or malformed signature", ErrBadSignature)
	}
	meta, err := uploadMetadata(q)
	if err == nil && hasControl(key, exp, n, typ) {
		err = errors.New("control character")
	}
	if err != nil {
		return fmt.Errorf("%w: malformed query: %v", ErrBadSignature, err)
	}
	want, _ := hex.DecodeString(d.sign(key, exp, n, typ, meta))
	if !hmac.Equal(got, want) {
		return fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	if e, err := strconv.ParseInt(exp, 10, 64); err != nil || now.Unix() > e {
		return fmt.Errorf("%w: expired", ErrBadSignature)
	}
	if strconv.FormatInt(size, 10) != n {
		return fmt.Errorf("%w: body is %d bytes, the URL allows exactly %s", ErrBadSignature, size, n)
	}
	if contentType != typ {
		return fmt.Errorf("%w: Content-Type %q, the URL allows %q", ErrBadSignature, contentType, typ)
	}
	return nil
}

// uploadMetadata returns the metadata parameters of an upload URL's query,
// each given once and as checkMetadata allows, or nil when there are none.
func uploadMetadata(q url.Values) (map[string]string, error) {
	var meta map[string]string
	for k, vs := range q {
		name, ok := strings.CutPrefix(k, metaParam)
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("%s given %d times", k, len(vs))
		}
		if meta == nil {
			meta = map[string]string{}
		}
		meta[name] = vs[0]
	}
	return meta, checkMetadata(meta)
}

// hasControl reports whether any of ss holds a control character: with
// none in the signed fields, and metadata as checkMetadata allows, the
// signed text's lines read back one way only.
func hasControl(ss ...string) bool {
	for _, s := range ss {
		if strings.ContainsFunc(s, unicode.IsControl) {
			return true
		}
	}
	return false
}

// sign is the signature of an upload. The metadata follow the other
// fields, one line each in name order; a URL without metadata signs the
// text that URLs had before they carried any, so those stay valid.
func (d *Dir) sign(key, expires, size, contentType string, meta map[string]string) string {
	m := hmac.New(sha256.New, d.signKey)
	fmt.Fprintf(m, "PUT\n%s\n%s\n%s\n%s", key, expires, size, contentType)
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		fmt.Fprintf(m, "\n%s%s=%s", metaParam, k, meta[k])
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Presign returns a PUT of key to this server's own PUT /uploads/{key}, the
// URL a path (the server adds its base URL), signed for exactly r's type,
// size and metadata, and r.TTL. The local directory takes no form uploads
// (ErrUnsupported); other errors are SignUpload's.
func (d *Dir) Presign(_ context.Context, key string, r PresignRequest) (Presigned, error) {
	if r.Method != "" && r.Method != http.MethodPut {
		return Presigned{}, fmt.Errorf("%w: local storage takes PUT uploads only", ErrUnsupported)
	}
	exp := time.Now().Add(r.TTL)
	q, err := d.SignUpload(key, r.ContentType, r.Size, r.Metadata, exp)
	if err != nil {
		return Presigned{}, err
	}
	return Presigned{
		Method:    http.MethodPut,
		URL:       "/uploads/" + url.PathEscape(key) + "?" + q.Encode(),
		Headers:   map[string]string{"Content-Type": r.ContentType, "Content-Length": strconv.FormatInt(r.Size, 10)},
		ExpiresAt: exp,
	}, nil
}

// URL is where this server serves the object: ObjectPath.
func (d *Dir) URL(key string) string { return ObjectPath(key) }

// ObjectPath is where a server on the local directory serves the object
// key: GET /objects/{key}, the key one segment, as a path.
func ObjectPath(key string) string { return "/objects/" + url.PathEscape(key) }

// urlKeyFile holds the key of image URLs (GET /img/) when URL_SIGNING_KEYS
// is not set, in the store's directory: hidden, so no object's key can
// name it.
const urlKeyFile = ".url-signing-key"

// URLSigningKey returns the key that signs image URLs with local storage,
// 64 hex characters, created on first use and kept in the directory so
// that the server and `server sign` agree and URLs survive a restart.
// Errors are the file system's.
func (d *Dir) URLSigningKey() (string, error) {
	b, err := d.root.ReadFile(urlKeyFile)
	if err == nil && len(b) == 64 {
		return string(b), nil
	}
	if d.readOnly {
		return "", fmt.Errorf("URL signing key: %w", errReadOnly)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("URL signing key: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	key := hex.EncodeToString(raw)
	if err := d.writeOwn(urlKeyFile, []byte(key), 0o600); err != nil {
		return "", fmt.Errorf("URL signing key: %w", err)
	}
	return key, nil
}
