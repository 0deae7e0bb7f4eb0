package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
)

// writableAll returns the input formats that make every format the
// service can write writable (the default ones, and those, such as JPEG
// XL, that are written only once enabled), and the formats then written.
func writableAll() (enabled, outputs []imageproc.Format) {
	enabled = slices.Clone(imageproc.DefaultInputFormats)
	for _, f := range imageproc.OutputFormats {
		if !f.Writable(enabled) {
			enabled = append(enabled, f)
		}
		if f.Writable(enabled) {
			outputs = append(outputs, f)
		}
	}
	return enabled, outputs
}

// What reaches a client, from POST /resize in every format the service can
// write (format=original and format=auto included) and from the variants
// of POST /uploads, one in each such format, and from GET /img in each
// (rendered, then from the derived cache), carries none of the
// uploader's metadata: no EXIF (GPS, Artist, MakerNote), XMP, IPTC, ICC
// profile, comment, or orientation tag. Every output is upright: the
// input's orientation 6 is applied, not carried.
func TestResponsesCarryNoMetadata(t *testing.T) {
	enabled, formats := writableAll()
	var variants []string
	for _, f := range formats {
		variants = append(variants, fmt.Sprintf("as-%s:100x0:%s", f, f))
	}
	s := newTestServerVariants(t, nil, strings.Join(variants, ","), func(_ *Config, p *imageproc.Config) {
		p.Formats = enabled
	}, nil)
	base := testJPEG(t, 300, 200)
	icc := imagetest.JPEGICC(testdata(t, "p3.jpg"))
	if len(icc) == 0 {
		t.Fatal("testdata/p3.jpg has no ICC profile")
	}
	original := imagetest.JPEG(base, 6, icc) // 200x300 upright
	outs := map[string][]byte{}
	queries := []string{"format=original", "format=auto"}
	for _, f := range formats {
		queries = append(queries, "format="+f.String())
	}
	for _, q := range queries {
		for _, accept := range []string{"", "image/webp", "image/avif,image/webp"} {
			if accept != "" && q != "format=auto" {
				continue
			}
			resp, b := s.do(t, "POST", "/resize?width=80&"+q, original, http.Header{"Accept": {accept}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
			}
			name := fmt.Sprintf("/resize?%s (Accept %q): %s", q, accept, resp.Header.Get("Content-Type"))
			checkUpright(t, s, name, b, 80, 120)
			outs[name] = b
		}
	}
	// By URL, rendered and then from the derived cache.
	s.putOriginal(t, "uploads/privacy/by-url.jpg", original)
	for _, q := range queries {
		f := strings.TrimPrefix(q, "format=")
		path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/privacy/by-url.jpg", Options: opts("width", "80", "format", f)})
		for i := range 2 {
			resp, b := s.do(t, "GET", path, nil, http.Header{"Accept": {"image/avif,image/webp"}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
			}
			name := fmt.Sprintf("GET /img %s (%s): %s", q, resp.Header.Get("Cache-Status"), resp.Header.Get("Content-Type"))
			checkUpright(t, s, name, b, 80, 120)
			outs[name] = b
			if i == 0 {
				s.settled(t, path)
			}
		}
	}
	resp, b := s.do(t, "POST", "/uploads?key=privacy/meta.jpg", original, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var up struct {
		Variants []struct {
			Key, Format   string
			Width, Height int
		}
	}
	if err := json.Unmarshal(b, &up); err != nil {
		t.Fatalf("upload answer %s: %v", b, err)
	}
	made := map[string]bool{}
	for _, v := range up.Variants {
		made[v.Format] = true
		resp, b := s.do(t, "GET", "/objects/"+url.PathEscape(v.Key), nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", v.Key, resp.StatusCode)
		}
		if v.Width != 100 || v.Height != 150 {
			t.Errorf("variant %s: answered %dx%d, want 100x150 (upright)", v.Key, v.Width, v.Height)
		}
		name := "variant " + v.Key + " (" + v.Format + ")"
		if info := checkUpright(t, s, name, b, 100, 150); info != nil && info.Format.String() != v.Format {
			t.Errorf("%s: is %s", name, info.Format)
		}
		outs[name] = b
	}
	for _, f := range formats {
		if !made[f.String()] {
			t.Errorf("no variant in %s: the upload answered %s", f, b)
		}
	}
	imagetest.CheckClean(t, outs)
}

// checkUpright fails t unless out, as the service's own reader sees it, is
// w x h with no orientation to apply. It returns what it read, or nil.
func checkUpright(t *testing.T, s *testServer, name string, out []byte, w, h int) *imageproc.Info {
	t.Helper()
	info, err := s.proc.Info(t.Context(), out)
	if err != nil {
		t.Errorf("%s: %v", name, err)
		return nil
	}
	if info.Width != w || info.Height != h || info.Orientation > 1 {
		t.Errorf("%s: %dx%d orientation %d, want %dx%d upright", name, info.Width, info.Height, info.Orientation, w, h)
	}
	return info
}
