package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
)

// Every operation that openapi.yaml guards with an API key refuses a
// request without one and with a wrong one, before doing anything. The
// list comes from the document, so a new route cannot be forgotten.
func TestEveryKeyedRouteRefusesMissingAndWrongKeys(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.APIKeys = []string{"the-right-key"} })
	checked := 0
	for path, item := range contract.Doc(t).Paths.Map() {
		for method, op := range item.Operations() {
			if op.Security == nil {
				continue
			}
			keyed := false
			for _, req := range *op.Security {
				if _, ok := req["bearerAuth"]; ok {
					keyed = true
				}
			}
			if !keyed {
				continue
			}
			p := strings.ReplaceAll(path, "{key}", "uploads%2Fx.jpg")
			for _, auth := range []string{"", "Bearer wrong-key", "Bearer the-right-key-but-longer", "Basic the-right-key"} {
				h := http.Header{}
				if auth != "" {
					h.Set("Authorization", auth)
				}
				resp, body := s.do(t, method, p, testJPEG(t, 8, 8), h)
				if resp.StatusCode != 401 || !strings.Contains(string(body), "unauthorized") {
					t.Errorf("%s %s with %q: %d %s", method, path, auth, resp.StatusCode, body)
				}
			}
			checked++
		}
	}
	if checked < 4 {
		t.Fatalf("only %d keyed operations found in openapi.yaml", checked)
	}
	if strings.Contains(s.logs.String(), "the-right-key") || strings.Contains(s.logs.String(), "wrong-key") {
		t.Fatal("a key reached the log")
	}
}
