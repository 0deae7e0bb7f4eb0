package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return v
}

func checkUpload(t *testing.T, u api.Upload, keyPrefix string) {
	t.Helper()
	if !strings.HasPrefix(u.Key, keyPrefix) || u.Width != 2560 || u.Height != 1600 || u.Format != "jpeg" || u.Etag == "" || len(u.Variants) != 2 {
		t.Fatalf("upload %+v", u)
	}
	rel := strings.TrimPrefix(u.Key, "uploads/")
	if v := u.Variants[0]; v.Name != "thumb" || v.Key != "resized/thumb/"+rel || v.Width != 100 || v.Height != 100 || v.Format != "jpeg" || v.Bytes <= 0 {
		t.Fatalf("thumb %+v", v)
	}
	if v := u.Variants[1]; v.Key != "resized/medium/"+rel+".webp" || v.Width != 400 || v.Height != 250 || v.Format != "webp" {
		t.Fatalf("medium %+v", v)
	}
}

func TestUploadLocal(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	resp, body := s.do(t, "POST", "/uploads", photo, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	u := decodeJSON[api.Upload](t, body)
	checkUpload(t, u, "uploads/"+time.Now().UTC().Format("2006/01/02/"))
	if loc := resp.Header.Get("Location"); loc != "/objects/"+url.PathEscape(u.Key) {
		t.Fatalf("Location %q", loc)
	}
	// The original and the variants can be read back.
	resp, got := s.do(t, "GET", resp.Header.Get("Location"), nil, nil)
	if resp.StatusCode != 200 || !bytes.Equal(got, photo) || resp.Header.Get("ETag") != u.Etag || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("original: %d %s", resp.StatusCode, resp.Header)
	}
	resp, got = s.do(t, "GET", "/objects/"+url.PathEscape(u.Variants[1].Key), nil, nil)
	if resp.StatusCode != 200 || imageproc.Sniff(got) != imageproc.FormatWebP || resp.Header.Get("Cache-Control") != "public, max-age=60" {
		t.Fatalf("variant: %d %s", resp.StatusCode, resp.Header)
	}
	// A browser's copy of it is confirmed without its bytes; another
	// ETag is not a match.
	etag := resp.Header.Get("ETag")
	if _, err := http.ParseTime(resp.Header.Get("Last-Modified")); err != nil || etag == "" {
		t.Fatalf("variant: ETag %q, Last-Modified: %v", etag, err)
	}
	for inm, want := range map[string]int{etag: 304, `"other", ` + etag: 304, "W/" + etag: 304, "*": 304, `"other"`: 200} {
		resp, got := s.do(t, "GET", "/objects/"+url.PathEscape(u.Variants[1].Key), nil, http.Header{"If-None-Match": {inm}})
		if resp.StatusCode != want || (want == 304 && (len(got) != 0 || resp.Header.Get("ETag") != etag)) {
			t.Errorf("If-None-Match %s: %d (%d bytes) %s, want %d", inm, resp.StatusCode, len(got), resp.Header, want)
		}
	}
	if resp, _ := s.do(t, "GET", "/objects/"+url.PathEscape("uploads/none.jpg"), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("missing object: %d", resp.StatusCode)
	}

	// A chosen key, and a multipart form.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "cat.jpg")
	fw.Write(photo)
	mw.Close()
	resp, body = s.do(t, "POST", "/uploads?key=cats/"+url.QueryEscape("tom & jerry.jpg"), form.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}})
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	checkUpload(t, decodeJSON[api.Upload](t, body), "uploads/cats/tom & jerry.jpg")
}

// A {key} is percent-decoded exactly once: %2F is a slash of the key,
// %252F the three characters %2F.
func TestObjectKeysDecodedOnce(t *testing.T) {
	s := newTestServer(t, nil)
	keys := []struct{ key, path string }{
		{"lit%2Fkey.jpg", "/objects/lit%252Fkey.jpg"},
		{"lit/key.jpg", "/objects/lit%2Fkey.jpg"},
		{"100%.jpg", "/objects/100%25.jpg"},
		{"a b.jpg", "/objects/a%20b.jpg"},
		{"uploads/%41.jpg", "/objects/uploads%2F%2541.jpg"},
	}
	for i, k := range keys {
		if _, err := s.local.Put(t.Context(), k.key, testJPEG(t, 10+i, 10), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range keys {
		resp, body := s.do(t, "GET", k.path, nil, nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", k.path, resp.StatusCode, body)
			continue
		}
		if w, _, _ := imageSize(t, body); w != 10+i {
			t.Errorf("GET %s gave the object of another key (width %d, want %d)", k.path, w, 10+i)
		}
	}
}

// A problem's instance is the path of the request as it was sent: a
// key's %2F (every key below a prefix) and escapes kept, so that it names
// the resource the request did, as a URI reference (RFC 9457). The
// decoded path named another key, or no route at all, and held spaces
// and bytes no URI holds.
func TestProblemInstanceIsTheRequestPath(t *testing.T) {
	s := newTestServer(t, nil)
	for _, tt := range []struct{ method, path string }{
		{"GET", "/objects/lit%252Fnone.jpg"},
		{"GET", "/objects/uploads%2Fnone%20here.jpg"},
		{"PUT", "/uploads/uploads%2F%C3%BC%20b.jpg?expires=1&size=10&type=image%2Fjpeg&sig=00"},
	} {
		resp, body := s.do(t, tt.method, tt.path, []byte("0123456789"), http.Header{"Content-Type": {"image/jpeg"}})
		p := decodeJSON[api.Problem](t, body)
		want, _, _ := strings.Cut(tt.path, "?")
		if resp.StatusCode/100 != 4 || p.Instance == nil || *p.Instance != want {
			t.Errorf("%s %s: %d, instance %s, want %q", tt.method, tt.path, resp.StatusCode, body, want)
		}
	}
}

// GET /objects/ serves whatever the store holds at a key, not only the
// images and manifests the service wrote: what delivery records of the
// paths it served, a file put in the directory by hand. Its bytes go out
// as application/octet-stream, which the document must allow; a key the
// store cannot hold is a 400.
func TestObjectOtherThanImage(t *testing.T) {
	s := newTestServer(t, nil)
	if _, err := s.local.Put(t.Context(), "resized/_cache/notes.txt", []byte("not an image"),
		storage.PutOptions{ContentType: "text/plain"}); err != nil {
		t.Fatal(err)
	}
	resp, body := s.do(t, "GET", "/objects/"+url.PathEscape("resized/_cache/notes.txt"), nil, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/octet-stream" || string(body) != "not an image" {
		t.Errorf("text object: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, body := s.do(t, "GET", "/objects/"+url.PathEscape(".meta/x.jpg"), nil, nil); resp.StatusCode != 400 {
		t.Errorf("hidden key: %d %s", resp.StatusCode, body)
	}
}

func TestUploadRefusals(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	for _, tt := range []struct {
		name   string
		query  string
		body   []byte
		status int
	}{
		{"not an image", "", []byte("<html>hello</html>"), 415},
		{"truncated", "", photo[:len(photo)/2], 422},
		{"escaping key", "key=../../etc/passwd", photo, 400},
		{"hidden key", "key=.meta/x", photo, 400},
		{"key segment too long for local storage", "key=" + strings.Repeat("s", 248) + ".jpg", photo, 400},
		{"unknown parameter", "width=10", photo, 400},
		{"key given twice", "key=a.jpg&key=b.jpg", photo, 400},
		{"empty key", "key=", photo, 400},
		{"empty body", "", nil, 400},
	} {
		resp, body := s.do(t, "POST", "/uploads?"+tt.query, tt.body, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, resp.StatusCode, tt.status, body)
		}
	}
	if objs, _ := s.local.List(t.Context(), "", 0); len(objs) != 0 {
		t.Fatalf("refused uploads left objects: %v", objs)
	}
}

// With local storage, a key that would be a folder of a stored key, or
// the other way round, is a conflict: nothing replaces the stored object.
func TestUploadLocalConflicts(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	for _, tt := range []struct{ first, second string }{
		{"a.jpg", "a.jpg/x.jpg"},
		{"d/y.jpg", "d"},
	} {
		if resp, body := s.do(t, "POST", "/uploads?key="+url.QueryEscape(tt.first), photo, nil); resp.StatusCode != 201 {
			t.Fatalf("%s: %d %s", tt.first, resp.StatusCode, body)
		}
		resp, body := s.do(t, "POST", "/uploads?key="+url.QueryEscape(tt.second), photo, nil)
		if resp.StatusCode != 409 || !strings.Contains(string(body), "urn:resizer:problem:conflict") {
			t.Errorf("%s then %s: %d %s", tt.first, tt.second, resp.StatusCode, body)
		}
		if resp, _ := s.do(t, "GET", "/objects/"+url.PathEscape("uploads/"+tt.first), nil, nil); resp.StatusCode != 200 {
			t.Errorf("%s after the conflict: %d", tt.first, resp.StatusCode)
		}
	}
	// The same through a signed upload URL.
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "key": "a.jpg/z.jpg"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	p := decodeJSON[api.Presigned](t, body)
	if resp, body := s.do(t, "PUT", strings.TrimPrefix(p.Url, s.URL), photo, http.Header{"Content-Type": {"image/jpeg"}}); resp.StatusCode != 409 {
		t.Errorf("signed upload of a.jpg/z.jpg: %d %s", resp.StatusCode, body)
	}
}

// An upload whose variant's key is another original's (the test
// server's medium variant is WebP: k.jpg's is k.jpg.webp, as is the WebP
// original k.jpg.webp's) is a 409, and leaves the first as it was.
func TestUploadOverAnotherOriginalsOutput(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	if resp, body := s.do(t, "POST", "/uploads?key=k.jpg", photo, nil); resp.StatusCode != 201 {
		t.Fatalf("k.jpg: %d %s", resp.StatusCode, body)
	}
	webp, err := s.proc.Process(t.Context(), photo, imageproc.Options{Format: imageproc.FormatWebP, Width: 300})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := s.do(t, "POST", "/uploads?key=k.jpg.webp", webp.Data, nil)
	if resp.StatusCode != 409 || !strings.Contains(string(body), "urn:resizer:problem:conflict") || !strings.Contains(string(body), "another name") {
		t.Fatalf("k.jpg.webp: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(t, "GET", "/objects/"+url.PathEscape("uploads/k.jpg.webp"), nil, nil); resp.StatusCode != 404 {
		t.Errorf("the refused original was stored: %d", resp.StatusCode)
	}
}

func presign(t *testing.T, s *testServer, req map[string]any, h http.Header) (*http.Response, []byte) {
	t.Helper()
	b, _ := json.Marshal(req)
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "application/json")
	return s.do(t, "POST", "/uploads/presign", b, h)
}

func TestPresignLocal(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	resp, body := presign(t, s, map[string]any{"filename": "me.jpg", "content_type": "image/jpeg", "size": len(photo)}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	p := decodeJSON[api.Presigned](t, body)
	if p.Method != "PUT" || !strings.HasPrefix(p.Url, s.URL+"/uploads/uploads%2F") || p.Headers == nil ||
		(*p.Headers)["Content-Length"] != strconv.Itoa(len(photo)) || !strings.HasPrefix(p.Key, "uploads/") ||
		time.Until(p.ExpiresAt) < 50*time.Second {
		t.Fatalf("presigned %+v", p)
	}
	put := func(u string, body []byte, ctype string) (*http.Response, []byte) {
		path := strings.TrimPrefix(u, s.URL)
		return s.do(t, "PUT", path, body, http.Header{"Content-Type": {ctype}})
	}
	if resp, body := put(p.Url, photo[:len(photo)-1], "image/jpeg"); resp.StatusCode != 403 {
		t.Fatalf("other size: %d %s", resp.StatusCode, body)
	}
	if resp, body := put(p.Url, photo, "image/png"); resp.StatusCode != 403 {
		t.Fatalf("other type: %d %s", resp.StatusCode, body)
	}
	if resp, body := put(strings.Replace(p.Url, "sig=", "sig=00", 1), photo, "image/jpeg"); resp.StatusCode != 403 {
		t.Fatalf("forged signature: %d %s", resp.StatusCode, body)
	}
	resp, body = put(p.Url, photo, "image/jpeg")
	if resp.StatusCode != 201 {
		t.Fatalf("signed upload: %d %s", resp.StatusCode, body)
	}
	up := decodeJSON[api.Upload](t, body)
	checkUpload(t, up, p.Key)
	// The manifest is where the answer said, at this server's own URL.
	if want := "resized/_manifest/" + strings.TrimPrefix(p.Key, "uploads/") + ".json"; p.ManifestKey != want ||
		p.ManifestUrl == nil || *p.ManifestUrl != s.URL+"/objects/"+url.PathEscape(want) {
		t.Fatalf("manifest at %q, %v; want %q at this server's /objects/", p.ManifestKey, p.ManifestUrl, want)
	}
	if resp, body := s.do(t, "GET", strings.TrimPrefix(*p.ManifestUrl, s.URL), nil, nil); resp.StatusCode != 200 ||
		decodeJSON[api.Upload](t, body).Etag != up.Etag {
		t.Fatalf("manifest: %d %s", resp.StatusCode, body)
	}

	// A media type is case-insensitive: the URL is signed for its
	// lower-case spelling, which the answer says to send.
	resp, body = presign(t, s, map[string]any{"content_type": "Image/JPEG", "size": len(photo)}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("Image/JPEG: %d %s", resp.StatusCode, body)
	}
	if up := decodeJSON[api.Presigned](t, body); (*up.Headers)["Content-Type"] != "image/jpeg" || !strings.HasSuffix(up.Key, ".jpg") {
		t.Fatalf("Image/JPEG: headers %v, key %q", *up.Headers, up.Key)
	} else if resp, body := put(up.Url, photo, "image/jpeg"); resp.StatusCode != 201 {
		t.Fatalf("upload to the URL presigned for Image/JPEG: %d %s", resp.StatusCode, body)
	}

	// An expired URL is refused.
	q, _ := s.local.SignUpload("uploads/late.jpg", "image/jpeg", int64(len(photo)), nil, time.Now().Add(-time.Second))
	if resp, body := put(s.URL+"/uploads/"+url.PathEscape("uploads/late.jpg")+"?"+q.Encode(), photo, "image/jpeg"); resp.StatusCode != 403 ||
		!strings.Contains(string(body), "expired") {
		t.Fatalf("expired: %d %s", resp.StatusCode, body)
	}
	// A signed upload of something that is not an image stores nothing.
	junk := []byte("just text, 30 bytes long......")
	resp, body = presign(t, s, map[string]any{"content_type": "image/png", "size": len(junk), "key": "junk.png"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	jp := decodeJSON[api.Presigned](t, body)
	if resp, body := put(jp.Url, junk, "image/png"); resp.StatusCode != 415 {
		t.Fatalf("junk: %d %s", resp.StatusCode, body)
	}
	if _, _, err := s.local.Get(t.Context(), "uploads/junk.png", storage.GetOptions{}); err == nil {
		t.Fatal("junk was stored")
	}
	// No signature or query string reaches the log.
	sig := url.Values(must(url.ParseQuery(strings.SplitN(p.Url, "?", 2)[1]))).Get("sig")
	if strings.Contains(s.logs.String(), sig) || strings.Contains(s.logs.String(), "sig=") {
		t.Fatal("a signature reached the log")
	}
}

// A signed upload URL allows one upload: a failure leaves it usable, a
// success uses it up, and of two requests at once with it, one succeeds.
func TestSignedUploadURLIsSingleUse(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	signed := func() string {
		t.Helper()
		resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo)}, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("presign: %d %s", resp.StatusCode, body)
		}
		return strings.TrimPrefix(decodeJSON[api.Presigned](t, body).Url, s.URL)
	}
	jpeg := http.Header{"Content-Type": {"image/jpeg"}}
	u := signed()
	if resp, body := s.do(t, "PUT", u, bytes.Repeat([]byte("x"), len(photo)), jpeg); resp.StatusCode != 415 {
		t.Fatalf("not an image: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, "PUT", u, photo, jpeg); resp.StatusCode != 201 {
		t.Fatalf("retry after a failure: %d %s", resp.StatusCode, body)
	}
	if resp, body := s.do(t, "PUT", u, photo, jpeg); resp.StatusCode != 403 || !strings.Contains(string(body), "already used") {
		t.Fatalf("second use: %d %s", resp.StatusCode, body)
	}

	u = signed()
	start := make(chan struct{})
	codes := make([]int, 4)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("PUT", s.URL+u, bytes.NewReader(photo))
			req.Header.Set("Content-Type", "image/jpeg")
			<-start
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	created := 0
	for _, c := range codes {
		switch c {
		case 201:
			created++
		case 403, 409:
		default:
			t.Errorf("concurrent use: %d", c)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent uses of one URL succeeded (%v), want 1", created, codes)
	}
}

// A signed upload's bytes must be of the type its URL was signed for: a
// PNG sent to a URL for image/jpeg (and its .jpg key) is a 415, stores
// nothing, and leaves the URL usable.
func TestSignedUploadIsOfItsType(t *testing.T) {
	s := newTestServer(t, nil)
	png, err := s.proc.Process(t.Context(), testJPEG(t, 40, 30), imageproc.Options{Format: imageproc.FormatPNG})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(png.Data), "key": "lie.jpg"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	u := strings.TrimPrefix(decodeJSON[api.Presigned](t, body).Url, s.URL)
	resp, body = s.do(t, "PUT", u, png.Data, http.Header{"Content-Type": {"image/jpeg"}})
	if resp.StatusCode != 415 || !strings.Contains(string(body), "image/png") {
		t.Fatalf("PNG to a URL for JPEG: %d %s", resp.StatusCode, body)
	}
	if objs, _ := s.local.List(t.Context(), "", 0); len(objs) != 0 {
		t.Fatalf("the refused upload left objects: %v", objs)
	}
	// The same URL still takes a JPEG of that size: there is none at
	// hand, so its refusal must be the size's, not a used URL's.
	resp, body = s.do(t, "PUT", u, testJPEG(t, 40, 30), http.Header{"Content-Type": {"image/jpeg"}})
	if resp.StatusCode != 403 || strings.Contains(string(body), "already used") {
		t.Fatalf("the URL after the refusal: %d %s", resp.StatusCode, body)
	}
}

// A signed upload sent chunked, without Content-Length, is told so (411),
// not that its URL is wrong (403); the URL stays usable.
func TestSignedUploadNeedsContentLength(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testJPEG(t, 40, 30)
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo)}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	u := decodeJSON[api.Presigned](t, body).Url
	req, _ := http.NewRequest("PUT", u, io.MultiReader(bytes.NewReader(photo))) // no length known: chunked
	req.Header.Set("Content-Type", "image/jpeg")
	chunked, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(chunked.Body)
	chunked.Body.Close()
	if chunked.StatusCode != 411 || chunked.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), "Content-Length") {
		t.Fatalf("chunked: %d %s", chunked.StatusCode, b)
	}
	contract.Check(t, req, chunked, b)
	if resp, body := s.do(t, "PUT", strings.TrimPrefix(u, s.URL), photo, http.Header{"Content-Type": {"image/jpeg"}}); resp.StatusCode != 201 {
		t.Fatalf("with its length: %d %s", resp.StatusCode, body)
	}
}

// The server's own upload URLs lead to PUBLIC_URL or to its listen
// address, whatever Host header the request that asked for them carried.
func TestPresignLocalURLIgnoresHost(t *testing.T) {
	for _, tt := range []struct {
		name, publicURL, want string
	}{
		{"listen address", "", ""}, // the test server's own URL
		{"PUBLIC_URL", "https://img.example/", "https://img.example/uploads/uploads%2F"},
	} {
		s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.PublicURL = tt.publicURL })
		if tt.want == "" {
			tt.want = s.URL + "/uploads/uploads%2F"
		}
		req, _ := http.NewRequest("POST", s.URL+"/uploads/presign", strings.NewReader(`{"content_type":"image/jpeg","size":10}`))
		req.Header.Set("Content-Type", "application/json")
		req.Host = "evil.example:666"
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		p := decodeJSON[api.Presigned](t, must(io.ReadAll(resp.Body)))
		resp.Body.Close()
		if !strings.HasPrefix(p.Url, tt.want) {
			t.Errorf("%s: upload URL %s, want it under %s", tt.name, p.Url, tt.want)
		}
	}
}

func TestBaseURL(t *testing.T) {
	for _, tt := range []struct{ publicURL, listen, want string }{
		{"https://img.example/", "127.0.0.1:8080", "https://img.example"},
		{"", "127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"", "0.0.0.0:8080", "http://127.0.0.1:8080"},
		{"", "[::]:8080", "http://[::1]:8080"},
		{"", ":8080", "http://127.0.0.1:8080"},
		{"", "[::1]:43210", "http://[::1]:43210"},
	} {
		if got := baseURL(Config{PublicURL: tt.publicURL, ListenAddr: tt.listen}); got != tt.want {
			t.Errorf("PUBLIC_URL %q, listening on %q: %s, want %s", tt.publicURL, tt.listen, got, tt.want)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestPresignRefusals(t *testing.T) {
	s := newTestServer(t, nil)
	for _, tt := range []struct {
		name   string
		req    map[string]any
		status int
	}{
		{"html", map[string]any{"content_type": "text/html", "size": 10}, 415},
		{"svg not enabled", map[string]any{"content_type": "image/svg+xml", "size": 10}, 415},
		{"too large", map[string]any{"content_type": "image/jpeg", "size": 4<<20 + 1}, 413},
		{"zero size", map[string]any{"content_type": "image/jpeg", "size": 0}, 400},
		{"unknown field", map[string]any{"content_type": "image/jpeg", "size": 10, "acl": "public-read"}, 400},
		{"escaping key", map[string]any{"content_type": "image/jpeg", "size": 10, "key": "../x.jpg"}, 400},
		{"key segment too long for local storage", map[string]any{"content_type": "image/jpeg", "size": 10, "key": strings.Repeat("s", 248) + ".jpg"}, 400},
		{"POST with local storage", map[string]any{"content_type": "image/jpeg", "size": 10, "method": "POST"}, 400},
		{"no content type", map[string]any{"size": 10}, 400},
		{"nothing", map[string]any{}, 400},
		{"a body over 16 KiB", map[string]any{"content_type": "image/jpeg", "size": 10, "key": strings.Repeat("k/", 9000) + "a.jpg"}, 413},
	} {
		resp, body := presign(t, s, tt.req, nil)
		if resp.StatusCode != tt.status {
			t.Errorf("%s: %d, want %d: %s", tt.name, resp.StatusCode, tt.status, body)
		}
	}
	for _, b := range []string{"{not json", `{"content_type":"image/jpeg","size":10} {"size":20}`, `{"content_type":"image/jpeg","size":10}x`, "null"} {
		if resp, body := s.do(t, "POST", "/uploads/presign", []byte(b), http.Header{"Content-Type": {"application/json"}}); resp.StatusCode != 400 {
			t.Errorf("%s: %d %s", b, resp.StatusCode, body)
		}
	}
	// Blanks after the document are still one document.
	if resp, body := s.do(t, "POST", "/uploads/presign", []byte("{\"content_type\":\"image/jpeg\",\"size\":10}\n"), http.Header{"Content-Type": {"application/json"}}); resp.StatusCode != 200 {
		t.Errorf("a newline after the request: %d %s", resp.StatusCode, body)
	}
}

// A presign request whose JSON stalls past READ_TIMEOUT is a 408, as a
// stalled body is on every other route (it was a 400, "malformed"), and
// one cut before its Content-Length a 400; neither is logged as the
// service's fault.
func TestPresignCutOrSlowBody(t *testing.T) {
	cutAndStalled(t, "/uploads/presign", http.Header{"Content-Type": {"application/json"}},
		[]byte(`{"content_type":"image/jpeg",`), "unexpected EOF", "timed out")
}

func TestUploadsNeedKeys(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.APIKeys = []string{"upload-key-1"} })
	photo := testdata(t, "ladybird.jpg")
	if resp, _ := s.do(t, "POST", "/uploads", photo, nil); resp.StatusCode != 401 {
		t.Fatalf("upload without key: %d", resp.StatusCode)
	}
	if resp, _ := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": 10}, nil); resp.StatusCode != 401 {
		t.Fatalf("presign without key: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, "GET", "/objects/x", nil, nil); resp.StatusCode != 401 {
		t.Fatalf("object without key: %d", resp.StatusCode)
	}
	auth := http.Header{"Authorization": {"Bearer upload-key-1"}}
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo)}, auth)
	if resp.StatusCode != 200 {
		t.Fatalf("presign with key: %d %s", resp.StatusCode, body)
	}
	// The signed URL is the authorization of the upload itself.
	p := decodeJSON[api.Presigned](t, body)
	if resp, body := s.do(t, "PUT", strings.TrimPrefix(p.Url, s.URL), photo, http.Header{"Content-Type": {"image/jpeg"}}); resp.StatusCode != 201 {
		t.Fatalf("signed upload without key: %d %s", resp.StatusCode, body)
	}
	if strings.Contains(s.logs.String(), "upload-key-1") {
		t.Fatal("the key reached the log")
	}
}

func newS3TestServer(t *testing.T) (*testServer, *s3test.Server, *storage.S3) {
	t.Helper()
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return newTestServerOn(t, st, nil), srv, st
}

func TestUploadS3(t *testing.T) {
	s, srv, st := newS3TestServer(t)
	photo := testdata(t, "ladybird.jpg")
	resp, body := s.do(t, "POST", "/uploads?key=a/b.jpg", photo, nil)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	u := decodeJSON[api.Upload](t, body)
	checkUpload(t, u, "uploads/a/b.jpg")
	if loc := resp.Header.Get("Location"); loc != srv.Endpoint+"/"+st.Bucket()+"/uploads/a/b.jpg" {
		t.Fatalf("Location %q", loc)
	}
	for _, k := range []string{u.Key, u.Variants[0].Key, u.Variants[1].Key} {
		if _, err := st.Head(t.Context(), k); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	// Local-only routes are not there with S3.
	if resp, _ := s.do(t, "PUT", "/uploads/"+url.PathEscape("uploads/x.jpg")+"?expires=1&size=1&type=image/jpeg&sig=00", photo, nil); resp.StatusCode != 404 {
		t.Fatalf("PUT /uploads with S3: %d", resp.StatusCode)
	}
	if resp, _ := s.do(t, "GET", "/objects/"+url.PathEscape(u.Key), nil, nil); resp.StatusCode != 404 {
		t.Fatalf("GET /objects with S3: %d", resp.StatusCode)
	}
}

func TestPresignS3(t *testing.T) {
	s, _, st := newS3TestServer(t)
	photo := testdata(t, "ladybird.jpg")
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "key": "post.jpg"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	p := decodeJSON[api.Presigned](t, body)
	if p.Method != "POST" || p.Fields == nil || (*p.Fields)["key"] != "uploads/post.jpg" || p.Key != "uploads/post.jpg" ||
		p.ManifestKey != "resized/_manifest/post.jpg.json" || p.ManifestUrl != nil /* no VARIANTS_BASE_URL: no URL */ {
		t.Fatalf("presigned %+v", p)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	for k, v := range *p.Fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "post.jpg")
	fw.Write(photo)
	mw.Close()
	r, err := http.Post(p.Url, mw.FormDataContentType(), &form)
	if err != nil || r.StatusCode/100 != 2 {
		t.Fatalf("form upload to S3: %v %v", r, err)
	}
	r.Body.Close()
	// The answer's ETag is what a browser waits for in the manifest
	// (docs/s3-flow.md).
	if h, err := st.Head(t.Context(), "uploads/post.jpg"); err != nil || h.Size != int64(len(photo)) || h.ETag != r.Header.Get("ETag") {
		t.Fatalf("uploaded: %+v %v, the form's answer said ETag %q", h, err, r.Header.Get("ETag"))
	}

	resp, body = presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "method": "PUT"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign PUT: %d %s", resp.StatusCode, body)
	}
	p = decodeJSON[api.Presigned](t, body)
	req, _ := http.NewRequest("PUT", p.Url, bytes.NewReader(photo))
	for k, v := range *p.Headers {
		req.Header.Set(k, v)
	}
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("PUT to S3: %v %v", r, err)
	}
	if _, err := st.Head(t.Context(), p.Key); err != nil {
		t.Fatalf("uploaded: %v", err)
	}
	if strings.Contains(s.logs.String(), "X-Amz-Signature") || strings.Contains(s.logs.String(), "policy") {
		t.Fatal("a presigned query or policy reached the log")
	}
}

// With VARIANTS_BASE_URL, a presign answer says where the manifest will
// be, at the CDN, escaped as the manifest's own URLs are; once the
// variants are made, the manifest is there with the upload's ETag: what a
// browser polls for.
func TestPresignManifestS3(t *testing.T) {
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServerWith(t, st, nil, func(c *pipeline.Config) { c.PublicBaseURL = "https://cdn.example.com/" })
	photo := testdata(t, "ladybird.jpg")
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "key": "cats/tom+1.jpg", "method": "PUT"}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	p := decodeJSON[api.Presigned](t, body)
	if p.ManifestKey != "resized/_manifest/cats/tom+1.jpg.json" || p.ManifestUrl == nil ||
		*p.ManifestUrl != "https://cdn.example.com/resized/_manifest/cats/tom%2B1.jpg.json" {
		t.Fatalf("presigned %+v, manifest URL %v", p, p.ManifestUrl)
	}
	req, _ := http.NewRequest("PUT", p.Url, bytes.NewReader(photo))
	for k, v := range *p.Headers {
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("PUT to S3: %v %v", r, err)
	}
	r.Body.Close()
	// S3's event, as the webhook would take it.
	if res, err := s.deps.Pipeline.Run(t.Context(), p.Key, r.Header.Get("ETag")); err != nil || res.Status != pipeline.StatusProcessed {
		t.Fatalf("run: %+v %v", res, err)
	}
	b, _, err := st.Get(t.Context(), p.ManifestKey, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := decodeJSON[api.Upload](t, b); m.Etag != r.Header.Get("ETag") || !strings.HasPrefix(m.Variants[0].Url, "https://cdn.example.com/resized/thumb/cats/tom%2B1.jpg") {
		t.Fatalf("manifest %s, upload ETag %s", b, r.Header.Get("ETag"))
	}
}
