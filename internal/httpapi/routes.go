package httpapi

import (
	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes lists the whole API. openapi.yaml documents the same routes; a
// test keeps the two equal.
func addRoutes(r chi.Router, cfg Config, d Deps, u uploadDeps, wd webhookDeps) {
	r.Get("/healthz", handleHealth().ServeHTTP)
	r.Get("/readyz", handleReady(d.Checks, d.Draining).ServeHTTP)
	r.Get("/metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}).ServeHTTP)
	r.Get("/openapi.yaml", handleOpenAPI(d.Spec).ServeHTTP)
	if cfg.UI {
		r.Method("GET", "/", handlePage("index.html", cspIndex))
		r.Method("GET", "/docs", handlePage("docs.html", cspDocs))
		r.Method("GET", "/ui/{file}", handleAsset())
	}

	r.Group(func(r chi.Router) {
		r.Use(requireAPIKey(cfg.APIKeys))
		r.Method("POST", "/resize", handleResize(d.Processor, u.intake, cfg.MaxDimension))
		r.Method("POST", "/info", handleInfo(d.Processor, u.intake))
		r.Method("POST", "/uploads", handleUpload(u))
		r.Method("POST", "/uploads/presign", handlePresign(u))
		if u.local != nil { // the local directory only
			r.Method("GET", "/objects/{key}", handleGetObject(u.local))
		}
	})
	if u.local != nil {
		// The target of the local directory's upload URLs, authorized by
		// the signature in its query, not by a key.
		r.Method("PUT", "/uploads/{key}", handlePutUpload(u))
	}
	// Authorized by Resizer-Signature or the webhook secret.
	r.Method("POST", "/webhooks/s3", handleWebhook(wd))
}
