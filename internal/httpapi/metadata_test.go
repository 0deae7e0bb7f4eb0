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
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
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
// of POST /uploads and of an S3 event, one in each such format, and from
// GET /img in each (rendered, then from the derived cache), carries none of the
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
	// An original dropped into S3 (MinIO): the variants its event makes.
	s3s, fromEvent := eventVariants(t, strings.Join(variants, ","), enabled, original)
	if len(fromEvent) != len(formats) {
		t.Errorf("the event made %d variants, want %d", len(fromEvent), len(formats))
	}
	for key, b := range fromEvent {
		name := "event variant " + key
		checkUpright(t, s3s, name, b, 100, 150)
		outs[name] = b
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

// keep=icc keeps the colour profile and nothing hidden in or around it,
// on every path that makes an image: POST /resize, GET /img (rendered,
// then from the derived cache), the variants of POST /uploads, and those
// an S3 event makes (MinIO), in every format that carries a profile. The
// original's profile hides the
// uploader's EXIF (GPS position, Artist, MakerNote) between its tags and
// past its declared end, and a marker in its ID and reserved bytes; the
// profile was copied whole into every output that kept it.
func TestKeptProfileCarriesNothingElse(t *testing.T) {
	enabled, formats := writableAll()
	var keeping []imageproc.Format
	var variants []string
	for _, f := range formats {
		if f != imageproc.FormatGIF { // a GIF carries no profile
			keeping = append(keeping, f)
			variants = append(variants, fmt.Sprintf("icc-%s:100x0:%s?keep=icc", f, f))
		}
	}
	s := newTestServerVariants(t, nil, strings.Join(variants, ";"), func(_ *Config, p *imageproc.Config) {
		p.Formats = enabled
	}, nil)
	icc := imagetest.JPEGICC(testdata(t, "p3.jpg"))
	original := imagetest.JPEG(testJPEG(t, 300, 200), 1, imagetest.ICCHiding(icc))
	outs := map[string][]byte{}
	for _, f := range keeping {
		q := "/resize?width=80&keep=icc&format=" + f.String()
		resp, b := s.do(t, "POST", q, original, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
		}
		outs[q] = b
	}
	s.putOriginal(t, "uploads/privacy/icc.jpg", original)
	for _, f := range keeping {
		path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/privacy/icc.jpg", Options: opts("width", "80", "keep", "icc", "format", f.String())})
		for i := range 2 {
			resp, b := s.do(t, "GET", path, nil, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
			}
			outs[fmt.Sprintf("GET %s (%s)", path, resp.Header.Get("Cache-Status"))] = b
			if i == 0 {
				s.settled(t, path)
			}
		}
	}
	resp, b := s.do(t, "POST", "/uploads?key=privacy/icc-upload.jpg", original, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var up struct{ Variants []struct{ Key string } }
	if err := json.Unmarshal(b, &up); err != nil || len(up.Variants) != len(keeping) {
		t.Fatalf("upload answer %s: %v", b, err)
	}
	for _, v := range up.Variants {
		resp, b := s.do(t, "GET", "/objects/"+url.PathEscape(v.Key), nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", v.Key, resp.StatusCode)
		}
		outs["variant "+v.Key] = b
	}
	// An original dropped into S3 (MinIO): the variants its event makes.
	_, made := eventVariants(t, strings.Join(variants, ";"), enabled, original)
	if len(made) != len(keeping) {
		t.Errorf("the event made %d variants, want %d", len(made), len(keeping))
	}
	for key, b := range made {
		outs["event variant "+key] = b
	}
	imagetest.CheckCleanBut(t, outs, "ICC-header:*", "ICC_Profile:*")
	// The profile is kept, all the same (exiftool reads none in JPEG XL's
	// codestream).
	for name, tags := range imagetest.Exiftool(t, outs) {
		if tags["ICC_Profile:ProfileDescription"] == nil && !strings.Contains(name, "jxl") {
			t.Errorf("%s: no profile kept", name)
		}
	}
}

// eventVariants stores original in a fresh MinIO bucket, sends its
// ObjectCreated event to a server of these variants and formats, and
// returns the server and the variants the event made, by key.
func eventVariants(t *testing.T, variants string, formats []imageproc.Format, original []byte) (*testServer, map[string][]byte) {
	t.Helper()
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServerVariants(t, st, variants, func(_ *Config, p *imageproc.Config) {
		p.Formats = formats
	}, nil)
	const key = "uploads/privacy/event.jpg"
	obj, err := st.Put(t.Context(), key, original, storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	resp, r := s.event(t, s3Event("ObjectCreated:Put", st.Bucket(), key, obj.ETag), nil)
	if resp.StatusCode != http.StatusOK || len(r.Records) != 1 {
		t.Fatalf("event: %d %+v", resp.StatusCode, r)
	}
	made := map[string][]byte{}
	for _, o := range r.Records[0].Outputs {
		b, _, err := st.Get(t.Context(), o.Key, storage.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
		made[o.Key] = b
	}
	return s, made
}
