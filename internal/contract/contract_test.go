package contract

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, nil)
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Content-Type": {tt.ctype}}}
		r := &recorder{TB: t}
		Check(r, req, resp, []byte(tt.body))
		if r.failed == tt.ok {
			t.Errorf("%s: failed=%v (%s), want ok=%v", tt.name, r.failed, r.msg, tt.ok)
		}
	}
}
