package imageurl

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// URL is a request path read back: what it asks for, and its signature.
type URL struct {
	Request
	// Signature is the hex signature as written, or Unsigned.
	Signature string
	// Path is the whole path as requested, escaped: the one a CDN caches
	// the answer under.
	Path string
	// signed is the part the signature covers.
	signed string
}

// Parse reads a path as the client sent it, escaped (net/url's
// EscapedPath, not the decoded Path: the signature covers the bytes as
// written). Image options are returned as they are, unchecked: they are
// the service's to read. Errors wrap ErrMalformed.
func Parse(escapedPath string) (URL, error) {
	bad := func(format string, a ...any) (URL, error) {
		return URL{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	rest, ok := strings.CutPrefix(escapedPath, Prefix)
	if !ok {
		return bad("not under %s", Prefix)
	}
	if strings.Contains(rest, "*") {
		// A CDN's invalidation takes * for a wildcard: a path holding one
		// could not be invalidated exactly.
		return bad("* must be written %%2A")
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return bad("want %s{signature}/{options}/{key}", Prefix)
	}
	u := URL{Signature: parts[0], Path: escapedPath, signed: "/" + parts[1] + "/" + parts[2]}
	segs := strings.Split(parts[2], "/")
	for i, s := range segs {
		d, err := url.PathUnescape(s)
		if err != nil {
			return bad("key segment %q", s)
		}
		segs[i] = d
	}
	u.Key = strings.Join(segs, "/")
	// Checked once decoded: an encoded slash (%2F) must not bring back a
	// segment that a browser would rewrite, or that leads up ("%2E%2E%2F").
	for _, s := range strings.Split(u.Key, "/") {
		if s == "" || s == "." || s == ".." {
			return bad("key %q has an empty, . or .. segment", u.Key)
		}
	}
	q, err := url.ParseQuery(parts[1])
	if err != nil {
		return bad("options: %v", err)
	}
	for name, vs := range q {
		if len(vs) != 1 {
			return bad("%s given %d times", name, len(vs))
		}
	}
	u.Preset, u.Version = take(q, wordPreset), take(q, wordVersion)
	if u.Version != "" && !versionPattern.MatchString(u.Version) {
		return bad("v=%q is not an ETag", u.Version)
	}
	if exp := take(q, wordExpires); exp != "" {
		// A time.Time holds seconds from year 1 in an int64: the last
		// 62,135,596,800 int64 values of Unix seconds overflow it into the
		// past, an expiry in 292 billion years that had always passed.
		n, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || n <= 0 || !time.Unix(n, 0).After(time.Unix(0, 0)) {
			return bad("exp=%q is not a time in Unix seconds", exp)
		}
		u.Expires = time.Unix(n, 0)
	}
	if u.Preset != "" && len(q) > 0 {
		return bad("preset=%s takes no other options (v and exp aside)", u.Preset)
	}
	if len(q) > 0 {
		u.Options = q
	}
	return u, nil
}

// take removes the word name from q and returns its value.
func take(q url.Values, name string) string {
	v := q.Get(name)
	delete(q, name)
	return v
}

// Verify checks the signature against each of keys, in constant time for
// each, and then the expiry. An unsigned URL never verifies: serving one
// is the caller's decision. The error wraps ErrBadSignature and says which
// check failed.
func (u URL) Verify(keys [][]byte, now time.Time) error {
	if u.Signature == Unsigned {
		return fmt.Errorf("%w: not signed", ErrBadSignature)
	}
	// Lower-case hex only, as the signers write it: hex.DecodeString takes
	// either case, and a signature that could be spelled 2^n ways would
	// let anyone who sees one URL make countless paths for one image, each
	// a CDN miss and, with a CDN, a path to record and to invalidate.
	got, err := hex.DecodeString(u.Signature)
	if err != nil || len(got) != sha256.Size || strings.ToLower(u.Signature) != u.Signature {
		return fmt.Errorf("%w: malformed signature", ErrBadSignature)
	}
	ok := false
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(u.signed))
		// Every key is tried, whichever matches: the time taken says
		// nothing about which one did.
		if hmac.Equal(got, m.Sum(nil)) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: signature does not match", ErrBadSignature)
	}
	if !u.Expires.IsZero() && now.After(u.Expires) {
		return fmt.Errorf("%w: expired at %s", ErrBadSignature, u.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}
