package httpapi

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
)

// uncheckable are the answers of openapi.yaml that no test of this package
// can provoke through the real handler, each with the reason. Keep it
// short: an answer listed here is one whose shape nothing verifies.
var uncheckable = map[contract.Answer]string{
	{Method: "POST", Path: "/resize", Status: "500"}:                         internalOnly,
	{Method: "POST", Path: "/info", Status: "500"}:                           internalOnly,
	{Method: "POST", Path: "/uploads", Status: "500"}:                        internalOnly,
	{Method: "POST", Path: "/uploads/presign", Status: "500"}:                internalOnly,
	{Method: "PUT", Path: "/uploads/{key}", Status: "500"}:                   internalOnly,
	{Method: "GET", Path: "/objects/{key}", Status: "500"}:                   internalOnly,
	{Method: "GET", Path: "/img/{signature}/{options}/{key}", Status: "500"}: internalOnly,
	{Method: "POST", Path: "/webhooks/s3", Status: "500"}:                    internalOnly,
	{Method: "GET", Path: "/objects/{key}", Status: "503"}: "a read of the local directory is unavailable only on EIO, " +
		"EMFILE or ENOMEM, which a test cannot cause in its own directory",
	{Method: "POST", Path: "/uploads/presign", Status: "503"}: "presigning is computed in the process; it fails as " +
		"unavailable only when the SDK cannot fetch credentials (a task role's endpoint down)",
}

// internalOnly is why a 500 is not provoked: it is a fault of the service
// (a panic, an error the table does not know), which no real part fails
// into on demand; writeError's 500 document is the one shape of them all.
const internalOnly = "a fault of the service, which no real part can be made to commit"

// checkCoverage fails a run of every test of the package when an answer
// openapi.yaml documents went through no contract check: a status the
// document promises that no test ever saw is one nobody knows the server
// gives, or gives in that shape. A run of some tests only (-run, -skip,
// or -short, which skips the slow ones) reports nothing. It returns the
// exit code.
func checkCoverage(code int) int {
	if code != 0 || testing.Short() || flag.Lookup("test.run").Value.String() != "" || flag.Lookup("test.skip").Value.String() != "" {
		return code
	}
	missing, stale, err := contract.Unchecked(uncheckable)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	all, _ := contract.Documented()
	if testing.Verbose() {
		fmt.Printf("contract: %d of %d documented answers checked, %d allowed unchecked\n",
			len(all)-len(missing)-len(uncheckable)+len(stale), len(all), len(uncheckable)-len(stale))
	}
	for _, a := range missing {
		fmt.Fprintf(os.Stderr, "contract: %v is documented, and no test checked it\n", a)
	}
	for _, a := range stale {
		fmt.Fprintf(os.Stderr, "contract: %v is in uncheckable, but was checked or is not documented\n", a)
	}
	if len(missing)+len(stale) > 0 {
		return 1
	}
	return 0
}

// rawExchange sends req's head, saying req.ContentLength bytes of body
// are coming, and only part of them; with shut it then closes its
// writing half, so that the body ends short. The answer is read and
// checked against openapi.yaml. It is how a test is a client that stalls
// or hangs up, which http.Client will not be.
func rawExchange(t *testing.T, addr string, req *http.Request, part []byte, shut bool) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sendHead(t, conn, req, part)
	if shut {
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read the answer: %v", req.Method, req.URL.Path, err)
	}
	contract.Check(t, req, resp, body)
	return resp, body
}

// sendHead writes req's request line and headers on conn, and part of its
// body.
func sendHead(t *testing.T, conn net.Conn, req *http.Request, part []byte) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: resizer\r\nContent-Length: %d\r\n", req.Method, req.URL.RequestURI(), req.ContentLength)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.Write(part)
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// cutAndStalled posts to path, with header, a body of 500 bytes of which
// only part comes: once cut there (the sender's side shut), once stalled
// past READ_TIMEOUT (http.Server's ReadTimeout, as cmd/server sets it).
// Both are the sender's fault, on every route: 400 and 408 with a problem
// document naming cut and stalled, and neither logged as the service's
// fault.
func cutAndStalled(t *testing.T, path string, header http.Header, part []byte, cut, stalled string) {
	t.Helper()
	base := newTestServer(t, nil)
	srv := serveWith(t, base.Config.Handler, func(c *http.Server) { c.ReadTimeout = 300 * time.Millisecond })
	for _, tt := range []struct {
		name   string
		shut   bool
		status int
		detail string
	}{
		{"cut", true, 400, cut},
		{"stalled", false, 408, stalled},
	} {
		req := partial(t, "POST", srv.URL+path, "", 500)
		req.Header = header.Clone()
		resp, body := rawExchange(t, srv.Listener.Addr().String(), req, part, tt.shut)
		if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(string(body), tt.detail) {
			t.Errorf("%s %s: %d %s %s, want %d naming %q", path, tt.name, resp.StatusCode, resp.Header.Get("Content-Type"), body, tt.status, tt.detail)
		}
	}
	if strings.Contains(base.logs.String(), `"level":"error"`) {
		t.Fatalf("%s: a sender's body logged as the service's fault: %s", path, base.logs.String())
	}
}

// heldAnswered reports whether the server has answered, or closed, the
// request held open on conn.
func heldAnswered(t *testing.T, conn net.Conn) bool {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	n, err := conn.Read(b[:])
	var ne net.Error
	return n > 0 || !(errors.As(err, &ne) && ne.Timeout())
}

// partial is a request for the raw exchanges: its body is said to be n
// bytes long.
func partial(t *testing.T, method, target, contentType string, n int) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(n)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// signedPut is the path and query of a local upload URL for size bytes of
// JPEG.
func signedPut(t *testing.T, s *testServer, size int) string {
	t.Helper()
	resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": size}, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("presign: %d %s", resp.StatusCode, body)
	}
	return strings.TrimPrefix(decodeJSON[api.Presigned](t, body).Url, s.URL)
}

// The image limits answer as documented on every route that takes or
// serves an image: 413 over MAX_PIXELS, 422 for a cut image, 415 for bytes
// that are no image, and 400 for a body shorter than its Content-Length.
func TestImageRefusalsOnEveryRoute(t *testing.T) {
	s := newTestServer(t, func(_ *Config, p *imageproc.Config) { p.MaxPixels = 100 * 100 })
	big := testJPEG(t, 200, 150)
	small := testJPEG(t, 60, 40)
	cut := small[:len(small)/2]
	s.putOriginal(t, "uploads/big.jpg", big)
	s.putOriginal(t, "uploads/cut.jpg", cut)
	s.putOriginal(t, "uploads/text.jpg", []byte("no image at all, whatever its name"))
	jpeg := http.Header{"Content-Type": {"image/jpeg"}}
	img := func(key string) string {
		return sign(t, testSigningKey, imageurl.Request{Key: key, Options: opts("width", "20")})
	}
	for _, tt := range []struct {
		name, method, path string
		body               []byte
		status             int
	}{
		{"upload over MAX_PIXELS", "POST", "/uploads", big, 413},
		{"signed upload over MAX_PIXELS", "PUT", signedPut(t, s, len(big)), big, 413},
		{"signed upload cut", "PUT", signedPut(t, s, len(cut)), cut, 422},
		{"image URL over MAX_PIXELS", "GET", img("uploads/big.jpg"), nil, 413},
		{"image URL cut", "GET", img("uploads/cut.jpg"), nil, 422},
		{"image URL not an image", "GET", img("uploads/text.jpg"), nil, 415},
	} {
		h := jpeg
		if tt.method == "GET" {
			h = nil
		}
		if resp, body := s.do(t, tt.method, tt.path, tt.body, h); resp.StatusCode != tt.status {
			t.Errorf("%s: %d %s, want %d", tt.name, resp.StatusCode, body, tt.status)
		}
	}
	u := signedPut(t, s, len(small))
	resp, body := rawExchange(t, s.Listener.Addr().String(), partial(t, "PUT", u, "image/jpeg", len(small)), small[:100], true)
	if resp.StatusCode != 400 {
		t.Errorf("signed upload cut short of its Content-Length: %d %s", resp.StatusCode, body)
	}
}

// Every route whose body goes through the intake answers as documented
// when the body stalls (408), when the client has MAX_PER_CLIENT requests
// in flight (429), and when every processing place is taken (503, with
// Retry-After).
func TestLoadRefusalsOnEveryRoute(t *testing.T) {
	img := testJPEG(t, 40, 30)
	type route struct {
		name, method, path, ctype string
	}
	routes := func(s *testServer) []route {
		return []route{
			{"resize", "POST", "/resize?width=10", "image/jpeg"},
			{"info", "POST", "/info", "image/jpeg"},
			{"upload", "POST", "/uploads", "image/jpeg"},
			{"signed upload", "PUT", signedPut(t, s, len(img)), "image/jpeg"},
		}
	}

	t.Run("408", func(t *testing.T) {
		base := newTestServer(t, func(c *Config, _ *imageproc.Config) {
			c.ReadTimeout, c.MinBodyRateGrace = 300*time.Millisecond, 300*time.Millisecond
		})
		// As cmd/server runs it: http.Server's ReadTimeout is READ_TIMEOUT
		// too, which is what bounds the webhook's body.
		srv := serveWith(t, base.Config.Handler, func(c *http.Server) { c.ReadTimeout = 300 * time.Millisecond })
		rs := append(routes(base), route{"webhook", "POST", "/webhooks/s3", "application/json"})
		for _, r := range rs {
			req := partial(t, r.method, r.path, r.ctype, len(img))
			if r.name == "webhook" {
				// Credentials that pass before the body (a request without
				// them is refused unread, 401): the stall is in the body.
				req.Header.Set("Authorization", "Bearer webhook-secret")
			}
			resp, body := rawExchange(t, srv.Listener.Addr().String(), req, img[:10], false)
			if resp.StatusCode != 408 {
				t.Errorf("%s: %d %s, want 408", r.name, resp.StatusCode, body)
			}
		}
	})

	t.Run("429", func(t *testing.T) {
		s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxPerClient = 1 })
		// One request of this address in flight, its body never finished.
		hold := func() net.Conn {
			conn, err := net.Dial("tcp", s.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			sendHead(t, conn, partial(t, "POST", "/resize", "image/jpeg", len(img)), img[:10])
			return conn
		}
		conn := hold()
		defer func() { conn.Close() }()
		for _, r := range routes(s) {
			var resp *http.Response
			var body []byte
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if heldAnswered(t, conn) {
					// The held request reached the server while one of
					// these was in flight, and was the one refused: hold
					// another.
					conn.Close()
					conn = hold()
				}
				if resp, body = s.do(t, r.method, r.path, img, http.Header{"Content-Type": {r.ctype}}); resp.StatusCode == 429 {
					break
				}
			}
			if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s: %d %s, want 429 with Retry-After", r.name, resp.StatusCode, body)
			}
		}
	})

	t.Run("503", func(t *testing.T) {
		s := newTestServer(t, func(_ *Config, p *imageproc.Config) {
			p.Concurrency, p.QueueSize, p.QueueTimeout = 1, 0, 100*time.Millisecond
		})
		s.putOriginal(t, "uploads/busy.jpg", img)
		rs := routes(s)
		done, err := s.proc.Gate().Admit()
		if err != nil {
			t.Fatal(err)
		}
		defer done()
		release, err := s.proc.Gate().Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		for _, r := range rs {
			if resp, body := s.do(t, r.method, r.path, img, http.Header{"Content-Type": {r.ctype}}); resp.StatusCode != 503 {
				t.Errorf("%s: %d %s, want 503", r.name, resp.StatusCode, body)
			}
		}
		path := sign(t, testSigningKey, imageurl.Request{Key: "uploads/busy.jpg", Options: opts("width", "7")})
		if resp, body := s.do(t, "GET", path, nil, nil); resp.StatusCode != 503 {
			t.Errorf("image URL: %d %s, want 503", resp.StatusCode, body)
		}
	})
}
