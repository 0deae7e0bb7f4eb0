package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
)

func TestAPIKeys(t *testing.T) {
	const key = "k-3f9a1c-secret-key"
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.APIKeys = []string{"other-key", key} })
	img := testJPEG(t, 20, 20)
	tests := []struct {
		name   string
		auth   string
		status int
	}{
		{"no key", "", 401},
		{"wrong key", "Bearer nope", 401},
		{"key prefix", "Bearer " + key[:5], 401},
		{"basic scheme", "Basic " + key, 401},
		{"empty bearer", "Bearer ", 401},
		{"right key", "Bearer " + key, 200},
		{"lower-case scheme", "bearer " + key, 200},
		{"second key", "Bearer other-key", 200},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.auth != "" {
			h.Set("Authorization", tt.auth)
		}
		resp, body := s.do(t, "POST", "/resize?width=10", img, h)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: status %d, want %d: %s", tt.name, resp.StatusCode, tt.status, body)
		}
		if tt.status == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: no WWW-Authenticate", tt.name)
		}
	}
	// Operations routes need no key.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		if resp, _ := s.do(t, "GET", p, nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s: %d without a key", p, resp.StatusCode)
		}
	}
	if strings.Contains(s.logs.String(), key) || strings.Contains(s.logs.String(), "other-key") {
		t.Fatal("an API key reached the log")
	}
}
