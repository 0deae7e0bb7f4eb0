package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
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
}

// statusTable is the one place errors become HTTP statuses. It is checked
// in order with errors.Is; anything not listed is a 500.
var statusTable = []statusRow{
	{errUnauthorized, http.StatusUnauthorized, "unauthorized", "Missing or wrong API key"},
	{errNotFound, http.StatusNotFound, "not-found", "No such route"},
	{errMethodNotAllowed, http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed"},
	{storage.ErrBadSignature, http.StatusForbidden, "bad-signature", "Upload URL invalid or expired"},
	{imageurl.ErrBadSignature, http.StatusForbidden, "bad-signature", "Image URL not signed, wrongly signed or expired"},
	{delivery.ErrNotServed, http.StatusForbidden, "not-served", "Not served by URL"},
	{imageurl.ErrMalformed, http.StatusBadRequest, "bad-request", "Malformed image URL"},
	{storage.ErrNotFound, http.StatusNotFound, "not-found", "No such object"},
	{errBadRequest, http.StatusBadRequest, "bad-request", "Malformed request"},
	{errRequestTimeout, http.StatusRequestTimeout, "request-timeout", "Request body too slow"},
	{errTooManyRequests, http.StatusTooManyRequests, "too-many-requests", "Too many requests in flight, retry later"},
	{storage.ErrInvalidKey, http.StatusBadRequest, "bad-key", "Invalid object key"},
	{storage.ErrUnsupported, http.StatusBadRequest, "bad-request", "Not supported by this store"},
	{storage.ErrConflict, http.StatusConflict, "conflict", "Conflict with a stored key or a running upload"},
	{imageproc.ErrBadOption, http.StatusBadRequest, "bad-option", "Invalid option"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Request body too large"},
	{imageproc.ErrTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Image too large"},
	{storage.ErrTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Object too large"},
	{imageproc.ErrUnsupported, http.StatusUnsupportedMediaType, "unsupported-format", "Not a supported image"},
	{errUnsupportedType, http.StatusUnsupportedMediaType, "unsupported-format", "Not a supported image type"},
	{imageproc.ErrUndecodable, http.StatusUnprocessableEntity, "undecodable", "Image cannot be decoded"},
	{imageproc.ErrUnsatisfiable, http.StatusUnprocessableEntity, "unsatisfiable", "Image cannot be made as asked"},
	{imageproc.ErrBusy, http.StatusServiceUnavailable, "busy", "Too busy, retry later"},
	{errBodyMemory, http.StatusServiceUnavailable, "busy", "Too busy, retry later"},
	{imageproc.ErrTimeout, http.StatusServiceUnavailable, "timeout", "Processing took too long, retry later"},
	{storage.ErrUnavailable, http.StatusServiceUnavailable, "storage-unavailable", "Storage unavailable, retry later"},
	{errNotConfigured, http.StatusServiceUnavailable, "not-configured", "Webhook not configured"},
	// The client went away: nothing reaches it, but the log says so.
	{context.Canceled, 499, "client-closed-request", "Client closed request"},
}

var internalRow = statusRow{nil, http.StatusInternalServerError, "internal", "Internal error"}

// retryAfterSeconds is the Retry-After of a 503 and a 429. A second is a
// few images' worth of work for every slot, time for some of a client's
// requests in flight to end; a longer wait would idle the server.
const retryAfterSeconds = "1"

func lookup(err error) statusRow {
	var maxBytes *http.MaxBytesError
	if errors.As(err, &maxBytes) {
		return statusRow{errTooLarge, http.StatusRequestEntityTooLarge, "too-large", "Request body too large"}
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
// mistakes. A 500 body says only "internal error".
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	row := lookup(err)
	log := zerolog.Ctx(r.Context())
	ev := log.Info()
	detail := err.Error()
	switch {
	case row.status == http.StatusServiceUnavailable || row.status == http.StatusTooManyRequests:
		ev = log.Warn()
	case row.status >= 500:
		ev = log.Error()
		detail = "internal error"
	}
	ev.Err(err).Int("status", row.status).Msg("request failed")

	h := w.Header()
	if row.status == http.StatusServiceUnavailable || row.status == http.StatusTooManyRequests {
		h.Set("Retry-After", retryAfterSeconds)
	}
	if row.status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="resizer"`)
	}
	h.Del("Content-Length")
	h.Del("Vary")
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(row.status)
	path := r.URL.Path
	_ = json.NewEncoder(w).Encode(api.Problem{
		Type:      "urn:resizer:problem:" + row.slug,
		Title:     row.title,
		Status:    row.status,
		Detail:    detail,
		Instance:  &path,
		RequestId: requestID(r.Context()),
	})
}
