package contract

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// recorder is a testing.TB that notes failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msg    string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(f string, a ...any) {
	r.failed, r.msg = true, fmt.Sprintf(f, a...)
}
func (r *recorder) Fatalf(f string, a ...any) { r.Errorf(f, a...) }

const (
	problem404 = `{"type":"urn:resizer:problem:not-found","title":"t","status":404,"detail":"d","request_id":"x"}`
	problem405 = `{"type":"urn:resizer:problem:method-not-allowed","title":"t","status":405,"detail":"d","request_id":"x"}`
)

// Check must catch responses the document does not allow, or every
// contract assertion in the other packages would pass on anything.
func TestCheckCatchesViolations(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		status int
		ctype  string
		body   string
		ok     bool
	}{
		{"health ok", "GET", "/healthz", 200, "application/json", `{"status":"ok"}`, true},
		{"health wrong enum", "GET", "/healthz", 200, "application/json", `{"status":"fine"}`, false},
		{"health wrong type", "GET", "/healthz", 200, "image/jpeg", "xx", false},
		{"undocumented status", "GET", "/healthz", 418, "application/json", `{}`, false},
		{"problem ok", "POST", "/resize", 400, "application/problem+json",
			`{"type":"urn:resizer:problem:bad-option","title":"t","status":400,"detail":"d","request_id":"x"}`, true},
		{"problem without request id", "POST", "/resize", 400, "application/problem+json",
			`{"type":"urn:resizer:problem:bad-option","title":"t","status":400,"detail":"d"}`, false},
		{"problem as plain json", "POST", "/resize", 400, "application/json", `{}`, false},
		{"undocumented route", "GET", "/nowhere", 200, "application/json", `{}`, false},
		{"undocumented route, 404", "GET", "/nowhere", 404, "application/problem+json", problem404, true},
		{"undocumented route, 404 not a problem", "GET", "/nowhere", 404, "application/problem+json", `{"status":404}`, false},
		{"undocumented route, 404 as json", "GET", "/nowhere", 404, "application/json", problem404, false},
		{"undocumented method, 405", "DELETE", "/healthz", 405, "application/problem+json", problem405, true},
		{"undocumented method, 405 without Allow", "PATCH", "/healthz", 405, "application/problem+json", problem405, false},
		{"undocumented method, 200", "DELETE", "/healthz", 200, "application/json", `{"status":"ok"}`, false},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Content-Type": {tt.ctype}}}
		if tt.method == "DELETE" {
			resp.Header.Set("Allow", "GET, HEAD")
		}
		if strings.HasPrefix(tt.ctype, "application/") {
			resp.Header.Set("Cache-Control", "no-store") // required of every documented problem and JSON answer
		}
		r := &recorder{TB: t}
		Check(r, req, resp, []byte(tt.body))
		if r.failed == tt.ok {
			t.Errorf("%s: failed=%v (%s), want ok=%v", tt.name, r.failed, r.msg, tt.ok)
		}
	}
	// A documented problem that a cache may keep.
	req := httptest.NewRequest("POST", "/resize", nil)
	resp := &http.Response{StatusCode: 400, Header: http.Header{"Content-Type": {"application/problem+json"}}}
	r := &recorder{TB: t}
	Check(r, req, resp, []byte(`{"type":"urn:resizer:problem:bad-option","title":"t","status":400,"detail":"d","request_id":"x"}`))
	if !r.failed {
		t.Error("a problem without Cache-Control: no-store passed")
	}
	// An answer with a header that tells a client or a cache what to do,
	// which the document does not list for it.
	resp = &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"},
		"Retry-After": {"1"}}}
	r = &recorder{TB: t}
	Check(r, httptest.NewRequest("GET", "/healthz", nil), resp, []byte(`{"status":"ok"}`))
	if !r.failed {
		t.Error("an answer with an undocumented Retry-After passed")
	}
}

// Check records what it validated, and only that: the coverage that
// Unchecked reports is what the tests saw, not what they sent.
func TestCheckRecordsAnswers(t *testing.T) {
	ok := Answer{Method: "GET", Path: "/readyz", Status: "503"}
	bad := Answer{Method: "GET", Path: "/metrics", Status: "200"}
	head := Answer{Method: "GET", Path: "/openapi.yaml", Status: "200"}
	// The record lives as long as the test binary: forget what an earlier
	// run of this test (-count=2) put there, so that each run sees its own.
	checkedMu.Lock()
	for _, a := range []Answer{ok, bad, head} {
		delete(checked, a)
	}
	checkedMu.Unlock()
	Check(t, httptest.NewRequest("GET", "/readyz", nil),
		&http.Response{StatusCode: 503, Header: http.Header{"Content-Type": {"application/json"}, "Cache-Control": {"no-store"}}},
		[]byte(`{"status":"draining","checks":{}}`))
	r := &recorder{TB: t}
	Check(r, httptest.NewRequest("GET", "/metrics", nil),
		&http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"image/png"}}}, []byte("x"))
	Check(t, httptest.NewRequest("HEAD", "/openapi.yaml", nil),
		&http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/yaml"}}}, nil)
	if !wasChecked(ok) || wasChecked(bad) || !wasChecked(head) {
		t.Errorf("checked: %v=%v %v=%v %v=%v, want true false true", ok, wasChecked(ok), bad, wasChecked(bad), head, wasChecked(head))
	}
	allow := map[Answer]string{ok: "checked after all", {Method: "GET", Path: "/gone", Status: "200"}: "not documented"}
	missing, stale, err := Unchecked(allow)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 2 {
		t.Errorf("stale: %v, want both entries of allow", stale)
	}
	if slices.Contains(missing, ok) || slices.Contains(missing, head) || !slices.Contains(missing, bad) {
		t.Errorf("unchecked: %v; want %v and not %v, %v", missing, bad, ok, head)
	}
}

// wasChecked reports whether a Check of this test binary has validated a.
func wasChecked(a Answer) bool {
	checkedMu.Lock()
	defer checkedMu.Unlock()
	return checked[a]
}

// Check must catch a request the document calls invalid that the service
// took all the same, and only that: refusing it is what the document
// asks.
func TestCheckCatchesAcceptedInvalidRequests(t *testing.T) {
	problem := `{"type":"urn:resizer:problem:bad-option","title":"t","status":400,"detail":"d","request_id":"x"}`
	presign := func(body string) *http.Request {
		r := httptest.NewRequest("POST", "/uploads/presign", nil)
		r.Header.Set("Content-Type", "application/json")
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		return r
	}
	typed := func(method, target, ctype string) *http.Request {
		r := httptest.NewRequest(method, target, nil)
		r.Header.Set("Content-Type", ctype)
		return r
	}
	presigned := `{"method":"PUT","url":"/u","key":"k","expires_at":"2026-12-01T00:00:00Z","manifest_key":"m"}`
	tests := []struct {
		name   string
		req    *http.Request
		status int
		ctype  string
		body   string
		ok     bool
	}{
		{"valid option taken", httptest.NewRequest("POST", "/resize?format=webp&width=10", nil), 200, "image/webp", "x", true},
		{"unknown format taken", httptest.NewRequest("POST", "/resize?format=bmp", nil), 200, "image/webp", "x", false},
		{"width of 0 taken", httptest.NewRequest("POST", "/resize?width=0", nil), 200, "image/webp", "x", false},
		{"unknown format refused", httptest.NewRequest("POST", "/resize?format=bmp", nil), 400, "application/problem+json", problem, true},
		{"presign taken", presign(`{"content_type":"image/png","size":1}`), 200, "application/json", presigned, true},
		{"presign of 0 bytes taken", presign(`{"content_type":"image/png","size":0}`), 200, "application/json", presigned, false},
		{"presign with an unknown field taken", presign(`{"content_type":"image/png","size":1,"x":1}`), 200, "application/json", presigned, false},
		{"presign of a form taken", typed("POST", "/uploads/presign", "application/x-www-form-urlencoded"), 200, "application/json", presigned, false},
		{"webhook of text taken", typed("POST", "/webhooks/s3", "text/plain"), 200, "application/json", `{"records":[]}`, false},
		{"resize of any type taken", typed("POST", "/resize", "application/x-www-form-urlencoded"), 200, "image/webp", "x", true},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Content-Type": {tt.ctype}, "X-Request-Id": {"x"}}}
		if strings.HasPrefix(tt.ctype, "application/") {
			resp.Header.Set("Cache-Control", "no-store")
		}
		r := &recorder{TB: t}
		Check(r, tt.req, resp, []byte(tt.body))
		if r.failed == tt.ok {
			t.Errorf("%s: failed=%v (%s), want ok=%v", tt.name, r.failed, r.msg, tt.ok)
		}
	}
}
