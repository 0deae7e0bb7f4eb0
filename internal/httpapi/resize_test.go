package httpapi

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
)

func TestResize(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	tests := []struct {
		name       string
		query      string
		header     http.Header
		w, h       int
		format     string
		wantVary   bool
		contentTyp string
	}{
		{"width", "width=800", nil, 800, 500, "jpeg", false, "image/jpeg"},
		{"cover", "width=300&height=300&fit=cover&gravity=smart", nil, 300, 300, "jpeg", false, "image/jpeg"},
		{"contain png", "width=300&height=300&fit=contain&format=png&background=%23ff0000", nil, 300, 300, "png", false, "image/png"},
		{"webp", "width=200&format=webp&quality=50", nil, 200, 125, "webp", false, "image/webp"},
		{"auto picks webp", "width=100&format=auto", http.Header{"Accept": {"image/webp,*/*"}}, 100, 63, "webp", true, "image/webp"},
		{"auto falls back", "width=100&format=auto", http.Header{"Accept": {"*/*"}}, 100, 63, "jpeg", true, "image/jpeg"},
		{"declared type ignored", "height=100", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 160, 100, "jpeg", false, "image/jpeg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, "POST", "/resize?"+tt.query, photo, tt.header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Content-Type"); got != tt.contentTyp {
				t.Errorf("Content-Type %q, want %q", got, tt.contentTyp)
			}
			if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %q, body %d bytes", got, len(body))
			}
			if (resp.Header.Get("Vary") == "Accept") != tt.wantVary {
				t.Errorf("Vary %q", resp.Header.Get("Vary"))
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("security headers missing: %v", resp.Header)
			}
			if tt.format == "webp" {
				if imageproc.Sniff(body) != imageproc.FormatWebP {
					t.Fatal("not WebP")
				}
				return
			}
			w, h, f := imageSize(t, body)
			if w != tt.w || h != tt.h || f != tt.format {
				t.Fatalf("got %s %dx%d, want %s %dx%d", f, w, h, tt.format, tt.w, tt.h)
			}
		})
	}
}

func TestResizeMultipart(t *testing.T) {
	s := newTestServer(t, nil)
	form := func(fields ...[2]string) ([]byte, http.Header) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		for _, f := range fields {
			if f[0] == "file" {
				fw, _ := mw.CreateFormFile("file", "photo.jpg")
				fw.Write([]byte(f[1]))
			} else {
				mw.WriteField(f[0], f[1])
			}
		}
		mw.Close()
		return b.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}}
	}
	body, h := form([2]string{"file", string(testJPEG(t, 64, 32))})
	resp, out := s.do(t, "POST", "/resize?width=32", body, h)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	if w, hh, _ := imageSize(t, out); w != 32 || hh != 16 {
		t.Fatalf("got %dx%d", w, hh)
	}
	for name, fields := range map[string][][2]string{
		"no file":      {{"other", "x"}},
		"empty form":   {},
		"option field": {{"width", "10"}, {"file", "x"}},
	} {
		body, h := form(fields...)
		resp, out := s.do(t, "POST", "/resize", body, h)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d: %s", name, resp.StatusCode, out)
		}
	}
	many := make([][2]string, 20)
	for i := range many {
		many[i] = [2]string{"f" + strconv.Itoa(i), "x"}
	}
	body, h = form(many...)
	if resp, out := s.do(t, "POST", "/resize", body, h); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("many parts: status %d: %s", resp.StatusCode, out)
	}
}

// Hostile and wrong input: each gets its status and a problem document,
// and the server keeps serving.
func TestResizeErrors(t *testing.T) {
	s := newTestServer(t, func(c *Config, p *imageproc.Config) { c.MaxBodyBytes = 1 << 20 })
	photo := testdata(t, "ladybird.jpg")
	small := testJPEG(t, 40, 30)
	tests := []struct {
		name   string
		query  string
		body   []byte
		header http.Header
		status int
		slug   string
	}{
		{"empty body", "", nil, nil, 400, "bad-request"},
		{"unknown parameter", "width=10&colour=red", small, nil, 400, "bad-option"},
		{"bad width", "width=-1", small, nil, 400, "bad-option"},
		{"huge width", "width=100000", small, nil, 400, "bad-option"},
		{"repeated parameter", "width=1&width=2", small, nil, 400, "bad-option"},
		{"malformed query", "width=%zz", small, nil, 400, "bad-option"},
		{"multipart without boundary", "", small, http.Header{"Content-Type": {"multipart/form-data"}}, 400, "bad-request"},
		{"text named .jpg", "", []byte("just some text in a file named photo.jpg"), nil, 415, "unsupported-format"},
		{"truncated jpeg", "width=10", photo[:len(photo)/3], nil, 422, "undecodable"},
		{"trim leaves nothing", "trim=255", small, nil, 422, "unsatisfiable"},
		{"pixel flood", "width=10", testdata(t, "flood.png"), nil, 413, "too-large"},
		{"body over the limit", "", bytes.Repeat([]byte{0xFF}, 1<<20+1), nil, 413, "too-large"},
		{"enlarge past the limit", "width=8000&enlarge=true", testJPEG(t, 10, 2000), nil, 413, "too-large"},
		// 8040x8030: no side past MAX_DIMENSION, but 64 M pixels, over MAX_OUTPUT_PIXELS
		{"pad past the output limit", "pad=4000,4000,4000,4000", small, nil, 413, "too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, "POST", "/resize?"+tt.query, tt.body, tt.header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Status != tt.status || p.Type != "urn:resizer:problem:"+tt.slug || p.Detail == "" ||
				p.RequestId == "" || p.RequestId != resp.Header.Get("X-Request-Id") {
				t.Fatalf("problem %+v", p)
			}
		})
	}
	// Still serving.
	if resp, body := s.do(t, "POST", "/resize?width=20", small, nil); resp.StatusCode != 200 {
		t.Fatalf("after the errors: status %d: %s", resp.StatusCode, body)
	}
}

func TestBodyOverLimitWithoutContentLength(t *testing.T) {
	s := newTestServer(t, func(c *Config, p *imageproc.Config) { c.MaxBodyBytes = 1000 })
	// A chunked body declares no length: the limit is found while reading.
	req, _ := http.NewRequest("POST", s.URL+"/resize", struct{ *strings.Reader }{strings.NewReader(strings.Repeat("x", 5000))})
	req.ContentLength = -1
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

// Past concurrency+queue requests are shed at once with 503 and
// Retry-After, before their bodies are read.
func TestOverloadSheds(t *testing.T) {
	s := newTestServer(t, func(c *Config, p *imageproc.Config) {
		p.Concurrency, p.QueueSize, p.QueueTimeout = 1, 0, 50*time.Millisecond
	})
	release, err := s.proc.Gate().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The one slot is held: an admitted request waits 50ms and gives up.
	resp, body := s.do(t, "POST", "/resize?width=10", testJPEG(t, 20, 20), nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	done, err := s.proc.Gate().Admit() // the only admission place
	if err != nil {
		t.Fatal(err)
	}
	resp, body = s.do(t, "POST", "/resize?width=10", testJPEG(t, 20, 20), nil)
	if resp.StatusCode != 503 || !strings.Contains(string(body), "admitted") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	done()
	release()
	if resp, body := s.do(t, "POST", "/resize?width=10", testJPEG(t, 20, 20), nil); resp.StatusCode != 200 {
		t.Fatalf("after release: %d %s", resp.StatusCode, body)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, body := s.do(t, "POST", "/resize?width="+strconv.Itoa(100+i), photo, nil)
			if resp.StatusCode != 200 {
				t.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
			if w, _, _ := imageSize(t, body); w != 100+i {
				t.Errorf("width %d, want %d", w, 100+i)
			}
		}(i)
	}
	wg.Wait()
}

// A box is bounded by MAX_DIMENSION, whatever it is set to, not by its
// default: a server set higher takes wider boxes, and the document must
// call them valid (the contract check fails a request it calls invalid
// that the server took).
func TestBoxUpToMaxDimension(t *testing.T) {
	s := newTestServer(t, func(c *Config, p *imageproc.Config) { c.MaxDimension, p.MaxDimension = 10000, 10000 })
	img := testJPEG(t, 40, 30)
	for _, tt := range []struct {
		query  string
		status int
	}{
		{"width=9000", 200},
		{"height=10000", 200},
		{"width=10001", 400},
	} {
		if resp, body := s.do(t, "POST", "/resize?"+tt.query, img, nil); resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.query, resp.StatusCode, body, tt.status)
		}
	}
}
