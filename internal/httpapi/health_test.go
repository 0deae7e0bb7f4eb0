package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/resizer/resizer/api"
)

func TestHealthAndReadiness(t *testing.T) {
	s := newTestServer(t, nil)
	if resp, body := s.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	resp, body := s.do(t, "GET", "/readyz", nil, nil)
	var r api.Readiness
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != 200 || r.Status != api.Ready || r.Checks["libvips"] != "ok" {
		t.Fatalf("readyz: %d %s", resp.StatusCode, body)
	}
	s.draining.Store(true)
	resp, body = s.do(t, "GET", "/readyz", nil, nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "draining") {
		t.Fatalf("readyz while draining: %d %s", resp.StatusCode, body)
	}
	// Liveness stays up while draining.
	if resp, _ := s.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("healthz while draining: %d", resp.StatusCode)
	}
}

func TestReadinessReportsFailedCheck(t *testing.T) {
	s := newTestServer(t, nil)
	h := handleReady(map[string]Check{
		"libvips": func(context.Context) error { return nil },
		"storage": func(context.Context) error { return errors.New("bucket unreachable") },
	}, s.draining)
	s = &testServer{Server: serveWith(t, h, nil), logs: s.logs}
	resp, body := s.do(t, "GET", "/readyz", nil, nil)
	var r api.Readiness
	_ = json.Unmarshal(body, &r)
	if resp.StatusCode != 503 || r.Status != api.NotReady || r.Checks["storage"] != "bucket unreachable" || r.Checks["libvips"] != "ok" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestMetricsAndSpec(t *testing.T) {
	s := newTestServer(t, nil)
	s.do(t, "POST", "/resize?width=10", testJPEG(t, 20, 20), nil)
	s.do(t, "POST", "/resize?width=abc", testJPEG(t, 20, 20), nil)
	_, body := s.do(t, "GET", "/metrics", nil, nil)
	for _, want := range []string{
		`resizer_http_requests_total{method="POST",route="/resize",status="200"} 1`,
		`resizer_http_requests_total{method="POST",route="/resize",status="400"} 1`,
		`resizer_image_process_seconds_count{format="jpeg"} 1`,
		`resizer_image_bytes_total{direction="in"}`,
		`resizer_gate_wait_seconds_count 1`,
		`resizer_http_request_duration_seconds_bucket{route="/resize",status="200"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Methods a client makes up share one label value: the series stay
	// bounded whatever it sends.
	for _, m := range []string{"BREW", "X-1", "get"} {
		s.do(t, m, "/resize", nil, nil)
	}
	_, body = s.do(t, "GET", "/metrics", nil, nil)
	for _, bad := range []string{`method="BREW"`, `method="X-1"`, `method="get"`} {
		if strings.Contains(string(body), bad) {
			t.Errorf("metrics have %s", bad)
		}
	}
	if want := `resizer_http_requests_total{method="other"`; !strings.Contains(string(body), want) {
		t.Errorf("metrics lack %s", want)
	}
	// A Prometheus server that asks for the protocol buffer format gets
	// it, as the document says.
	resp, _ := s.do(t, "GET", "/metrics", nil, http.Header{"Accept": {"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"}})
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/vnd.google.protobuf") || !slices.Contains(resp.Header.Values("Vary"), "Accept") {
		t.Errorf("a protocol buffer scrape: %s, Vary %q", ct, resp.Header.Values("Vary"))
	}
	resp, body = s.do(t, "GET", "/openapi.yaml", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "openapi: 3.0.3") {
		t.Fatalf("openapi.yaml: %d %.40s", resp.StatusCode, body)
	}
}
