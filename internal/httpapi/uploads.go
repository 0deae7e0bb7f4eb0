package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// uploader is what the upload routes need of the pipeline.
type uploader interface {
	Upload(ctx context.Context, key string, data []byte, meta map[string]string) (pipeline.Result, error)
	InputKey(name string) (string, error)
	CheckUpload(key string, f imageproc.Format) error
	NewKey(f imageproc.Format, now time.Time) string
	Announce(ctx context.Context, res pipeline.Result)
}

// manifests says where the manifest of an original is (pipeline's), for a
// client that uploads straight to storage to wait for.
type manifests interface {
	ManifestKey(key string) string
	ManifestURL(key string) string
}

// uploadDeps are the parts of the upload routes.
type uploadDeps struct {
	pipeline  uploader
	manifests manifests
	intake    *intake // reads the image bodies
	objects   Store
	local     LocalStore // the same store when it is the local directory, else nil
	maxBody   int64
	types     map[string]bool // media types a presigned upload may have
	expiry    time.Duration
	baseURL   string // of this server, in its own upload URLs
}

// handleUpload serves POST /uploads: the original in the body, stored with
// its variants, and with its focal point when the query gives one.
func handleUpload(d uploadDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err == nil {
			for k, vs := range q {
				switch {
				case k != "key" && k != "focus":
					err = fmt.Errorf("unknown parameter %q (known: key, focus)", k)
				case len(vs) > 1:
					// Which one a client meant is not ours to guess: the
					// first would store the original under a key, or with
					// a focus, that the client may never look for.
					err = fmt.Errorf("%s given %d times", k, len(vs))
				case k == "key" && vs[0] == "":
					// An empty key is a client's variable left unset, not
					// a request for a new key: that is the key left out.
					err = errors.New("key is empty (leave it out for a new key)")
				}
			}
		}
		if err != nil {
			writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		var focus *string
		if q.Has("focus") {
			f := q.Get("focus")
			focus = &f
		}
		meta, err := focusMetadata(focus)
		if err != nil {
			writeError(w, r, err)
			return
		}
		d.store(w, r, q.Get("key"), true, meta, imageproc.FormatUnknown)
	})
}

// focusMetadata reads the focal point of an upload (the query parameter of
// POST /uploads, the field of a presign) into the metadata that keep it
// with the original: nil without one. The error wraps
// imageproc.ErrBadOption, as the focus option of /resize does.
func focusMetadata(focus *string) (map[string]string, error) {
	if focus == nil {
		return nil, nil
	}
	p, err := pipeline.ParseFocus(*focus)
	if err != nil {
		return nil, err
	}
	return pipeline.FocusMetadata(&p), nil
}

// store reads the image in the body and uploads it under name (below the
// input prefix; empty: a new key), or under the whole key when relative is
// false, with the metadata meta. Unless want is FormatUnknown, the image
// must be of that format (errUnsupportedType).
func (d uploadDeps) store(w http.ResponseWriter, r *http.Request, name string, relative bool, meta map[string]string, want imageproc.Format) {
	body, err := d.intake.take(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer body.close()
	data := body.Bytes()
	if got := imageproc.Sniff(data); want != imageproc.FormatUnknown && got != want {
		writeError(w, r, fmt.Errorf("%w: the body is not %s, the type the upload URL is for (it looks like %s)",
			errUnsupportedType, want.ContentType(), got.ContentType()))
		return
	}
	key := name
	switch {
	case name == "":
		key = d.pipeline.NewKey(imageproc.Sniff(data), time.Now())
	case relative:
		key, err = d.pipeline.InputKey(name)
	}
	var res pipeline.Result
	if err == nil {
		res, err = d.pipeline.Upload(r.Context(), key, data, meta)
	}
	body.free()
	if err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Location", d.objects.URL(res.Key))
	writeJSON(w, http.StatusCreated, uploadJSON(res))
	// The ready signal goes after the answer, and once the gate place
	// and the client's count are given back: its receiver, slow or down,
	// may take its retries' whole bound (15 s), in which an upload that
	// held them would shut out other images (503) while no image is
	// being made.
	body.close()
	_ = http.NewResponseController(w).Flush()
	d.pipeline.Announce(r.Context(), res)
}

// uploadJSON is the answer to an upload: the manifest the pipeline wrote,
// and the focus the variants were made with.
func uploadJSON(res pipeline.Result) api.Upload {
	m := res.Manifest
	if m == nil { // a pipeline that wrote none: a fault of the server's
		m = &pipeline.Manifest{}
	}
	out := api.Upload{Key: res.Key, Etag: res.ETag, Bytes: res.Bytes, Width: res.Width, Height: res.Height,
		Format: api.UploadFormat(res.Format.String()), Srcset: m.Srcset, Variants: make([]api.UploadVariant, len(m.Variants))}
	if len(m.ThumbHash) > 0 {
		out.Thumbhash = &m.ThumbHash
	}
	if m.DominantColor != "" {
		out.DominantColor = &m.DominantColor
	}
	for i, v := range m.Variants {
		out.Variants[i] = api.UploadVariant{Name: v.Name, Key: v.Key, Url: v.URL, Width: v.Width, Height: v.Height,
			Bytes: v.Bytes, Format: api.UploadVariantFormat(v.Format), Digest: v.Digest}
	}
	if res.Focus != nil {
		f := pipeline.FormatFocus(*res.Focus)
		out.Focus = &f
	}
	return out
}

// maxPresignBody bounds the JSON of a presign request.
const maxPresignBody = 16 << 10

// handlePresign serves POST /uploads/presign: a URL to upload one original
// straight to storage, refused before it is issued when the type, the size
// or the focus is not allowed. The focus is bound into the upload, so that
// the store keeps it as the original's metadata. The answer says where the
// original's manifest will be, which is written once its variants are.
func handlePresign(d uploadDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.PresignRequest
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxPresignBody))
		dec.DisallowUnknownFields()
		err := dec.Decode(&req)
		if err == nil {
			// One document: whatever follows it is a client's mistake (two
			// requests concatenated, a half-edited body) that would
			// otherwise be signed as the first one says.
			if _, terr := dec.Token(); terr != io.EOF {
				err = errors.New("more than one JSON value")
			}
		}
		var tooLong *http.MaxBytesError
		switch {
		case errors.As(err, &tooLong):
			writeError(w, r, fmt.Errorf("%w: presign request over %d bytes", errTooLarge, maxPresignBody))
			return
		case isTimeout(err):
			// The body stalled past READ_TIMEOUT (http.Server's deadline):
			// a 408 as on every route, not JSON the client got wrong.
			writeError(w, r, fmt.Errorf("presign request: %w", readError(err, nil)))
			return
		case err != nil:
			writeError(w, r, fmt.Errorf("%w: presign request: %v", errBadRequest, err))
			return
		}
		// Media types are case-insensitive (RFC 9110, 8.3.1): the URL is
		// signed for the lower-case spelling, which the answer's headers
		// give back to send.
		ct := strings.ToLower(req.ContentType)
		switch {
		case ct == "":
			// Left out (null, {}): a malformed request, not a type refused.
			writeError(w, r, fmt.Errorf("%w: presign request: content_type is required", errBadRequest))
			return
		case !d.types[ct]:
			writeError(w, r, fmt.Errorf("%w: content type %q is not an accepted image type", errUnsupportedType, ct))
			return
		case req.Size <= 0:
			writeError(w, r, fmt.Errorf("%w: size must be positive", errBadRequest))
			return
		case req.Size > d.maxBody:
			writeError(w, r, fmt.Errorf("%w: %d bytes, over the limit of %d", errTooLarge, req.Size, d.maxBody))
			return
		}
		meta, err := focusMetadata(req.Focus)
		if err != nil {
			writeError(w, r, err)
			return
		}
		format := imageproc.FormatOfType(ct)
		key := d.pipeline.NewKey(format, time.Now())
		if req.Key != nil {
			var err error
			if key, err = d.pipeline.InputKey(*req.Key); err != nil {
				writeError(w, r, err)
				return
			}
		}
		// The upload goes straight to the store: a key whose outputs the
		// store cannot hold is refused now, as POST /uploads refuses it,
		// not rejected by its event once stored.
		if err := d.pipeline.CheckUpload(key, format); err != nil {
			writeError(w, r, err)
			return
		}
		var method string
		if req.Method != nil {
			method = string(*req.Method)
		}
		p, err := d.objects.Presign(r.Context(), key, storage.PresignRequest{Method: method, ContentType: ct, Size: req.Size,
			TTL: d.expiry, Metadata: meta})
		if err != nil {
			writeError(w, r, err)
			return
		}
		if strings.HasPrefix(p.URL, "/") {
			p.URL = d.baseURL + p.URL // this server's own upload route
		}
		out := api.Presigned{Method: api.PresignedMethod(p.Method), Url: p.URL, Key: key, ExpiresAt: p.ExpiresAt.UTC(),
			MaxBytes: &req.Size, ManifestKey: d.manifests.ManifestKey(key)}
		if mu := d.manifests.ManifestURL(key); mu != "" {
			if strings.HasPrefix(mu, "/") {
				mu = d.baseURL + mu // this server's own /objects/ route
			}
			out.ManifestUrl = &mu
		}
		if p.Fields != nil {
			out.Fields = &p.Fields
		}
		if p.Headers != nil {
			out.Headers = &p.Headers
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// handlePutUpload serves PUT /uploads/{key}, the target of the local
// store's presigned URLs, and stores the upload with the metadata signed
// into its URL (its focus). A URL allows one upload: it is claimed for the
// request (a concurrent one with the same URL gets a 409), used up by a
// 2xx answer, and given back by any other.
func handlePutUpload(d uploadDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := pathKey(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if r.ContentLength < 0 {
			// A chunked body's size is known only at its end; the URL
			// fixes it, and S3 refuses such a PUT too. Said as such, not
			// as a signature that does not match (403), which would send
			// the client after a fault its URL does not have.
			writeError(w, r, fmt.Errorf("%w: the upload URL is for an exact size: send the body with Content-Length, not chunked",
				errLengthRequired))
			return
		}
		claim, err := d.local.ClaimUpload(key, r.URL.Query(), r.Header.Get("Content-Type"), r.ContentLength, time.Now())
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer claim.Release()
		// The bytes must be of the type the URL was signed for, as the
		// Content-Type just verified says: the presign refused types it
		// does not take, and chose the key's extension, by that type.
		want := imageproc.FormatOfType(r.Header.Get("Content-Type"))
		d.store(&useOnSuccess{ResponseWriter: w, r: r, use: claim.Use}, r, key, false, claim.Metadata(), want)
	})
}

// handleGetObject serves GET /objects/{key} from the local store: a 304
// when the client's If-None-Match names the stored object.
func handleGetObject(local LocalStore) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := pathKey(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		data, obj, err := local.Get(r.Context(), key, storage.GetOptions{})
		if err != nil {
			writeError(w, r, err)
			return
		}
		// The type is the bytes', never the stored one, but for the
		// service's own manifests (the manifest_url of a presign answer):
		// every upload is an image.
		f := imageproc.Sniff(data)
		ct := f.ContentType()
		if f == imageproc.FormatUnknown && obj.ContentType == "application/json" && json.Valid(data) {
			ct = "application/json"
		}
		h := w.Header()
		h.Set("ETag", obj.ETag)
		if obj.CacheControl != "" {
			h.Set("Cache-Control", obj.CacheControl)
		}
		if !obj.LastModified.IsZero() {
			h.Set("Last-Modified", obj.LastModified.UTC().Format(http.TimeFormat))
		}
		// A browser revisiting a page of variants asks whether its copy
		// is still the stored one, as it does of delivery's images.
		if matchesETag(fieldList(r.Header, "If-None-Match"), obj.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h.Set("Content-Type", ct)
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
	})
}

// pathKey is the {key} of the route, percent-decoded exactly once: keys
// hold slashes, which the URL carries as %2F. chi routes on r.URL.RawPath
// when the request has one (its path holds an escape that the decoded
// Path cannot show, such as %2F), and its parameters are then still
// escaped; otherwise it routes on Path, decoded already, and decoding
// again would make %252F a slash.
func pathKey(r *http.Request) (string, error) {
	k := chi.URLParam(r, "key")
	if r.URL.RawPath == "" {
		return k, nil
	}
	k, err := url.PathUnescape(k)
	if err != nil {
		return "", fmt.Errorf("%w: key: %v", errBadRequest, err)
	}
	return k, nil
}
