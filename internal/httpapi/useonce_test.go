package httpapi

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/storage"
)

func TestUseOnSuccess(t *testing.T) {
	full := fmt.Errorf("record upload URL use: %w: no space left on device", storage.ErrUnavailable)
	for _, tt := range []struct {
		name     string
		status   int // 0: the handler writes without WriteHeader
		useErr   error
		wantUsed bool
		want     int
		wantBody string
	}{
		{"created", 201, nil, true, 201, `{"key":"k"}`},
		{"implicit 200", 0, nil, true, 200, `{"key":"k"}`},
		{"refused", 415, nil, false, 415, `{"key":"k"}`},
		{"busy", 503, nil, false, 503, `{"key":"k"}`},
		{"use not recorded", 201, full, true, 503, "storage-unavailable"},
	} {
		used := false
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("PUT", "/uploads/k", nil)
		w := &useOnSuccess{ResponseWriter: rec, r: r, use: func() error { used = true; return tt.useErr }}
		w.Header().Set("Location", "/objects/k")
		if tt.status != 0 {
			w.WriteHeader(tt.status)
		}
		w.Write([]byte(`{"key":"k"}`))
		if used != tt.wantUsed || rec.Code != tt.want || !strings.Contains(rec.Body.String(), tt.wantBody) {
			t.Errorf("%s: used %v, %d %s; want used %v, %d", tt.name, used, rec.Code, rec.Body, tt.wantUsed, tt.want)
		}
		if tt.useErr != nil && (rec.Header().Get("Location") != "" || rec.Header().Get("Retry-After") == "" ||
			strings.Contains(rec.Body.String(), `"key"`)) {
			t.Errorf("%s: the success leaked into the failure: %v %s", tt.name, rec.Header(), rec.Body)
		}
	}
}
