// Package contract checks real HTTP exchanges against openapi.yaml, for the
// tests of every package that serves HTTP. It is imported by tests only.
package contract

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

var (
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error
)

// Doc returns the parsed and validated openapi.yaml of the repository.
func Doc(t testing.TB) *openapi3.T {
	t.Helper()
	load()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	return doc
}

// SpecPath returns the path of openapi.yaml.
func SpecPath() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "openapi.yaml")
}

func load() {
	once.Do(func() {
		for _, t := range []string{"image/jpeg", "image/png", "image/webp", "image/avif", "image/gif"} {
			openapi3filter.RegisterBodyDecoder(t, openapi3filter.FileBodyDecoder)
		}
		for _, t := range []string{"text/html", "text/css", "text/javascript"} {
			openapi3filter.RegisterBodyDecoder(t, openapi3filter.PlainBodyDecoder)
		}
		var b []byte
		if b, err = os.ReadFile(SpecPath()); err != nil {
			return
		}
		doc, err = openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			return
		}
		if err = doc.Validate(context.Background()); err != nil {
			return
		}
		// The router matches request paths only; the server it is given
		// is any host, since tests listen on random ports. It reads its
		// own copy, where a parameter that takes the rest of the path
		// (RestOfPath) is written in gorilla/mux's way, {key:.+}: OpenAPI
		// has no word for it.
		var rdoc *openapi3.T
		if rdoc, err = openapi3.NewLoader().LoadFromData(b); err != nil {
			return
		}
		rdoc.Servers = openapi3.Servers{{URL: "/"}}
		for path, item := range rdoc.Paths.Map() {
			if name := RestOfPath(item); name != "" {
				rdoc.Paths.Delete(path)
				rdoc.Paths.Set(strings.Replace(path, "{"+name+"}", "{"+name+":.+}", 1), item)
			}
		}
		router, err = gorillamux.NewRouter(rdoc)
	})
}

// RestOfPath returns the name of the path parameter of item's GET that
// takes the rest of the path, slashes included (marked x-rest-of-path),
// or "".
func RestOfPath(item *openapi3.PathItem) string {
	if item.Get == nil {
		return ""
	}
	for _, p := range item.Get.Parameters {
		if p.Value.In == "path" && p.Value.Extensions["x-rest-of-path"] == true {
			return p.Value.Name
		}
	}
	return ""
}

// Check fails the test unless the response to req, with the given body, is
// one that openapi.yaml documents for req's route: status, headers, content
// type and body schema. A HEAD is checked as the GET that the document says
// it answers like: the same status and headers, and no body.
func Check(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	load()
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
		return
	}
	r := req.Clone(context.Background())
	// The escaped path, so that a key's %2F stays inside one path
	// parameter, as the server's router sees it.
	r.URL = &url.URL{Path: req.URL.EscapedPath(), RawQuery: req.URL.RawQuery}
	head := req.Method == http.MethodHead
	if head {
		if len(body) != 0 {
			t.Errorf("HEAD %s: %d bytes of body", req.URL.Path, len(body))
		}
		r.Method = http.MethodGet
	}
	route, params, ferr := router.FindRoute(r)
	if ferr != nil {
		t.Fatalf("%s %s: not in openapi.yaml: %v", req.Method, req.URL.Path, ferr)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: r, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: resp.StatusCode,
		Header: resp.Header,
		Body:   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			ExcludeResponseBody:   head,
		},
	}
	if verr := openapi3filter.ValidateResponse(context.Background(), in); verr != nil {
		t.Errorf("%s %s -> %d %s does not match openapi.yaml: %v", req.Method, req.URL.Path,
			resp.StatusCode, resp.Header.Get("Content-Type"), verr)
	}
}

// Do sends req with client (http.DefaultClient when nil), reads the whole
// answer and Checks it: the tests' one way to make a request whose answer
// the document must describe. A failure to send or to read fails the test.
func Do(t testing.TB, client *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", req.Method, req.URL.Path, err)
	}
	Check(t, req, resp, body)
	return resp, body
}
