package httpapi

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// The router serves exactly the routes openapi.yaml documents.
func TestRoutesMatchSpec(t *testing.T) {
	s := newTestServer(t, nil)
	var got []string
	err := chi.Walk(s.Config.Handler.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		got = append(got, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for path, item := range contract.Doc(t).Paths.Map() {
		if name := contract.RestOfPath(item); name != "" {
			path = strings.Replace(path, "{"+name+"}", "*", 1) // chi's name for the rest of the path
		}
		for method := range item.Operations() {
			want = append(want, method+" "+path)
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("router:  %v\nopenapi: %v", got, want)
	}
}

// Every GET route of openapi.yaml answers HEAD as the document says: the
// GET's status and headers, and no body.
func TestHeadAnswersLikeGet(t *testing.T) {
	s := newTestServer(t, nil)
	if _, err := s.local.Put(t.Context(), "uploads/h.jpg", testJPEG(t, 8, 8), storage.PutOptions{CacheControl: "no-cache"}); err != nil {
		t.Fatal(err)
	}
	img := sign(t, testSigningKey, imageurl.Request{Key: "uploads/h.jpg", Options: url.Values{"width": {"4"}}})
	s.do(t, "GET", img, nil, nil)
	s.settled(t, img) // a render's answer and a hit's differ in Cache-Status: compare hits
	example := map[string]string{"/objects/{key}": "/objects/uploads%2Fh.jpg", "/ui/{file}": "/ui/app.js",
		"/img/{signature}/{options}/{key}": img}
	// A compressed GET would differ in its headers, not in what HEAD owes.
	identity := func() http.Header { return http.Header{"Accept-Encoding": {"identity"}} }
	n := 0
	for path, item := range contract.Doc(t).Paths.Map() {
		if item.Get == nil {
			continue
		}
		n++
		if e, ok := example[path]; ok {
			path = e
		}
		get, _ := s.do(t, "GET", path, nil, identity())
		head, body := s.do(t, "HEAD", path, nil, identity())
		if head.StatusCode != get.StatusCode || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes; GET: %d", path, head.StatusCode, len(body), get.StatusCode)
		}
		for _, h := range []http.Header{get.Header, head.Header} {
			h.Del("Date")
			h.Del("X-Request-Id")
			if path == "/metrics" {
				h.Del("Content-Length") // the metrics count each request: no two bodies are alike
			}
		}
		if !reflect.DeepEqual(head.Header, get.Header) {
			t.Errorf("HEAD %s headers:\n%v\nGET:\n%v", path, head.Header, get.Header)
		}
	}
	if n < 8 {
		t.Fatalf("only %d GET routes checked", n)
	}
	// HEAD where only another method is routed is still a 405.
	resp, _ := s.do(t, "HEAD", "/resize", nil, nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Errorf("HEAD /resize: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, _ = s.do(t, "POST", "/healthz", nil, nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /healthz: %d Allow=%q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// The /resize parameters in openapi.yaml are the options ParseOptions
// knows, plus the Accept header.
func TestResizeParametersMatchSpec(t *testing.T) {
	var spec []string
	for _, p := range contract.Doc(t).Paths.Find("/resize").Post.Parameters {
		if p.Value.In == "query" {
			spec = append(spec, p.Value.Name)
		}
	}
	code := imageproc.OptionNames()
	sort.Strings(spec)
	sort.Strings(code)
	if !slices.Equal(spec, code) {
		t.Fatalf("openapi.yaml: %v\nParseOptions: %v", spec, code)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	s := newTestServer(t, nil)
	resp, body := s.do(t, "GET", "/nowhere", nil, nil)
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("404: %d %s", resp.StatusCode, body)
	}
	resp, body = s.do(t, "GET", "/resize", nil, nil)
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" || !strings.Contains(string(body), "method-not-allowed") {
		t.Fatalf("405: %d Allow=%q %s", resp.StatusCode, resp.Header.Get("Allow"), body)
	}
}

// A 405 names the methods of the route the request's path was routed to,
// also when a key in it spells its slashes %2F (as every key under a
// prefix does): the route is found by the escaped path, and so is the
// Allow header.
func TestMethodNotAllowedOnEscapedKeys(t *testing.T) {
	s := newTestServer(t, nil)
	for _, key := range []string{"x.jpg", "uploads%2Fx.jpg", "uploads%2Fcats%2Ftom%20cat.jpg"} {
		for route, want := range map[string]string{"/objects/": "GET, HEAD", "/uploads/": "PUT"} {
			for _, m := range []string{"POST", "PATCH", "DELETE"} {
				resp, _ := s.do(t, m, route+key, nil, nil)
				if resp.StatusCode != 405 || resp.Header.Get("Allow") != want {
					t.Errorf("%s %s%s: %d Allow=%q, want %q", m, route, key, resp.StatusCode, resp.Header.Get("Allow"), want)
				}
			}
		}
	}
}

// A method no route has (FOO, or one such as TRACE, or OPTIONS: no route
// answers a CORS preflight, and a GET of an image needs none) is a 405
// naming the path's methods where a route serves the path, and a 404
// where none does: never a 405 with nothing in Allow.
func TestUnknownMethods(t *testing.T) {
	s := newTestServer(t, nil)
	for _, m := range []string{"FOO", "TRACE", "OPTIONS", "CONNECTX", "PROPFIND"} {
		for path, want := range map[string]string{"/healthz": "GET, HEAD", "/resize": "POST", "/objects/uploads%2Fx.jpg": "GET, HEAD", "/nowhere": "", "/uploads/a/b/c": ""} {
			resp, body := s.do(t, m, path, nil, nil)
			switch {
			case want == "" && resp.StatusCode != 404:
				t.Errorf("%s %s: %d %s, want 404", m, path, resp.StatusCode, body)
			case want != "" && (resp.StatusCode != 405 || resp.Header.Get("Allow") != want):
				t.Errorf("%s %s: %d Allow=%q, want 405 Allow=%q", m, path, resp.StatusCode, resp.Header.Get("Allow"), want)
			}
		}
	}
}
