package httpapi

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
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
