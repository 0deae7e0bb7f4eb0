// Package httpapi is the HTTP face of the service: the routes (routes.go),
// their handlers, the middleware, and the one table that turns errors into
// statuses and RFC 9457 problem documents (errors.go).
package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/webhook"
)

// Config is what the HTTP layer needs to know of the configuration.
type Config struct {
	// APIKeys, when not empty, are required on the image routes.
	APIKeys      []string
	MaxBodyBytes int64
	MaxDimension int
	// BodyMemory bounds the buffers of the image bodies in flight, read or
	// being read; at least 2 x MaxBodyBytes (a body grows by doubling).
	BodyMemory int64
	// ReadTimeout bounds the reading of an image body, MinBodyRate (bytes
	// per second; 0: none) with MinBodyRateGrace of slack its pace.
	ReadTimeout      time.Duration
	MinBodyRate      int64
	MinBodyRateGrace time.Duration
	// MaxPerClient bounds the image requests in flight per client address
	// and per API key; 0: no bound. The client address of a request from
	// one of TrustedProxies is read from X-Forwarded-For.
	MaxPerClient   int
	TrustedProxies []netip.Prefix
	// UploadTypes are the media types a presigned upload may declare.
	UploadTypes []string
	// PresignExpiry is how long an upload URL stays valid.
	PresignExpiry time.Duration
	// PublicURL is this server's base URL in its own upload URLs; empty:
	// http:// and ListenAddr.
	PublicURL string
	// ListenAddr is the address the server's listener got (host:port, the
	// real port when port 0 was asked for). Upload URLs are never built
	// from a request's Host header, which the client chooses.
	ListenAddr string
	// WebhookSecrets sign and authorize POST /webhooks/s3; empty: the
	// webhook answers 503 and accepts nothing.
	WebhookSecrets []string
	// WebhookMaxBytes and WebhookMaxRecords bound one webhook request.
	WebhookMaxBytes   int64
	WebhookMaxRecords int
	// InputBucket is the bucket whose events are processed (S3 storage).
	InputBucket string
	// UI serves the pages at / and /docs.
	UI bool
	// URLSigningKeys verify the signatures of image URLs (GET /img/);
	// UnsignedPresets serves presets there without one.
	URLSigningKeys  []string
	UnsignedPresets bool
	// AllowOrigin, when set, is the Access-Control-Allow-Origin of every
	// answer there: "*" or one origin.
	AllowOrigin string
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
	// Pipeline stores originals and makes their variants.
	Pipeline *pipeline.Pipeline
	// Store is where originals are uploaded (S3 or the local directory).
	// A store that takes the uploads of its own URLs and serves objects
	// (LocalStore: the local directory) also gets PUT /uploads/{key} and
	// GET /objects/{key}.
	Store Store
	// Delivery serves images by URL (GET /img/), and forgets what was
	// derived from originals that change.
	Delivery *delivery.Service
}

// Store is what the upload routes need of the store originals go to.
type Store interface {
	// URL is where a stored object can be read (the Location of an upload).
	URL(key string) string
	// Presign issues an upload URL; a relative one is this server's own.
	Presign(ctx context.Context, key string, r storage.PresignRequest) (storage.Presigned, error)
}

// LocalStore is a Store whose upload URLs point at this server, which then
// takes the uploads itself, and which this server reads objects from.
type LocalStore interface {
	Store
	ClaimUpload(key string, q url.Values, contentType string, size int64, now time.Time) (*storage.UploadClaim, error)
	Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error)
}

// New returns the service's handler. It fails when a dependency is missing
// or the metrics cannot be registered.
func New(cfg Config, d Deps) (http.Handler, error) {
	_, local := d.Store.(LocalStore)
	var bad []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Deps.Processor", d.Processor != nil}, {"Deps.Registry", d.Registry != nil}, {"Deps.Draining", d.Draining != nil},
		{"Deps.Pipeline", d.Pipeline != nil}, {"Deps.Store", d.Store != nil}, {"Deps.Delivery", d.Delivery != nil},
		{"MaxBodyBytes", cfg.MaxBodyBytes > 0}, {"BodyMemory (at least twice MaxBodyBytes)", cfg.BodyMemory >= 2*cfg.MaxBodyBytes},
		{"WebhookMaxBytes", cfg.WebhookMaxBytes > 0}, {"WebhookMaxRecords", cfg.WebhookMaxRecords > 0},
		{"PublicURL or ListenAddr (a local store's URLs)", !local || cfg.PublicURL != "" || cfg.ListenAddr != ""},
		{"MinBodyRate", cfg.MinBodyRate >= 0}, {"MinBodyRateGrace", cfg.MinBodyRate <= 0 || cfg.MinBodyRateGrace > 0},
		{"MaxPerClient", cfg.MaxPerClient >= 0},
	} {
		if !f.ok {
			bad = append(bad, f.name)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("httpapi: missing or out of range: %s", strings.Join(bad, ", "))
	}
	m, err := newHTTPMetrics(d.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	r := chi.NewRouter()
	// GetHead routes HEAD as GET where no HEAD route is listed: every GET
	// route answers HEAD with its status and headers, and net/http drops
	// the body. openapi.yaml says so once rather than per route.
	r.Use(withRequestID, withLogging(d.Logger), m.withMetrics, withRecover, withSecurityHeaders, middleware.GetHead)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, fmt.Errorf("%w: %s", errNotFound, logPath(r.URL.Path)))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		ms := allowed(r, routingPath(req))
		if len(ms) == 0 {
			// chi answers a method it has no route for at all (FOO) here,
			// whatever the path: a path no route serves is not found.
			writeError(w, req, fmt.Errorf("%w: %s", errNotFound, logPath(req.URL.Path)))
			return
		}
		w.Header().Set("Allow", strings.Join(ms, ", "))
		writeError(w, req, fmt.Errorf("%w: %s %s", errMethodNotAllowed, req.Method, logPath(req.URL.Path)))
	})
	wm, err := newWebhookMetrics(d.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	wd := webhookDeps{pipeline: purgingRunner{runner: d.Pipeline, purger: d.Delivery}, bucket: cfg.InputBucket, maxBytes: cfg.WebhookMaxBytes,
		maxRecords: cfg.WebhookMaxRecords, metrics: wm, tokens: newKeyring(cfg.WebhookSecrets), secrets: webhook.Secrets(cfg.WebhookSecrets)}
	in, err := newIntake(d.Processor.Gate(), cfg, d.Registry)
	if err != nil {
		return nil, fmt.Errorf("httpapi: metrics: %w", err)
	}
	addRoutes(r, cfg, d, newUploadDeps(cfg, d, in), wd, newDeliverDeps(cfg, d))
	return r, nil
}

// routingPath is the path chi routes r by: the escaped path when it
// differs from the decoded one (a key's %2F is one segment's slash, not
// two segments), else the decoded one.
func routingPath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// allowed lists the methods routed for path, for the Allow header that a
// 405 must carry: HEAD wherever GET is (GetHead).
func allowed(r chi.Routes, path string) []string {
	var ms []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		if r.Match(chi.NewRouteContext(), m, path) || m == "HEAD" && slices.Contains(ms, "GET") {
			ms = append(ms, m)
		}
	}
	return ms
}

func newUploadDeps(cfg Config, d Deps, in *intake) uploadDeps {
	u := uploadDeps{
		pipeline: purgingUploader{uploader: d.Pipeline, purger: d.Delivery}, manifests: d.Pipeline, intake: in, objects: d.Store,
		maxBody: cfg.MaxBodyBytes, expiry: cfg.PresignExpiry, baseURL: baseURL(cfg),
		types: map[string]bool{},
	}
	u.local, _ = d.Store.(LocalStore)
	for _, t := range cfg.UploadTypes {
		u.types[t] = true
	}
	return u
}

// baseURL is where clients reach this server in its own upload URLs:
// PublicURL, or else http:// and the listen address, where an unspecified
// address (0.0.0.0, [::]: every address) becomes loopback, the one sure to
// reach this server.
func baseURL(cfg Config) string {
	if cfg.PublicURL != "" {
		return strings.TrimSuffix(cfg.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return "http://" + cfg.ListenAddr
	}
	if ip := net.ParseIP(host); host == "" || ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port)
}
