package httpapi

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
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
