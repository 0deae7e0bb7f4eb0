// Package httpapi is the HTTP face of the service: the routes (routes.go),
// their handlers, the middleware, and the one table that turns errors into
// statuses and RFC 9457 problem documents (errors.go).
package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
)

// Config is what the HTTP layer needs to know of the configuration.
type Config struct {
	// APIKeys, when not empty, are required on the image routes.
	APIKeys      []string
	MaxBodyBytes int64
	MaxDimension int
}

// Deps are the parts the handlers use.
type Deps struct {
	Logger    zerolog.Logger
	Processor *imageproc.Processor
	// Registry collects the HTTP metrics and serves /metrics.
	Registry *prometheus.Registry
	// Spec is the text of openapi.yaml, served at /openapi.yaml.
	Spec []byte
	// Checks are run by /readyz.
	Checks map[string]Check
	// Draining is set once the server is shutting down; /readyz then
	// answers 503.
	Draining *atomic.Bool
}

// New returns the service's handler. It fails when a dependency is missing
// or the metrics cannot be registered.
func New(cfg Config, d Deps) (http.Handler, error) {
	if d.Processor == nil || d.Registry == nil || d.Draining == nil || cfg.MaxBodyBytes <= 0 {
		return nil, fmt.Errorf("httpapi: incomplete configuration")
	}
	m, err := newHTTPMetrics(d.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	r := chi.NewRouter()
	r.Use(withRequestID, withLogging(d.Logger), m.withMetrics, withRecover, withSecurityHeaders)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, fmt.Errorf("%w: %s", errNotFound, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(allowed(r, req.URL.Path), ", "))
		writeError(w, req, fmt.Errorf("%w: %s %s", errMethodNotAllowed, req.Method, req.URL.Path))
	})
	addRoutes(r, cfg, d)
	return r, nil
}

// allowed lists the methods routed for path, for the Allow header that a
// 405 must carry.
func allowed(r chi.Routes, path string) []string {
	var ms []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if r.Match(chi.NewRouteContext(), m, path) {
			ms = append(ms, m)
		}
	}
	return ms
}
