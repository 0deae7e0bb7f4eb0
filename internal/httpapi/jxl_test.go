package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
)

// JPEG XL over HTTP: refused unless INPUT_FORMATS enables it (415 for an
// input, 400 for format=jxl); once enabled, written as image/jxl, read
// back, and a truncated file is a 422.
func TestResizeJXL(t *testing.T) {
	on := newTestServer(t, func(_ *Config, p *imageproc.Config) {
		p.Formats = append(slices.Clone(imageproc.DefaultInputFormats), imageproc.FormatJXL)
	})
	off := newTestServer(t, nil)
	src := testJPEG(t, 300, 200)
	resp, jxl := on.do(t, "POST", "/resize?format=jxl", src, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jxl" || imageproc.Sniff(jxl) != imageproc.FormatJXL {
		t.Fatalf("format=jxl: %d %s, sniffed %s", resp.StatusCode, resp.Header.Get("Content-Type"), imageproc.Sniff(jxl))
	}
	tests := []struct {
		name   string
		s      *testServer
		query  string
		body   []byte
		status int
		typ    string // Content-Type, or the problem's slug
	}{
		{"jxl to png", on, "width=150&format=png", jxl, 200, "image/png"},
		{"jxl stays jxl", on, "width=150", jxl, 200, "image/jxl"},
		{"truncated jxl", on, "width=150", jxl[:len(jxl)/2], 422, "undecodable"},
		{"jxl input off", off, "width=150", jxl, 415, "unsupported-format"},
		{"jxl output off", off, "format=jxl", src, 400, "bad-option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.s.do(t, "POST", "/resize?"+tt.query, tt.body, nil)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status == 200 {
				if ct := resp.Header.Get("Content-Type"); ct != tt.typ {
					t.Errorf("Content-Type %q, want %q", ct, tt.typ)
				}
				return
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || p.Type != "urn:resizer:problem:"+tt.typ {
				t.Errorf("problem %s (%v), want type %s", body, err, tt.typ)
			}
		})
	}
}
