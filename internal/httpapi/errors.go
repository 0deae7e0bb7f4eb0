package httpapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// The failures that belong to the HTTP layer itself.
var (
	errBadRequest       = errors.New("bad request")
	errTooLarge         = errors.New("request body too large")
	errUnauthorized     = errors.New("unauthorized")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errUnsupportedType  = errors.New("unsupported media type")
	// errRequestTimeout: a body that did not arrive in time (READ_TIMEOUT)
	// or fast enough (MIN_BODY_RATE).
	errRequestTimeout = errors.New("request body timed out")
	// errLengthRequired: a signed upload sent without Content-Length
	// (chunked), whose size its URL fixes.
	errLengthRequired = errors.New("content length required")
	// errTooManyRequests: a client address or API key at MAX_PER_CLIENT.
	errTooManyRequests = errors.New("too many requests in flight")
	// errBodyMemory: the memory for request bodies (BODY_MEMORY) is taken.
	errBodyMemory = errors.New("request body memory exhausted")
)

// statusRow maps one kind of error to the status and problem type it gets.
type statusRow struct {
	err    error
	status int
	slug   string // the problem type is urn:resizer:problem:<slug>
	title  string
	// retryAfter is the Retry-After of a 503 or a 429 when it is not
	// retryAfterSeconds.
	retryAfter string
	// fault marks a 503 that is the service's own fault, not load: logged
	// at error level, its detail kept from the client as a 500's is.
	fault bool
}

// statusTable is the one place errors become HTTP statuses. It is checked
// in order with errors.Is; anything not listed is a 500.
var statusTable = []statusRow{
	{err: errUnauthorized, status: http.StatusUnauthorized, slug: "unauthorized", title: "Missing or wrong API key"},
	{err: errNotFound, status: http.StatusNotFound, slug: "not-found", title: "No such route"},
	{err: errMethodNotAllowed, status: http.StatusMethodNotAllowed, slug: "method-not-allowed", title: "Method not allowed"},
	{err: storage.ErrBadSignature, status: http.StatusForbidden, slug: "bad-signature", title: "Upload URL invalid or expired"},
	{err: imageurl.ErrBadSignature, status: http.StatusForbidden, slug: "bad-signature", title: "Image URL not signed, wrongly signed or expired"},
	{err: delivery.ErrNotServed, status: http.StatusForbidden, slug: "not-served", title: "Not served by URL"},
	{err: imageurl.ErrMalformed, status: http.StatusBadRequest, slug: "bad-request", title: "Malformed image URL"},
	{err: storage.ErrNotFound, status: http.StatusNotFound, slug: "not-found", title: "No such object"},
	{err: errBadRequest, status: http.StatusBadRequest, slug: "bad-request", title: "Malformed request"},
	{err: errRequestTimeout, status: http.StatusRequestTimeout, slug: "request-timeout", title: "Request body too slow"},
	{err: errLengthRequired, status: http.StatusLengthRequired, slug: "length-required", title: "Content-Length required"},
	{err: errTooManyRequests, status: http.StatusTooManyRequests, slug: "too-many-requests", title: "Too many requests in flight, retry later"},
	{err: storage.ErrInvalidKey, status: http.StatusBadRequest, slug: "bad-key", title: "Invalid object key"},
	{err: storage.ErrUnsupported, status: http.StatusBadRequest, slug: "bad-request", title: "Not supported by this store"},
	{err: storage.ErrConflict, status: http.StatusConflict, slug: "conflict", title: "Conflict with a stored key or a running upload"},
	{err: pipeline.ErrKeyTaken, status: http.StatusConflict, slug: "conflict", title: "Conflict with a stored key or a running upload"},
	// A watermark that VARIANTS names and the store lacks: the operator's
	// to store, not the uploader's mistake (a bad option), nor load.
	{err: pipeline.ErrMisconfigured, status: http.StatusServiceUnavailable, slug: "misconfigured",
		title: "Service misconfigured, retry later", retryAfter: misconfiguredRetryAfter, fault: true},
	{err: imageproc.ErrBadOption, status: http.StatusBadRequest, slug: "bad-option", title: "Invalid option"},
	{err: errTooLarge, status: http.StatusRequestEntityTooLarge, slug: "too-large", title: "Request body too large"},
	{err: imageproc.ErrTooLarge, status: http.StatusRequestEntityTooLarge, slug: "too-large", title: "Image too large"},
	{err: storage.ErrTooLarge, status: http.StatusRequestEntityTooLarge, slug: "too-large", title: "Object too large"},
	{err: imageproc.ErrUnsupported, status: http.StatusUnsupportedMediaType, slug: "unsupported-format", title: "Not a supported image"},
	{err: errUnsupportedType, status: http.StatusUnsupportedMediaType, slug: "unsupported-format", title: "Not a supported image type"},
	{err: imageproc.ErrUndecodable, status: http.StatusUnprocessableEntity, slug: "undecodable", title: "Image cannot be decoded"},
	{err: imageproc.ErrUnsatisfiable, status: http.StatusUnprocessableEntity, slug: "unsatisfiable", title: "Image cannot be made as asked"},
	{err: imageproc.ErrBusy, status: http.StatusServiceUnavailable, slug: "busy", title: "Too busy, retry later"},
	{err: errBodyMemory, status: http.StatusServiceUnavailable, slug: "busy", title: "Too busy, retry later"},
	{err: imageproc.ErrTimeout, status: http.StatusServiceUnavailable, slug: "timeout", title: "Processing took too long, retry later"},
	{err: storage.ErrUnavailable, status: http.StatusServiceUnavailable, slug: "storage-unavailable", title: "Storage unavailable, retry later"},
	{err: errNotConfigured, status: http.StatusServiceUnavailable, slug: "not-configured", title: "Webhook not configured"},
	// The client went away: nothing reaches it, but the log says so.
	{err: context.Canceled, status: 499, slug: "client-closed-request", title: "Client closed request"},
}

var internalRow = statusRow{status: http.StatusInternalServerError, slug: "internal", title: "Internal error"}

// retryAfterSeconds is the Retry-After of a 503 and a 429. A second is a
// few images' worth of work for every slot, time for some of a client's
// requests in flight to end; a longer wait would idle the server.
const retryAfterSeconds = "1"

// misconfiguredRetryAfter is the Retry-After of a configuration at fault:
// a person has to mend it, so a retry within a second would only fail
// again; half a minute is still short enough for an uploader who waits.
const misconfiguredRetryAfter = "30"

func lookup(err error) statusRow {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return statusRow{err: errTooLarge, status: http.StatusRequestEntityTooLarge, slug: "too-large", title: "Request body too large"}
	}
	for _, row := range statusTable {
		if errors.Is(err, row.err) {
			return row
		}
	}
	return internalRow
}

// writeError answers a failed request with an RFC 9457 problem document,
// and is the one place a failure is logged: at error level for a fault of
// the service, warn for load shedding (503, 429), info for the client's
// mistakes. A 500 body says only "internal error"; a 503 that is the
// service's fault (its configuration) only its title.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	row := lookup(err)
	log := zerolog.Ctx(r.Context())
	ev := log.Info()
	detail := oneLine(err.Error())
	switch {
	case row.fault:
		ev = log.Error()
		detail = row.title
	case row.status == http.StatusServiceUnavailable || row.status == http.StatusTooManyRequests:
		ev = log.Warn()
	case row.status >= 500:
		ev = log.Error()
		detail = "internal error"
	}
	ev.Err(err).Int("status", row.status).Msg("request failed")

	h := w.Header()
	if row.status == http.StatusServiceUnavailable || row.status == http.StatusTooManyRequests {
		h.Set("Retry-After", cmp.Or(row.retryAfter, retryAfterSeconds))
	}
	if row.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="resizer"`)
	}
	h.Del("Content-Length")
	h.Del("Vary")
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(row.status)
	// The path as it was sent, escapes kept: the decoded one is no URI
	// reference (spaces, any byte) and, decoded, a key's %2F would make
	// it name another resource.
	path := r.URL.EscapedPath()
	_ = json.NewEncoder(w).Encode(api.Problem{
		Type:      "urn:resizer:problem:" + row.slug,
		Title:     row.title,
		Status:    row.status,
		Detail:    detail,
		Instance:  &path,
		RequestId: requestID(r.Context()),
	})
}

// maxDetail bounds a problem's detail, in bytes: a decoder's message can
// run to many lines, each warning it met.
const maxDetail = 300

// oneLine is msg as a problem's detail: its lines joined with "; ", a
// line that repeats the one before it dropped, cut at maxDetail (on a
// rune's boundary) with "…".
func oneLine(msg string) string {
	var lines []string
	for l := range strings.Lines(msg) {
		if l = strings.TrimSpace(l); l != "" && (len(lines) == 0 || lines[len(lines)-1] != l) {
			lines = append(lines, l)
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) <= maxDetail {
		return s
	}
	cut := maxDetail
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
