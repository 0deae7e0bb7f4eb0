// Package contract checks real HTTP exchanges against openapi.yaml, for the
// tests of every package that serves HTTP. It is imported by tests only.
package contract

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
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
		for _, t := range []string{"image/jpeg", "image/png", "image/webp", "image/avif", "image/gif", "application/vnd.google.protobuf"} {
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
// type and body schema, and no header of the declared list the document
// does not name for it. An answer below 400 also requires req to be one
// the document calls valid (checkAccepted). A HEAD is checked as the GET
// that the document says it answers like: the same status and headers,
// and no body.
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
	switch {
	case errors.Is(ferr, routers.ErrPathNotFound):
		// The document's preamble: a path it does not list is a 404.
		checkUnrouted(t, req, resp, body, http.StatusNotFound)
		return
	case errors.Is(ferr, routers.ErrMethodNotAllowed):
		// And a method its path does not list is a 405 naming the others.
		checkUnrouted(t, req, resp, body, http.StatusMethodNotAllowed)
		if resp.Header.Get("Allow") == "" {
			t.Errorf("%s %s -> 405 without Allow", req.Method, req.URL.Path)
		}
		return
	case ferr != nil:
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
	if resp.StatusCode < 400 {
		rin := *in.RequestValidationInput
		checkAccepted(t, req, &rin, resp.StatusCode)
	}
	if verr := openapi3filter.ValidateResponse(context.Background(), in); verr != nil {
		t.Errorf("%s %s -> %d %s does not match openapi.yaml: %v", req.Method, req.URL.Path,
			resp.StatusCode, resp.Header.Get("Content-Type"), verr)
		return
	}
	checkDeclared(t, req, resp, route.Operation.Responses.Status(resp.StatusCode))
	// The path as the document writes it: the router's copy spells a
	// rest-of-path parameter in gorilla/mux's way.
	path := strings.Replace(route.Path, ":.+}", "}", 1)
	record(Answer{Method: r.Method, Path: path, Status: strconv.Itoa(resp.StatusCode)})
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

// checkUnrouted checks the answer to a request that no operation of the
// document takes: the document says it is a problem document of status
// want (404 for a path it does not list, 405 for a method it does not list
// on a path), which no operation's responses can say.
func checkUnrouted(t testing.TB, req *http.Request, resp *http.Response, body []byte, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("%s %s -> %d: not in openapi.yaml, whose answer for it is %d", req.Method, req.URL.Path, resp.StatusCode, want)
		return
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s -> %d: Content-Type %q, want application/problem+json", req.Method, req.URL.Path, want, ct)
		return
	}
	if req.Method == http.MethodHead {
		return
	}
	var v any
	if jerr := json.Unmarshal(body, &v); jerr != nil {
		t.Errorf("%s %s -> %d: %v", req.Method, req.URL.Path, want, jerr)
		return
	}
	if verr := doc.Components.Schemas["Problem"].Value.VisitJSON(v); verr != nil {
		t.Errorf("%s %s -> %d: not a Problem: %v", req.Method, req.URL.Path, want, verr)
	}
}

// checkAccepted fails the test when the service took a request (answered
// it below 400) that the document calls invalid: a parameter outside its
// enum, range or pattern, a required one missing, or a JSON body off its
// schema. Such an answer means the document refuses what the service
// accepts, and a client written from the document cannot know it. An
// image body is not read again (the document says only that it is bytes);
// a JSON one is, when the request can give it again.
func checkAccepted(t testing.TB, req *http.Request, in *openapi3filter.RequestValidationInput, status int) {
	t.Helper()
	in.Options = &openapi3filter.Options{
		AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
		SkipSettingDefaults: true,
		MultiError:          true,
		ExcludeRequestBody:  true,
	}
	r := in.Request.Clone(context.Background())
	in.Request = r
	// The body was sent, and may be a reader that a raw exchange left
	// part-read: nothing here may read it but a fresh copy of it.
	r.Body = http.NoBody
	if ct := req.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") && req.GetBody != nil {
		if body, gerr := req.GetBody(); gerr == nil {
			r.Body = body
			in.Options.ExcludeRequestBody = false
		}
	}
	if verr := openapi3filter.ValidateRequest(context.Background(), in); verr != nil {
		t.Errorf("%s %s -> %d, though openapi.yaml calls the request invalid: %v", req.Method, req.URL.Path, status, verr)
	}
	// The body's declared type, even where its bytes are not read again:
	// a type the document does not list is one a client written from it
	// would never send.
	if rb := in.Route.Operation.RequestBody; rb != nil && rb.Value != nil {
		if ct := req.Header.Get("Content-Type"); ct != "" {
			mt, _, perr := mime.ParseMediaType(ct)
			if perr != nil || rb.Value.Content.Get(mt) == nil {
				t.Errorf("%s %s -> %d, though openapi.yaml lists no body of type %q for it", req.Method, req.URL.Path, status, ct)
			}
		}
	}
}

// declared are the response headers that tell a client or a cache what to
// do with the answer. Each one the service sends must be one the document
// lists for the answer's route and status, or a client written from the
// document, and a CDN configured from it, would not know to honour it.
// (X-Request-Id is on every answer, and the document says so once; the
// headers every answer carries for browsers' safety are not the API's.)
var declared = []string{
	"Access-Control-Allow-Origin", "Cache-Control", "Cache-Status", "Content-Disposition", "ETag",
	"Last-Modified", "Location", "Retry-After", "Vary", "WWW-Authenticate",
}

// checkDeclared fails the test when resp carries one of the declared
// headers that the document's response ref does not list.
func checkDeclared(t testing.TB, req *http.Request, resp *http.Response, ref *openapi3.ResponseRef) {
	t.Helper()
	if ref == nil || ref.Value == nil {
		return // ValidateResponse has said so already
	}
	for _, name := range declared {
		if _, sent := resp.Header[http.CanonicalHeaderKey(name)]; !sent {
			continue
		}
		listed := false
		for h := range ref.Value.Headers {
			listed = listed || strings.EqualFold(h, name)
		}
		if !listed {
			t.Errorf("%s %s -> %d sends %s: %q, which openapi.yaml does not list for it",
				req.Method, req.URL.Path, resp.StatusCode, name, resp.Header.Get(name))
		}
	}
}
