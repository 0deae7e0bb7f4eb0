package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/imageurl"
)

// withLogging attaches a logger carrying the request id to the request's
// context, for handlers and writeError, and writes one access line per
// request when it ends. Only the path is logged, never the query string,
// which may carry signatures; an image URL's signature, in its path, is
// left out too (logPath).
func withLogging(log zerolog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			l := log.With().Str("req_id", requestID(r.Context())).Logger()
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			defer func() {
				// Written whatever way the request ends: a connection
				// aborted (http.ErrAbortHandler, withRecover's answer to a
				// panic after the response began) is logged too, and says
				// so, then goes on aborting.
				v := recover()
				out := ww.BytesWritten()
				if r.Method == http.MethodHead {
					// The GET handler wrote its body (GetHead), and net/http
					// dropped it: nothing went out.
					out = 0
				}
				e := l.Info()
				if v != nil {
					e = l.Warn().Bool("aborted", true)
				}
				e.
					Str("method", r.Method).
					Str("path", logPath(r.URL.Path)).
					Str("route", routePattern(r)).
					Int("status", status(ww)).
					Int64("bytes_in", r.ContentLength).
					Int("bytes_out", out).
					Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
					Str("remote", r.RemoteAddr).
					Msg("request")
				if v != nil {
					panic(v)
				}
			}()
			next.ServeHTTP(ww, r.WithContext(l.WithContext(r.Context())))
		})
	}
}

// logPath is the path as the log writes it, in the access line and in
// the errors of routes not found or not allowed: an image URL's signature
// is a capability (an expiring URL may be the only way to a private
// image), so it becomes "-", whatever follows it and whatever the method;
// the options and key stay, for whoever reads the log to find the image.
func logPath(p string) string {
	rest, ok := strings.CutPrefix(p, imageurl.Prefix)
	if !ok || rest == "" {
		return p
	}
	sig, after, slash := strings.Cut(rest, "/")
	if sig == imageurl.Unsigned || sig == "-" {
		return p
	}
	if !slash {
		return imageurl.Prefix + "-"
	}
	return imageurl.Prefix + "-/" + after
}

// routePattern is the chi route that matched, or "unmatched"; a fixed set
// of values, fit for a metric label.
func routePattern(r *http.Request) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	return "unmatched"
}

// status is the status written, 200 when the handler wrote none.
func status(ww middleware.WrapResponseWriter) int {
	if s := ww.Status(); s != 0 {
		return s
	}
	return http.StatusOK
}
