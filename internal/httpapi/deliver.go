package httpapi

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
)

// imageServer is what GET /img/ needs of delivery.
type imageServer interface {
	Serve(ctx context.Context, r delivery.Request) (delivery.Image, error)
}

// deliverDeps are the parts of GET /img/.
type deliverDeps struct {
	delivery imageServer
	// keys verify signatures (URL_SIGNING_KEYS).
	keys [][]byte
	// unsignedPresets serves presets without a signature.
	unsignedPresets bool
	maxDimension    int
	// allowOrigin is the Access-Control-Allow-Origin of every answer.
	allowOrigin string
}

func newDeliverDeps(cfg Config, d Deps) deliverDeps {
	dd := deliverDeps{delivery: d.Delivery, unsignedPresets: cfg.UnsignedPresets, maxDimension: cfg.MaxDimension,
		allowOrigin: cfg.AllowOrigin}
	for _, k := range cfg.URLSigningKeys {
		dd.keys = append(dd.keys, []byte(k))
	}
	return dd
}

// handleDeliver serves GET (and HEAD) /img/{signature}/{options}/{key}:
// a stored original, as the options ask, by a URL the service signed (see
// imageurl). The signature is checked first, before the options are read
// or the store is asked anything; then the image comes from the derived
// cache, a stored variant or a render (delivery.Serve). A conditional
// request or a HEAD of a stored image reads no body.
func handleDeliver(d deliverDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.allowOrigin != "" {
			// One value for every origin, so nothing varies on Origin: a
			// CDN keeps one copy, and a script can read errors too.
			w.Header().Set("Access-Control-Allow-Origin", d.allowOrigin)
		}
		// The path as the client wrote it: the signature covers its bytes.
		u, err := imageurl.Parse(sentPath(r))
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := d.authorize(u, time.Now()); err != nil {
			writeError(w, r, err)
			return
		}
		if canonical, ok := canonicalUnsigned(u, r.URL.RawQuery != "" || r.URL.ForceQuery); !ok {
			// Anyone may write an unsigned URL, so anyone could spell one
			// image countless ways (%61 for a, %2F for /, a query string
			// that a CDN keys on), each a copy a CDN keeps apart, records
			// and has to invalidate: there is one spelling, and the others
			// are sent to it.
			w.Header().Set("Location", canonical)
			w.Header().Set("Cache-Control", redirectCacheControl)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		req := delivery.Request{Key: u.Key, Preset: u.Preset, Version: u.Version, Expires: u.Expires, Path: u.Path}
		var auto bool
		if u.Preset == "" {
			if req.Options, auto, err = optionsOf(u.Options, fieldList(r.Header, "Accept"), d.maxDimension); err != nil {
				writeError(w, r, err)
				return
			}
		}
		req.DescribeOnly = r.Method == http.MethodHead
		if inm := fieldList(r.Header, "If-None-Match"); inm != "" {
			req.Holds = func(etag string) bool { return matchesETag(inm, etag) }
		}
		img, err := d.delivery.Serve(r.Context(), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeImage(w, r, img, u.Key, auto)
	})
}

// sentPath is the request's path as the client sent it, every byte as it
// came: the signature covers those bytes, and a CDN keeps its copy under
// them. net/url's EscapedPath is not always that: a path holding a byte
// that must be escaped but came bare (a raw é, a bare ") is given escaped,
// so the bare spelling passed for the escaped one, signed or unsigned,
// though a CDN keeps it apart and no purge invalidates it (the markers
// hold the escaped one).
func sentPath(r *http.Request) string {
	p := r.RequestURI
	if !strings.HasPrefix(p, "/") {
		// The absolute form (http://host/path), as a proxy is sent, or no
		// request line at all (a request made in a test).
		_, rest, ok := strings.Cut(p, "://")
		i := strings.IndexByte(rest, '/')
		if !ok || i < 0 {
			return r.URL.EscapedPath()
		}
		p = rest[i:]
	}
	p, _, _ = strings.Cut(p, "?")
	return p
}

// writeImage answers with img, the image of the original key: a 304 when
// the client's If-None-Match names it, else the image (its body but for a
// HEAD). auto says its format was chosen by the Accept header.
func writeImage(w http.ResponseWriter, r *http.Request, img delivery.Image, key string, auto bool) {
	h := w.Header()
	h.Set("ETag", img.ETag)
	h.Set("Cache-Control", img.CacheControl)
	h.Set("Last-Modified", img.LastModified.UTC().Format(http.TimeFormat))
	h.Set("Cache-Status", cacheStatus[img.Outcome])
	if auto {
		h.Set("Vary", "Accept")
	}
	if matchesETag(fieldList(r.Header, "If-None-Match"), img.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", img.ContentType)
	if cd := disposition(key, img.ContentType); cd != "" {
		h.Set("Content-Disposition", cd)
	}
	h.Set("Content-Length", strconv.FormatInt(img.Size, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(img.Data)
	}
}

// cacheStatus is the Cache-Status (RFC 9211) of each outcome: a hit of
// the derived cache or of a stored variant, or a render, stored, made for
// this request or shared with others asking at the same time.
var cacheStatus = map[delivery.Outcome]string{
	delivery.Hit:      "resizer; hit",
	delivery.Variant:  "resizer; hit; detail=variant",
	delivery.Rendered: "resizer; fwd=miss; stored",
	delivery.Shared:   "resizer; fwd=miss; collapsed",
}

// authorize accepts a URL signed with one of the keys and not expired, or
// an unsigned preset where that is allowed: arbitrary sizes are never
// served unsigned, or anyone could order millions of renders. Errors wrap
// imageurl.ErrBadSignature.
func (d deliverDeps) authorize(u imageurl.URL, now time.Time) error {
	if u.Signature == imageurl.Unsigned {
		if d.unsignedPresets && u.Preset != "" && u.Expires.IsZero() {
			return nil
		}
		return fmt.Errorf("%w: unsigned, and only presets are served unsigned (DELIVERY_UNSIGNED_PRESETS)", imageurl.ErrBadSignature)
	}
	if len(d.keys) == 0 {
		return fmt.Errorf("%w: no URL_SIGNING_KEYS are configured", imageurl.ErrBadSignature)
	}
	return u.Verify(d.keys, now)
}

// disposition names the image for a browser's "save as": the original's
// file name with the extension of the format served (tom.jpg served as
// WebP saves as tom.webp, not as a .jpg holding WebP), shown inline. ""
// when the name cannot be written in the header.
func disposition(key, contentType string) string {
	name := path.Base(key)
	if f := imageproc.FormatOfType(contentType); f != imageproc.FormatUnknown {
		name = strings.TrimSuffix(name, path.Ext(name)) + "." + f.Ext()
	}
	return mime.FormatMediaType("inline", map[string]string{"filename": name})
}

// redirectCacheControl is the Cache-Control of a redirect to an unsigned
// URL's one spelling: it never changes.
const redirectCacheControl = "public, max-age=86400"

// canonicalUnsigned returns, for an unsigned URL, the one spelling that
// imageurl writes of it, and whether u (with a query string when query
// says so) is spelled so; a signed URL is spelled as its signer chose, and
// only its signer can spell it otherwise.
func canonicalUnsigned(u imageurl.URL, query bool) (string, bool) {
	if u.Signature != imageurl.Unsigned {
		return u.Path, true
	}
	canonical, err := imageurl.UnsignedPath(u.Request)
	if err != nil {
		return u.Path, true // not one authorize lets through
	}
	return canonical, canonical == u.Path && !query
}

// matchesETag reports whether an If-None-Match header names etag, by the
// weak comparison RFC 9110 asks of it ("*" names any).
func matchesETag(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == strings.TrimPrefix(etag, "W/") {
			return true
		}
	}
	return false
}
