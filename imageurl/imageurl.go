// Package imageurl writes and reads the URLs by which resizer serves stored
// images:
//
//	/img/{signature}/{options}/{key}
//
// {key} is the store's whole key, its slashes kept as slashes and every
// other character a path may not hold percent-encoded. {options} is one
// path segment in the words of POST /resize (width=800&format=webp), with
// three words of its own: preset=NAME (a variant of VARIANTS, instead of
// options), v=ETAG (pins the source's version) and exp=UNIX (the moment the
// URL stops working). {signature} is the hex HMAC-SHA256, with one of the
// service's URL_SIGNING_KEYS, of the path from the slash after it, exactly
// as requested ("/width=800/uploads/cats/tom.jpg"); or "_" for a preset
// that the service serves unsigned.
//
// Applications import this package to make the URLs their pages use. It is
// plain Go, without cgo, and imports only the standard library; the server
// reads URLs with the same code.
package imageurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Prefix is the path under which the service serves images by URL.
const Prefix = "/img/"

// Unsigned stands in the signature's place in the URL of a preset that the
// service serves without a signature (DELIVERY_UNSIGNED_PRESETS).
const Unsigned = "_"

// The words of the options segment that are not image options.
const (
	wordPreset  = "preset"
	wordVersion = "v"
	wordExpires = "exp"
)

// The failures of reading a URL.
var (
	// ErrMalformed: the path is not one of these URLs, or a part of it
	// cannot be read.
	ErrMalformed = errors.New("malformed image URL")
	// ErrBadSignature: the signature is missing, does not match any key,
	// or the URL has expired.
	ErrBadSignature = errors.New("bad or expired URL signature")
)

// Request is what one URL asks for.
type Request struct {
	// Key is the store's whole key of the original ("uploads/cats/tom.jpg").
	Key string
	// Options are the options of POST /resize, each given once, such as
	// {"width": {"800"}, "format": {"auto"}}.
	Options url.Values
	// Preset is the name of a variant of VARIANTS, instead of Options.
	Preset string
	// Version, when set, is the ETag of the original (quotes optional):
	// the URL then names that version only, and its answer never changes.
	Version string
	// Expires, when not zero, is when the URL stops working, in whole
	// seconds (a fraction is dropped: the URL stops working no later than
	// asked), after the Unix epoch.
	Expires time.Time
}

// versionPattern is what an ETag must look like to pin a URL: S3's (hex,
// with "-N" for a multipart upload) and the local store's fit.
var versionPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// options writes the options segment: every word once, in the order of
// their names, so that one request always has one spelling (a CDN then
// keeps one copy).
func (r Request) options() (string, error) {
	words := map[string]string{}
	for name, vs := range r.Options {
		switch {
		case name == wordPreset || name == wordVersion || name == wordExpires:
			return "", fmt.Errorf("imageurl: %q is not an option: use Request.Preset, Version or Expires", name)
		case name == "" || len(vs) != 1:
			return "", fmt.Errorf("imageurl: option %q must have exactly one value", name)
		}
		words[name] = vs[0]
	}
	if r.Preset != "" {
		if len(r.Options) > 0 {
			return "", errors.New("imageurl: a preset takes no other options")
		}
		words[wordPreset] = r.Preset
	}
	if r.Version != "" {
		v := strings.Trim(r.Version, `"`)
		if !versionPattern.MatchString(v) {
			return "", fmt.Errorf("imageurl: version %q is not an ETag this scheme can carry", r.Version)
		}
		words[wordVersion] = v
	}
	if !r.Expires.IsZero() {
		// Parse takes a moment after the Unix epoch only: an earlier one
		// would be written into a URL that is malformed (a 400), not
		// expired.
		n := r.Expires.Unix()
		if n <= 0 {
			return "", fmt.Errorf("imageurl: expiry %s is not after 1970-01-01T00:00:00Z", r.Expires.UTC().Format(time.RFC3339))
		}
		words[wordExpires] = strconv.FormatInt(n, 10)
	}
	if len(words) == 0 {
		return "", errors.New("imageurl: no options: format=original asks for the original as it is, re-encoded")
	}
	names := make([]string, 0, len(words))
	for n := range words {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(escape(n))
		b.WriteByte('=')
		b.WriteString(escape(words[n]))
	}
	return b.String(), nil
}

// escape percent-encodes everything but letters, digits, "-._~" and the
// ",:" of values such as crop=10,10,200,200, which stay readable.
func escape(s string) string {
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~,:", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

// escapeKey writes a key as a path: each segment percent-encoded, slashes
// kept. Keys that a browser would rewrite (empty, "." or ".." segments)
// are refused.
func escapeKey(key string) (string, error) {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		if s == "" || s == "." || s == ".." {
			return "", fmt.Errorf("imageurl: key %q: empty, . or .. segment", key)
		}
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/"), nil
}

// signed is the part of a URL that is signed: the path from the slash
// after the signature.
func (r Request) signed() (string, error) {
	opts, err := r.options()
	if err != nil {
		return "", err
	}
	key, err := escapeKey(r.Key)
	if err != nil {
		return "", err
	}
	return "/" + opts + "/" + key, nil
}

// Signer makes signed URLs with one key: the first of the service's
// URL_SIGNING_KEYS.
type Signer struct{ key []byte }

// NewSigner returns a Signer with key, used as it is written (the bytes of
// the string).
func NewSigner(key string) Signer { return Signer{key: []byte(key)} }

// Path returns the path, from its leading slash, that asks for r. It fails
// when r cannot be written: a repeated or reserved option, a preset with
// options, nothing asked, a key with an empty, "." or ".." segment, a
// version that is not an ETag, or an expiry not after the Unix epoch.
func (s Signer) Path(r Request) (string, error) {
	signed, err := r.signed()
	if err != nil {
		return "", err
	}
	return Prefix + mac(s.key, signed) + signed, nil
}

// Srcset returns an <img srcset> value: r at each width, with its "w"
// descriptor, separated by commas.
func (s Signer) Srcset(r Request, widths ...int) (string, error) {
	parts := make([]string, len(widths))
	for i, w := range widths {
		q := url.Values{}
		for k, v := range r.Options {
			q[k] = v
		}
		q.Set("width", strconv.Itoa(w))
		r.Options = q
		p, err := s.Path(r)
		if err != nil {
			return "", err
		}
		parts[i] = p + " " + strconv.Itoa(w) + "w"
	}
	return strings.Join(parts, ", "), nil
}

// UnsignedPath returns the path of a preset that the service serves
// without a signature (when DELIVERY_UNSIGNED_PRESETS allows it). Anything
// but a preset, optionally pinned, is refused.
func UnsignedPath(r Request) (string, error) {
	if r.Preset == "" || len(r.Options) > 0 || !r.Expires.IsZero() {
		return "", errors.New("imageurl: only a preset, optionally pinned to a version, is served unsigned")
	}
	signed, err := r.signed()
	if err != nil {
		return "", err
	}
	return Prefix + Unsigned + signed, nil
}

func mac(key []byte, signed string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return hex.EncodeToString(m.Sum(nil))
}
