package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resizer/resizer/imageurl"
)

func TestRequestID(t *testing.T) {
	s := newTestServer(t, nil)
	resp, _ := s.do(t, "GET", "/healthz", nil, http.Header{"X-Request-Id": {"abc-123_x.y"}})
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123_x.y" {
		t.Fatalf("kept id %q", got)
	}
	for _, bad := range []string{"has space", strings.Repeat("a", 65), "<script>"} {
		resp, _ := s.do(t, "GET", "/healthz", nil, http.Header{"X-Request-Id": {bad}})
		if got := resp.Header.Get("X-Request-Id"); got == bad || !validRequestID.MatchString(got) {
			t.Errorf("for %q got id %q", bad, got)
		}
	}
	a, _ := s.do(t, "GET", "/healthz", nil, nil)
	b, _ := s.do(t, "GET", "/healthz", nil, nil)
	if a.Header.Get("X-Request-Id") == b.Header.Get("X-Request-Id") {
		t.Fatal("two requests share an id")
	}
}

// One access line per request, with the fields an operator filters on,
// and never the query string.
func TestAccessLog(t *testing.T) {
	s := newTestServer(t, nil)
	resp, _ := s.do(t, "POST", "/resize?width=10&quality=5", testJPEG(t, 20, 20), http.Header{"X-Request-Id": {"req-1"}})
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	s.do(t, "POST", "/resize?width=zz", testJPEG(t, 20, 20), http.Header{"X-Request-Id": {"req-2"}})
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.logs.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		lines = append(lines, m)
	}
	var access []map[string]any
	for _, m := range lines {
		if m["message"] == "request" {
			access = append(access, m)
		}
	}
	if len(access) != 2 {
		t.Fatalf("%d access lines, want 2: %v", len(access), lines)
	}
	a := access[0]
	if a["req_id"] != "req-1" || a["method"] != "POST" || a["route"] != "/resize" || a["path"] != "/resize" ||
		a["status"] != float64(200) || a["bytes_out"].(float64) <= 0 || a["duration_ms"] == nil {
		t.Fatalf("access line %v", a)
	}
	if access[1]["status"] != float64(400) || access[1]["req_id"] != "req-2" {
		t.Fatalf("second access line %v", access[1])
	}
	if strings.Contains(s.logs.String(), "quality=5") {
		t.Fatal("query string logged")
	}
	// The failure itself is logged once, with the request id, at info.
	var failed int
	for _, m := range lines {
		if m["message"] == "request failed" && m["req_id"] == "req-2" && m["level"] == "info" {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d failure lines for req-2", failed)
	}
}

func TestPanicBecomesProblem(t *testing.T) {
	s := newTestServer(t, nil)
	s = &testServer{Server: serveWith(t, withRequestID(withLogging(zerologFor(s))(withRecover(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("boom")
	})))), nil), logs: s.logs}
	req, _ := http.NewRequest("GET", s.URL+"/healthz", nil)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != 500 || p["detail"] != "internal error" {
		t.Fatalf("%d %v", resp.StatusCode, p)
	}
	if !strings.Contains(s.logs.String(), `"level":"error"`) || !strings.Contains(s.logs.String(), "boom") {
		t.Fatalf("panic not logged: %s", s.logs.String())
	}
}

// bytes_out is what the body sent: nothing for a HEAD, on every GET
// route (net/http drops what the handler writes), nothing for a 304; for
// the GET the length of the body received (asked for as it is, not
// compressed).
func TestAccessLogBytesOut(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/x.jpg", testJPEG(t, 64, 64))
	img := sign(t, testSigningKey, imageurl.Request{Key: "uploads/x.jpg", Options: opts("width", "8")})
	paths := []string{"/healthz", "/readyz", "/openapi.yaml", "/metrics", "/", "/docs", "/nowhere", img}
	want := map[string]int{}
	etag := ""
	for i, p := range paths {
		for _, m := range []string{"GET", "HEAD"} {
			id := fmt.Sprintf("%s-%d", m, i)
			resp, body := s.do(t, m, p, nil, http.Header{"X-Request-Id": {id}, "Accept-Encoding": {"identity"}})
			want[id] = len(body)
			if p == img {
				etag = resp.Header.Get("ETag")
			}
		}
	}
	s.do(t, "GET", img, nil, http.Header{"X-Request-Id": {"not-modified"}, "If-None-Match": {etag}})
	want["not-modified"] = 0
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		var m struct {
			ReqID    string  `json:"req_id"`
			Message  string  `json:"message"`
			BytesOut float64 `json:"bytes_out"`
		}
		if json.Unmarshal([]byte(l), &m) == nil && m.Message == "request" {
			got[m.ReqID] = int(m.BytesOut)
		}
	}
	for id, n := range want {
		if g, ok := got[id]; !ok || g != n {
			t.Errorf("%s: bytes_out %d (logged: %v), %d sent", id, g, ok, n)
		}
		if strings.HasPrefix(id, "GET-") && n == 0 {
			t.Errorf("%s: an empty body", id)
		}
	}
}

// A panic after the response began cuts the connection: the client
// reads an error, never a body that looks whole (nor a problem appended
// to it), whether the body was chunked or had its length declared; the
// access line says it was aborted, and the request is counted.
func TestPanicAfterResponseBeganAborts(t *testing.T) {
	for _, declared := range []bool{false, true} {
		t.Run(fmt.Sprintf("length declared %v", declared), func(t *testing.T) {
			s := newTestServer(t, nil)
			reg := prometheus.NewRegistry()
			m, err := newHTTPMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			s = &testServer{Server: serveWith(t, withRequestID(withLogging(zerologFor(s))(m.withMetrics(withRecover(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if declared {
					w.Header().Set("Content-Length", "100")
				}
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write([]byte("part of an image"))
				w.(http.Flusher).Flush()
				panic("boom mid-body")
			}))))), nil), logs: s.logs}
			resp, err := s.Client().Get(s.URL + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("body read whole after a panic: %q", body)
			}
			if strings.Contains(string(body), "problem") || strings.Contains(string(body), "internal error") {
				t.Fatalf("problem appended to a begun body: %q", body)
			}
			var line struct {
				Level   string `json:"level"`
				Status  int    `json:"status"`
				Aborted bool   `json:"aborted"`
			}
			found := false
			for _, l := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
				if strings.Contains(l, `"message":"request"`) {
					found = json.Unmarshal([]byte(l), &line) == nil
				}
			}
			if !found || !line.Aborted || line.Status != 200 || line.Level != "warn" {
				t.Fatalf("access line %+v (found %v): %s", line, found, s.logs.String())
			}
			if !strings.Contains(s.logs.String(), "boom mid-body") {
				t.Fatalf("panic not logged: %s", s.logs.String())
			}
			counted := metricTotal(t, reg, "resizer_http_requests_total")
			if counted != 1 {
				t.Fatalf("%v requests counted, want 1", counted)
			}
		})
	}
}
