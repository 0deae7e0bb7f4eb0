package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/webhook"
)

// settle reports a variant in a format that is not enabled, with the rest.
func TestSettleOutputFormats(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string // in the error; "" for none
	}{
		{map[string]string{"VARIANTS": "a:100x0:webp,b:100x0:avif"}, ""},
		{map[string]string{"VARIANTS": "a:100x0,b:100x0:jxl"}, `variant "b": jxl output needs jxl in INPUT_FORMATS`},
		{map[string]string{"VARIANTS": "a:100x0?format=jxl"}, `variant "a": jxl output needs jxl`},
		{map[string]string{"VARIANTS": "a:100x0,b:100x0:jxl", "INPUT_FORMATS": "jpeg,png,jxl"}, ""},
	}
	for _, tt := range tests {
		cfg, err := config.Load(func(k string) string { return tt.env[k] })
		_, err = settle(cfg, err)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.env, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want an error with %q", tt.env, err, tt.want)
		}
	}
}

// The qualities configuration writes by default are the format table's:
// config cannot import imageproc, so the numbers are written twice and
// this test keeps them equal.
func TestQualityDefaultsAreTheTable(t *testing.T) {
	c, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	for f, q := range map[imageproc.Format]int{
		imageproc.FormatJPEG: c.JPEGQuality, imageproc.FormatWebP: c.WebPQuality, imageproc.FormatAVIF: c.AVIFQuality,
	} {
		if q != f.DefaultQuality() {
			t.Errorf("%s: the configuration's default quality is %d, the format table's %d", f, q, f.DefaultQuality())
		}
	}
}

// The ready callback is signed with every secret it has: during a rotation
// of WEBHOOK_SECRETS a receiver that knows only the old one still accepts
// it. With READY_CALLBACK_SECRETS it is signed with those alone, and a
// receiver that knows the webhook's secret (and could sign S3 events with
// it) is not needed.
func TestReadyCallbackSignsWithEverySecret(t *testing.T) {
	for _, tt := range []struct {
		env   map[string]string
		knows string
		ok    bool
	}{
		{map[string]string{"WEBHOOK_SECRETS": "new,old"}, "old", true},
		{map[string]string{"WEBHOOK_SECRETS": "new,old"}, "new", true},
		{map[string]string{"WEBHOOK_SECRETS": "hook", "READY_CALLBACK_SECRETS": "cb-new,cb-old"}, "cb-old", true},
		{map[string]string{"WEBHOOK_SECRETS": "hook", "READY_CALLBACK_SECRETS": "cb-new,cb-old"}, "hook", false},
	} {
		var got atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			code := http.StatusNoContent
			if webhook.Verify(r.Header.Get(webhook.Header), body, [][]byte{[]byte(tt.knows)}, time.Now()) != nil {
				code = http.StatusUnauthorized
			}
			got.Store(int32(code))
			w.WriteHeader(code)
		}))
		tt.env["READY_CALLBACK_URL"] = srv.URL
		cfg, err := config.Load(func(k string) string { return tt.env[k] })
		s, err := settle(cfg, err)
		if err != nil || s.pipeline.Ready == nil {
			t.Fatalf("%v: %v, notifier %v", tt.env, err, s.pipeline.Ready)
		}
		err = s.pipeline.Ready.Ready(t.Context(), pipeline.Manifest{Key: "uploads/a.jpg", ETag: `"e"`})
		srv.Close()
		if (err == nil) != tt.ok || got.Load() == 0 {
			t.Errorf("%v, a receiver that knows %q: answered %d, %v", tt.env, tt.knows, got.Load(), err)
		}
	}
}
