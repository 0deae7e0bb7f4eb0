package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// hostileFiles are the files of the hostile corpus, with the status
// POST /resize?width=100 answers each (see TestHostileCorpus).
func hostileFiles(t *testing.T) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int{}
	for _, e := range entries {
		if want, err := strconv.Atoi(strings.SplitN(e.Name(), "-", 2)[0]); err == nil {
			files[e.Name()] = want
		}
	}
	if len(files) < 40 {
		t.Fatalf("%d files in the hostile corpus", len(files))
	}
	return files
}

// checkProblem fails t unless out is a problem document of status want.
func checkProblem(t *testing.T, name string, resp *http.Response, out []byte, want int) {
	t.Helper()
	var p api.Problem
	if err := json.Unmarshal(out, &p); err != nil || p.Status != want || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("%s: not a problem document of %d: %.200s", name, want, out)
	}
}

// The hostile corpus stored as originals and asked for by signed URL is
// answered as POST /resize answers it (an empty original, which is no
// request's mistake, is not an image: 415), twice, the second image from
// the derived cache; never a 500. The images served carry nothing but the
// image.
func TestHostileCorpusDelivered(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes = 8 << 20 })
	for name, want := range hostileFiles(t) {
		body, err := os.ReadFile(filepath.Join(hostileDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(body) == 0 {
			want = http.StatusUnsupportedMediaType
		}
		key := "uploads/hostile/" + name
		s.putOriginal(t, key, body)
		path := sign(t, testSigningKey, imageurl.Request{Key: key, Options: opts("width", "100")})
		for round, outcome := range []string{"fwd=miss", "hit"} {
			resp, out := s.do(t, "GET", path, nil, nil)
			switch {
			case resp.StatusCode != want:
				t.Errorf("%s, request %d: %d, want %d: %.200s", name, round+1, resp.StatusCode, want, out)
			case want != http.StatusOK:
				checkProblem(t, name, resp, out, want)
			case !strings.Contains(resp.Header.Get("Cache-Status"), outcome):
				t.Errorf("%s, request %d: Cache-Status %q, want %s", name, round+1, resp.Header.Get("Cache-Status"), outcome)
			default:
				checkCleanImage(t, name, out)
				if round == 0 {
					s.settled(t, path)
				}
			}
		}
	}
	if strings.Contains(s.logs.String(), `"status":500`) {
		t.Fatal("a 500 in the log")
	}
}

// The hostile corpus posted to POST /uploads: each refused as POST
// /resize refuses it, with nothing stored, original or output; the rest
// stored with their variants (201).
func TestHostileCorpusUploaded(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes = 8 << 20 })
	for name, want := range hostileFiles(t) {
		body, err := os.ReadFile(filepath.Join(hostileDir, name))
		if err != nil {
			t.Fatal(err)
		}
		resp, out := s.do(t, "POST", "/uploads?key=hostile/"+name, body, nil)
		switch {
		case want == http.StatusOK && resp.StatusCode != http.StatusCreated:
			t.Errorf("%s: %d, want 201: %.200s", name, resp.StatusCode, out)
		case want != http.StatusOK && resp.StatusCode != want:
			t.Errorf("%s: %d, want %d: %.200s", name, resp.StatusCode, want, out)
		case want != http.StatusOK:
			checkProblem(t, name, resp, out, want)
		}
	}
	stored, err := s.local.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range stored {
		if _, name, _ := strings.Cut(o.Key, "hostile/"); name != "" && !strings.HasPrefix(name, "200-") {
			t.Errorf("%s stored for a refused upload", o.Key)
		}
	}
	if strings.Contains(s.logs.String(), `"status":500`) {
		t.Fatal("a 500 in the log")
	}
}

// An original in S3 far over MAX_BODY_BYTES, asked for by many URLs at
// once, is a 413 for each, and is never read: S3 gives its length first.
// An original whose stored Content-Type lies is served by what its bytes
// are (a JPEG stored as text/html is a JPEG, named so; SVG bytes stored as
// image/jpeg are SVG, which is off: 415).
func TestDeliverOriginalsThatLieOrOverflow(t *testing.T) {
	s, _, st := newS3TestServer(t)
	ctx := t.Context()
	huge := append(bytes.Clone(testdata(t, "ladybird.jpg")), make([]byte, 64<<20)...)
	for key, o := range map[string]struct {
		data []byte
		typ  string
	}{
		"uploads/huge.jpg": {huge, "image/jpeg"},
		"uploads/page.png": {testJPEG(t, 64, 48), "text/html"},
		"uploads/svg.jpg":  {[]byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>`), "image/jpeg"},
	} {
		if _, err := st.Put(ctx, key, o.data, storage.PutOptions{ContentType: o.typ}); err != nil {
			t.Fatal(err)
		}
	}
	huge = nil
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/huge.jpg", Options: opts("width", strconv.Itoa(100+i%5))})
			resp, err := s.Client().Get(s.URL + path)
			if err != nil {
				t.Error(err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("an original of 64 MiB: %d %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
		t.Errorf("20 requests for an original of 64 MiB allocated %d MiB", n>>20)
	}
	resp, b := s.do(t, "GET", sign(t, testSigningKey, imageurl.Request{Key: "uploads/page.png", Options: opts("width", "32")}), nil, nil)
	if _, _, f := imageSize(t, b); resp.StatusCode != 200 || f != "jpeg" || resp.Header.Get("Content-Type") != "image/jpeg" ||
		resp.Header.Get("Content-Disposition") != "inline; filename=page.jpg" {
		t.Errorf("a JPEG stored as text/html: %d %s %v", resp.StatusCode, f, resp.Header)
	}
	resp, b = s.do(t, "GET", sign(t, testSigningKey, imageurl.Request{Key: "uploads/svg.jpg", Options: opts("width", "32")}), nil, nil)
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("SVG stored as image/jpeg: %d %.200s", resp.StatusCode, b)
	}
}
