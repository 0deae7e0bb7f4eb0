package httpapi

import (
	"embed"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/go-chi/chi/v5"
)

// The pages a person opens: GET / (try the API) and GET /docs (Swagger UI
// on openapi.yaml), with their assets under /ui/. Everything is embedded,
// so the pages work offline and in the container.
//
//go:generate ../../scripts/swagger-ui.sh
//go:embed web
var webFiles embed.FS

// Content-Security-Policy of the pages: scripts and styles from this
// server only, no inline script; images may be blobs (results shown from
// memory); fetches to this server, or to S3 (https) for presigned POSTs.
// Swagger UI needs inline styles.
const (
	cspIndex = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
		"connect-src 'self' https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	cspDocs = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
		"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// handlePage serves one embedded HTML page.
func handlePage(name, csp string) http.Handler {
	page, err := webFiles.ReadFile("web/" + name)
	if err != nil {
		panic(err) // embedded at build time: a missing page is a build mistake
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
}

// handleAsset serves the pages' scripts and styles, and Swagger UI's (kept
// apart in web/swagger, as scripts/swagger-ui.sh writes them).
func handleAsset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "file")
		ext := path.Ext(name)
		if ext != ".js" && ext != ".css" || strings.ContainsAny(name, "/\\") {
			writeError(w, r, fmt.Errorf("%w: %s", errNotFound, name)) // pages and licences are not assets
			return
		}
		b, err := fs.ReadFile(webFiles, "web/"+name)
		if err != nil {
			b, err = fs.ReadFile(webFiles, "web/swagger/"+name)
		}
		if err != nil {
			writeError(w, r, fmt.Errorf("%w: %s", errNotFound, name))
			return
		}
		h := w.Header()
		h.Set("Content-Type", mime.TypeByExtension(ext))
		h.Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(b)
	})
}
