package httpapi

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "golang.org/x/image/webp" // decode WebP answers in assertions

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// The test server's URL_SIGNING_KEYS: the first signs, both verify.
const (
	testSigningKey    = "test-url-signing-key-0123456789abcdef"
	testOldSigningKey = "test-url-signing-key-retired-0123456789"
)

// recordingCDN is the test server's CDN: it records the paths it is told
// to invalidate.
type recordingCDN struct {
	mu    sync.Mutex
	paths []string
}

func (c *recordingCDN) Invalidate(_ context.Context, paths []string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paths = append(c.paths, paths...)
	return nil
}

func (c *recordingCDN) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.paths
	c.paths = nil
	slices.Sort(p)
	return p
}

// sign returns the path of r signed with key.
func sign(t *testing.T, key string, r imageurl.Request) string {
	t.Helper()
	p, err := imageurl.NewSigner(key).Path(r)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func opts(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return q
}

// putOriginal stores an original in the test server's directory.
func (s *testServer) putOriginal(t *testing.T, key string, data []byte) string {
	t.Helper()
	obj, err := s.local.Put(t.Context(), key, data, storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	return obj.ETag
}

// settled waits until the image at path is served from the cache (the
// write of a render follows its answer).
func (s *testServer) settled(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if resp, _ := s.do(t, "HEAD", path, nil, nil); strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never a hit", path)
}

// A signed URL serves the size it asks for, with the headers a CDN and a
// browser expect; asked again it is a hit with the same ETag; a copy the
// client holds gets a 304; HEAD answers like GET.
func TestDeliverSignedURL(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/cats/tom.jpg", testdata(t, "ladybird.jpg"))
	path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/cats/tom.jpg", Options: opts("width", "320", "quality", "70")})
	resp, body := s.do(t, "GET", path, nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	w, _, format := imageSize(t, body)
	h := resp.Header
	etag := h.Get("ETag")
	if w != 320 || format != "jpeg" || h.Get("Content-Type") != "image/jpeg" || !strings.HasPrefix(etag, `"`) ||
		h.Get("Cache-Control") != "public, max-age=300" || h.Get("Vary") != "" || h.Get("Last-Modified") == "" ||
		h.Get("Cache-Status") != "resizer; fwd=miss; stored" {
		t.Fatalf("%d wide %s; headers %v", w, format, h)
	}
	s.settled(t, path)
	resp, again := s.do(t, "GET", path, nil, nil)
	if resp.Header.Get("ETag") != etag || string(again) != string(body) || resp.Header.Get("Cache-Status") != "resizer; hit" {
		t.Fatalf("again: %v", resp.Header)
	}
	for _, inm := range []string{etag, `"other", ` + etag, "W/" + etag, "*"} {
		resp, b := s.do(t, "GET", path, nil, http.Header{"If-None-Match": {inm}})
		if resp.StatusCode != 304 || len(b) != 0 || resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Control") == "" {
			t.Errorf("If-None-Match %s: %d %v", inm, resp.StatusCode, resp.Header)
		}
	}
	if resp, b := s.do(t, "GET", path, nil, http.Header{"If-None-Match": {`"other"`}}); resp.StatusCode != 200 || len(b) != len(body) {
		t.Errorf("another ETag: %d, %d bytes", resp.StatusCode, len(b))
	}
	// Another spelling of the same options, signed on its own, is the
	// same image.
	other := sign(t, testSigningKey, imageurl.Request{Key: "uploads/cats/tom.jpg", Options: opts("quality", "70", "width", "320", "dpr", "1")})
	if resp, _ := s.do(t, "GET", other, nil, nil); resp.Header.Get("ETag") != etag || resp.Header.Get("Cache-Status") != "resizer; hit" {
		t.Errorf("another spelling: %v", resp.Header)
	}
	if n := renders(t, s); n != 1 {
		t.Errorf("%v renders", n)
	}
	// The access log names the image, not the signature.
	sig := strings.Split(path, "/")[2]
	if logs := s.logs.String(); strings.Contains(logs, sig) || !strings.Contains(logs, `"path":"/img/-/quality=70&width=320/uploads/cats/tom.jpg"`) {
		t.Errorf("the access log: %s", logs)
	}
}

// renders counts the images processed, from imageproc's own metrics.
func renders(t *testing.T, s *testServer) float64 {
	t.Helper()
	return metricTotal(t, s.reg, "resizer_image_process_seconds")
}

// metricTotal is the sum over a metric's series of their counts: a
// counter's value, a histogram's observations.
func metricTotal(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				n += float64(h.GetSampleCount())
			} else {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// A tampered, expired or unsigned URL, one signed with a key no longer
// listed, and one for a key outside the prefixes get 403; a URL signed
// with the older of two listed keys still works.
func TestDeliverForbidden(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/a.jpg", testJPEG(t, 64, 48))
	s.putOriginal(t, "private/a.jpg", testJPEG(t, 64, 48))
	r := imageurl.Request{Key: "uploads/a.jpg", Options: opts("width", "32")}
	good := sign(t, testSigningKey, r)
	expiring := r
	expiring.Expires = time.Now().Add(-time.Second)
	unsignedPreset, _ := imageurl.UnsignedPath(imageurl.Request{Key: "uploads/a.jpg", Preset: "thumb"})
	for name, path := range map[string]string{
		"tampered width":   strings.Replace(good, "width=32", "width=33", 1),
		"tampered key":     strings.Replace(good, "uploads/a.jpg", "uploads/b.jpg", 1),
		"expired":          sign(t, testSigningKey, expiring),
		"unsigned options": "/img/_/width=32/uploads/a.jpg",
		"unsigned preset":  unsignedPreset, // DELIVERY_UNSIGNED_PRESETS is off
		"a retired key":    sign(t, "a-key-no-longer-listed-0123456789abcdef", r),
		"not hex":          "/img/zz/width=32/uploads/a.jpg",
		"upper-case hex":   "/img/" + strings.ToUpper(good[len("/img/"):len("/img/")+64]) + good[len("/img/")+64:],
		"outside prefixes": sign(t, testSigningKey, imageurl.Request{Key: "private/a.jpg", Options: opts("width", "32")}),
	} {
		resp, body := s.do(t, "GET", path, nil, nil)
		if resp.StatusCode != 403 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, body := s.do(t, "GET", sign(t, testOldSigningKey, r), nil, nil); resp.StatusCode != 200 {
		t.Errorf("signed with the older key: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, "GET", good, nil, nil); resp.StatusCode != 200 {
		t.Errorf("good: %d %s", resp.StatusCode, body)
	}
	for name, path := range map[string]string{
		"unknown option":  sign(t, testSigningKey, imageurl.Request{Key: "uploads/a.jpg", Options: opts("size", "32")}),
		"bad option":      sign(t, testSigningKey, imageurl.Request{Key: "uploads/a.jpg", Options: opts("width", "0")}),
		"unknown preset":  sign(t, testSigningKey, imageurl.Request{Key: "uploads/a.jpg", Preset: "huge"}),
		"repeated option": "/img/" + strings.Repeat("0", 64) + "/width=32&width=32/uploads/a.jpg",
	} {
		if resp, body := s.do(t, "GET", path, nil, nil); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	if resp, _ := s.do(t, "GET", sign(t, testSigningKey, imageurl.Request{Key: "uploads/none.jpg", Options: opts("width", "32")}), nil, nil); resp.StatusCode != 404 {
		t.Errorf("no such original: %d", resp.StatusCode)
	}
}

// With DELIVERY_UNSIGNED_PRESETS, a preset is served unsigned, from its
// stored variant when there is one; sizes of one's own choosing are not.
func TestDeliverUnsignedPresets(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UnsignedPresets = true })
	resp, body := s.do(t, "POST", "/uploads?key=cats/tom.jpg", testdata(t, "ladybird.jpg"), nil)
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	before := renders(t, s)
	path, _ := imageurl.UnsignedPath(imageurl.Request{Key: "uploads/cats/tom.jpg", Preset: "medium"})
	resp, body = s.do(t, "GET", path, nil, nil)
	if w, _, f := imageSize(t, body); resp.StatusCode != 200 || w != 400 || f != "webp" ||
		resp.Header.Get("Cache-Status") != "resizer; hit; detail=variant" || renders(t, s) != before {
		t.Fatalf("unsigned preset: %d %d %s %v, %v renders", resp.StatusCode, w, f, resp.Header, renders(t, s)-before)
	}
	if resp, _ := s.do(t, "GET", "/img/_/width=400/uploads/cats/tom.jpg", nil, nil); resp.StatusCode != 403 {
		t.Fatalf("unsigned options: %d", resp.StatusCode)
	}
}

// A URL pinned to the original's version is immutable, and 404 once the
// original is replaced.
func TestDeliverPinned(t *testing.T) {
	s := newTestServer(t, nil)
	etag := s.putOriginal(t, "uploads/p.jpg", testJPEG(t, 64, 48))
	path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/p.jpg", Options: opts("width", "16"), Version: etag})
	resp, _ := s.do(t, "GET", path, nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	s.settled(t, path)
	// Replaced behind the service's back; the purge that an event (with
	// S3) or an upload (local) makes follows.
	v2 := s.putOriginal(t, "uploads/p.jpg", testJPEG(t, 32, 24))
	if _, err := s.deps.Delivery.Purge(t.Context(), "uploads/p.jpg", v2); err != nil {
		t.Fatal(err)
	}
	if resp, _ := s.do(t, "GET", path, nil, nil); resp.StatusCode != 404 {
		t.Fatalf("a replaced version: %d", resp.StatusCode)
	}
	expiring := sign(t, testSigningKey, imageurl.Request{Key: "uploads/p.jpg", Options: opts("width", "16"), Expires: time.Now().Add(90 * time.Second)})
	resp, _ = s.do(t, "GET", expiring, nil, nil)
	age, ok := strings.CutPrefix(resp.Header.Get("Cache-Control"), "public, max-age=")
	if n, err := strconv.Atoi(age); resp.StatusCode != 200 || !ok || err != nil || n > 90 || n < 80 {
		t.Fatalf("expiring in 90 s: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
}

// format=auto picks from Accept, says so with Vary, and keeps one image
// per choice.
func TestDeliverNegotiated(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/n.jpg", testJPEG(t, 64, 48))
	path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/n.jpg", Options: opts("width", "32", "format", "auto")})
	for _, c := range []struct{ accept, want string }{
		{"image/avif,image/webp,*/*", "image/avif"},
		{"image/webp,*/*", "image/webp"},
		{"*/*", "image/jpeg"},
		{"image/webp,*/*", "image/webp"},
	} {
		resp, _ := s.do(t, "GET", path, nil, http.Header{"Accept": {c.accept}})
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != c.want || resp.Header.Get("Vary") != "Accept" {
			t.Errorf("Accept %s: %d %s Vary=%q", c.accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Vary"))
		}
	}
	if n := renders(t, s); n != 3 {
		t.Errorf("%v renders, want 3", n)
	}
}

// Accept and If-None-Match are lists, which a client or a proxy may send
// over several field lines (RFC 9110 5.3): they are read as one list
// joined with commas, not as their first line alone, by GET /img/ and by
// POST /resize.
func TestDeliverListsOverSeveralLines(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/l.jpg", testJPEG(t, 64, 48))
	path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/l.jpg", Options: opts("width", "32", "format", "auto")})
	split := http.Header{"Accept": {"text/html", "image/webp"}}
	resp, _ := s.do(t, "GET", path, nil, split)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/webp" {
		t.Fatalf("Accept over two lines: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	refused := http.Header{"Accept": {"image/avif,image/webp", "image/avif;q=0"}}
	if resp, _ := s.do(t, "GET", path, nil, refused); resp.Header.Get("Content-Type") != "image/webp" {
		t.Errorf("AVIF refused on the second line: %s", resp.Header.Get("Content-Type"))
	}
	held := http.Header{"Accept": {"image/webp"}, "If-None-Match": {`"other"`, etag}}
	if resp, b := s.do(t, "GET", path, nil, held); resp.StatusCode != 304 || len(b) != 0 || resp.Header.Get("ETag") != etag {
		t.Errorf("If-None-Match over two lines: %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, _ := s.do(t, "HEAD", path, nil, held); resp.StatusCode != 304 {
		t.Errorf("HEAD, If-None-Match over two lines: %d", resp.StatusCode)
	}
	resp, body := s.do(t, "POST", "/resize?width=32&format=auto", testJPEG(t, 64, 48), split)
	if _, _, f := imageSize(t, body); resp.StatusCode != 200 || f != "webp" {
		t.Errorf("POST /resize, Accept over two lines: %d %s", resp.StatusCode, f)
	}
}

// A hundred requests at once for one URL that is not cached cause one
// render (counted by imageproc's metrics).
func TestDeliverOneRenderForAHundred(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/c.jpg", testdata(t, "ladybird.jpg"))
	path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/c.jpg", Options: opts("width", "500")})
	var wg sync.WaitGroup
	codes := make(chan int, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := s.Client().Get(s.URL + path)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a request got %d", c)
		}
	}
	if n := renders(t, s); n != 1 {
		t.Fatalf("%v renders for 100 requests", n)
	}
}

// When the webhook hears that an original was replaced, then deleted, the
// images derived from it go, and exactly the paths they were served under
// are invalidated: each signature and spelling, the pinned one included.
func TestDeliverPurgedByEvents(t *testing.T) {
	s := newTestServer(t, nil)
	v1 := s.putOriginal(t, "uploads/e.jpg", testJPEG(t, 64, 48))
	paths := []string{
		sign(t, testSigningKey, imageurl.Request{Key: "uploads/e.jpg", Options: opts("width", "20")}),
		sign(t, testOldSigningKey, imageurl.Request{Key: "uploads/e.jpg", Options: opts("width", "20")}),
		sign(t, testSigningKey, imageurl.Request{Key: "uploads/e.jpg", Options: opts("width", "20"), Version: v1}),
		sign(t, testSigningKey, imageurl.Request{Key: "uploads/e.jpg", Options: opts("width", "30", "format", "webp")}),
	}
	for _, p := range paths {
		if resp, body := s.do(t, "GET", p, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", p, resp.StatusCode, body)
		}
		s.settled(t, p)
	}
	current := paths[0]
	v2 := s.putOriginal(t, "uploads/e.jpg", testJPEG(t, 40, 30))
	resp, reply := s.event(t, s3Event("ObjectCreated:Put", "", "uploads/e.jpg", v2), nil)
	if resp.StatusCode != 200 || reply.Records[0].Status != "processed" {
		t.Fatalf("created: %d %+v", resp.StatusCode, reply)
	}
	slices.Sort(paths)
	if got := s.cdn.take(); !slices.Equal(got, paths) {
		t.Fatalf("invalidated %v\nwant %v", got, paths)
	}
	resp, body := s.do(t, "GET", current, nil, nil)
	if w, _, _ := imageSize(t, body); resp.StatusCode != 200 || w != 20 {
		t.Fatalf("after the replacement: %d", resp.StatusCode)
	}
	s.settled(t, current)
	cached, _ := s.local.List(t.Context(), "resized/_cache/", 0)
	if err := s.local.Delete(t.Context(), "uploads/e.jpg"); err != nil {
		t.Fatal(err)
	}
	if resp, reply := s.event(t, s3Event("ObjectRemoved:Delete", "", "uploads/e.jpg", ""), nil); resp.StatusCode != 200 || reply.Records[0].Status != "deleted" {
		t.Fatalf("removed: %d %+v", resp.StatusCode, reply)
	}
	if got := s.cdn.take(); !slices.Equal(got, []string{current}) {
		t.Fatalf("invalidated %v, want %v", got, current)
	}
	if left, _ := s.local.List(t.Context(), "resized/_cache/", 0); len(cached) == 0 || len(left) != 0 {
		t.Fatalf("cache before the deletion %d objects, after %d", len(cached), len(left))
	}
}

// An unsigned URL has one spelling, the one imageurl writes: any other
// (a letter percent-encoded, an escape in lower case, a character left
// bare that must be encoded, a slash of the key encoded, v before preset)
// is moved there with a 301, so that nobody can make countless CDN paths,
// each recorded and invalidated, of one image. Only the one spelling is
// recorded.
func TestDeliverUnsignedHasOneSpelling(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UnsignedPresets = true })
	noFollow := *s.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	get := func(path string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), "GET", s.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if req.URL.EscapedPath() != path {
			t.Fatalf("the client would send %s for %s", req.URL.EscapedPath(), path)
		}
		return contract.Do(t, &noFollow, req)
	}
	rng := rand.New(rand.NewPCG(11, 12))
	canonicals := map[string]bool{}
	for _, key := range []string{"uploads/cats/tom's (1).jpg", "uploads/ü/a+b c.jpg", "uploads/plain/x.jpg"} {
		etag := s.putOriginal(t, key, testJPEG(t, 64, 48))
		for _, version := range []string{"", etag} {
			canonical, err := imageurl.UnsignedPath(imageurl.Request{Key: key, Preset: "thumb", Version: version})
			if err != nil {
				t.Fatal(err)
			}
			canonicals[canonical] = true
			if resp, body := get(canonical); resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", canonical, resp.StatusCode, body)
			}
			for _, other := range otherSpellings(rng, canonical) {
				resp, body := get(other)
				if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != canonical || len(body) != 0 {
					t.Fatalf("%s: %d %q %s, want a 301 to %s", other, resp.StatusCode, resp.Header.Get("Location"), body, canonical)
				}
			}
		}
	}
	// Every answer is served and recorded: the markers name the canonical
	// paths only.
	var recorded []string
	objs, err := s.local.List(t.Context(), "resized/_cache/", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if strings.Contains(o.Key, ".path-") {
			b, _, err := s.local.Get(t.Context(), o.Key, storage.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			recorded = append(recorded, string(b))
		}
	}
	slices.Sort(recorded)
	if want := slices.Sorted(maps.Keys(canonicals)); !slices.Equal(recorded, want) {
		t.Fatalf("recorded %q\nwant %q", recorded, want)
	}
}

// otherSpellings returns paths that read as the unsigned URL p but are
// spelled otherwise: each way at a random place.
func otherSpellings(rng *rand.Rand, p string) []string {
	rest := strings.TrimPrefix(p, "/img/_/")
	opts, key, _ := strings.Cut(rest, "/")
	at := func(s string, ok func(i int) bool) int { // a random index of s where ok holds, or -1
		var is []int
		for i := range len(s) {
			if ok(i) {
				is = append(is, i)
			}
		}
		if len(is) == 0 {
			return -1
		}
		return is[rng.IntN(len(is))]
	}
	letter := func(s string) func(int) bool {
		return func(i int) bool { c := s[i]; return 'a' <= c && c <= 'z' && (i < 2 || s[i-2] != '%' && s[i-1] != '%') }
	}
	build := func(o, k string) string { return "/img/_/" + o + "/" + k }
	var out []string
	if i := at(key, letter(key)); i >= 0 { // a letter of the key escaped, in upper- and lower-case hex
		out = append(out, build(opts, key[:i]+fmt.Sprintf("%%%02X", key[i])+key[i+1:]))
		out = append(out, build(opts, key[:i]+fmt.Sprintf("%%%02x", key[i])+key[i+1:]))
	}
	if i := at(opts, letter(opts)); i >= 0 { // a letter of the options escaped
		out = append(out, build(opts[:i]+fmt.Sprintf("%%%02X", opts[i])+opts[i+1:], key))
	}
	if i := at(key, func(i int) bool { return key[i] == '%' && strings.ContainsAny(key[i+1:i+3], "ABCDEF") }); i >= 0 {
		out = append(out, build(opts, key[:i+1]+strings.ToLower(key[i+1:i+3])+key[i+3:])) // an escape in lower case
	}
	for esc, bare := range map[string]string{"%27": "'", "%28": "(", "%29": ")"} {
		if strings.Contains(key, esc) { // a character the browser leaves bare
			out = append(out, build(opts, strings.Replace(key, esc, bare, 1)))
		}
	}
	if i := at(key, func(i int) bool { return key[i] == '/' }); i >= 0 { // a slash of the key escaped
		out = append(out, build(opts, key[:i]+"%2F"+key[i+1:]))
	}
	if words := strings.Split(opts, "&"); len(words) > 1 { // the words in another order
		slices.Reverse(words)
		out = append(out, build(strings.Join(words, "&"), key))
	}
	return out
}

// An image is saved under its original's name with the extension of the
// format served, whatever the name holds; with DELIVERY_ALLOW_ORIGIN every
// answer (image, 304, redirect, error) carries it, and without it none does.
func TestDeliverNamesAndOrigins(t *testing.T) {
	for _, origin := range []string{"", "*", "https://www.example.com"} {
		s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UnsignedPresets, c.AllowOrigin = true, origin })
		for key, format := range map[string]string{
			"uploads/cats/tom.jpg":              "webp",
			"uploads/a/b/no-extension":          "png",
			"uploads/two.dots.in.name.png":      "jpeg",
			`uploads/quote"and space.jpg`:       "avif",
			"uploads/ünïcødé/Straße café.jpeg":  "webp",
			"uploads/semi;colon,comma=equal.jp": "jpeg",
		} {
			s.putOriginal(t, key, testJPEG(t, 64, 48))
			resp, body := s.do(t, "GET", sign(t, testSigningKey, imageurl.Request{Key: key, Options: opts("width", "32", "format", format)}), nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("%s: %d %s", key, resp.StatusCode, body)
			}
			disp, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
			ext := map[string]string{"webp": ".webp", "png": ".png", "jpeg": ".jpg", "avif": ".avif"}[format]
			want := strings.TrimSuffix(path.Base(key), path.Ext(path.Base(key))) + ext
			if err != nil || disp != "inline" || params["filename"] != want {
				t.Errorf("%s as %s: Content-Disposition %q (%v), want %q", key, format, resp.Header.Get("Content-Disposition"), err, want)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != origin {
				t.Errorf("origin %q: the image has %q", origin, got)
			}
		}
		good := sign(t, testSigningKey, imageurl.Request{Key: "uploads/cats/tom.jpg", Options: opts("width", "32")})
		resp, _ := s.do(t, "GET", good, nil, nil)
		notModified, _ := s.do(t, "GET", good, nil, http.Header{"If-None-Match": {resp.Header.Get("ETag")}})
		forbidden, _ := s.do(t, "GET", strings.Replace(good, "width=32", "width=33", 1), nil, nil)
		noFollow := *s.Client()
		noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/img/_/preset=th%75mb/uploads/cats/tom.jpg", nil)
		moved, _ := contract.Do(t, &noFollow, req)
		for status, r := range map[int]*http.Response{304: notModified, 403: forbidden, 301: moved} {
			if got := r.Header.Get("Access-Control-Allow-Origin"); r.StatusCode != status || got != origin {
				t.Errorf("origin %q: the %d (%d) has %q", origin, status, r.StatusCode, got)
			}
		}
	}
}

// A URL pinned to a version that is not stored (replaced, or made up:
// anyone may write an unsigned preset's v=) is a 404 found without a
// place at the gate, as a missing original is: with every place taken by
// renders it is still a 404, not a 503, and a flood of such URLs shuts no
// render out.
func TestDeliverPinnedToNoVersionTakesNoPlace(t *testing.T) {
	s := newTestServer(t, func(c *Config, p *imageproc.Config) {
		c.UnsignedPresets = true
		p.Concurrency, p.QueueSize = 1, 0
	})
	etag := s.putOriginal(t, "uploads/v.jpg", testJPEG(t, 64, 48))
	current := sign(t, testSigningKey, imageurl.Request{Key: "uploads/v.jpg", Options: opts("width", "16"), Version: etag})
	if resp, body := s.do(t, "GET", current, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("the current version: %d %s", resp.StatusCode, body)
	}
	s.settled(t, current)
	done, err := s.proc.Gate().Admit() // the only place
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	made, _ := imageurl.UnsignedPath(imageurl.Request{Key: "uploads/v.jpg", Preset: "thumb", Version: "0123456789abcdef"})
	for _, path := range []string{
		made,
		sign(t, testSigningKey, imageurl.Request{Key: "uploads/v.jpg", Options: opts("width", "16"), Version: "fedcba9876543210"}),
	} {
		if resp, body := s.do(t, "GET", path, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d %s, want 404", path, resp.StatusCode, body)
		}
	}
	if resp, body := s.do(t, "GET", current, nil, nil); resp.StatusCode != 200 || resp.Header.Get("Cache-Status") != "resizer; hit" {
		t.Errorf("the current version, cached: %d %s", resp.StatusCode, body)
	}
}

// A query string is another spelling of an unsigned URL too (a CDN that
// keys on it would keep a copy per query, which no purge invalidates):
// it is moved to the one spelling, which has none. A signed URL is served
// as it is.
func TestDeliverUnsignedHasNoQuery(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UnsignedPresets = true })
	s.putOriginal(t, "uploads/q.jpg", testJPEG(t, 64, 48))
	noFollow := *s.Client()
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	canonical, _ := imageurl.UnsignedPath(imageurl.Request{Key: "uploads/q.jpg", Preset: "thumb"})
	for _, query := range []string{"?utm_source=x", "?width=1000", "?"} {
		req, err := http.NewRequestWithContext(t.Context(), "GET", s.URL+canonical+query, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := contract.Do(t, &noFollow, req)
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != canonical || len(body) != 0 {
			t.Errorf("%s: %d %q, want a 301 to %s", canonical+query, resp.StatusCode, resp.Header.Get("Location"), canonical)
		}
	}
	signed := sign(t, testSigningKey, imageurl.Request{Key: "uploads/q.jpg", Options: opts("width", "16")})
	if resp, body := s.do(t, "GET", signed+"?utm_source=x", nil, nil); resp.StatusCode != 200 {
		t.Errorf("signed, with a query: %d %s", resp.StatusCode, body)
	}
}

// answered counts the images delivery served, from its own metrics.
func answered(t *testing.T, s *testServer) float64 {
	t.Helper()
	return metricTotal(t, s.reg, "resizer_delivery_images_total")
}

// Every answer with an image, or a 304 for one, counts once among the
// images served, however it was asked for: GET or HEAD, with or without
// an If-None-Match that names it or another copy, from the derived cache
// or a stored variant.
func TestDeliverCountsEachAnswerOnce(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UnsignedPresets = true })
	if resp, body := s.do(t, "POST", "/uploads?key=cats/tom.jpg", testdata(t, "ladybird.jpg"), nil); resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	signed := sign(t, testSigningKey, imageurl.Request{Key: "uploads/cats/tom.jpg", Options: opts("width", "120")})
	variant, _ := imageurl.UnsignedPath(imageurl.Request{Key: "uploads/cats/tom.jpg", Preset: "medium"})
	s.do(t, "GET", signed, nil, nil)
	s.settled(t, signed)
	for _, path := range []string{signed, variant} {
		resp, _ := s.do(t, "HEAD", path, nil, nil)
		etag := resp.Header.Get("ETag")
		for _, method := range []string{"GET", "HEAD"} {
			for _, inm := range []string{"", etag, `"another"`, `W/"another", ` + etag, "*"} {
				h := http.Header{}
				if inm != "" {
					h.Set("If-None-Match", inm)
				}
				before := answered(t, s)
				resp, _ := s.do(t, method, path, nil, h)
				if n := answered(t, s) - before; resp.StatusCode/100 > 3 || n != 1 {
					t.Errorf("%s %s If-None-Match %q: %d, counted %v times", method, path, inm, resp.StatusCode, n)
				}
			}
		}
	}
}
