package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resizer/resizer/internal/imageproc"
)

func testIntake(t *testing.T, maxBody, memory int64) *intake {
	t.Helper()
	x, err := newIntake(imageproc.NewGate(1, 1, time.Second), Config{MaxBodyBytes: maxBody, BodyMemory: memory}, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// Bodies of every size around the buffer classes come through whole, with
// or without a known length, and their buffers go back to BODY_MEMORY.
func TestReadAllSizes(t *testing.T) {
	const maxBody = 100 << 10 // classes of 16, 32, 64 and 100 KiB
	x := testIntake(t, maxBody, 1<<20)
	src := make([]byte, maxBody+1)
	for i := range src {
		src[i] = byte(rand.IntN(256))
	}
	for _, n := range []int{1, 100, firstBuffer - 1, firstBuffer, firstBuffer + 1, 2 * firstBuffer, 50 << 10, 64 << 10, maxBody - 1, maxBody, maxBody + 1} {
		for _, known := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d bytes, length known %v", n, known), func(t *testing.T) {
				length := int64(-1)
				if known {
					length = int64(n)
				}
				// One byte per read at times, as a network delivers it.
				r := http.MaxBytesReader(nil, io.NopCloser(&choppy{b: src[:n]}), maxBody)
				b := &body{x: x, leave: func() {}}
				err := b.readAll(r, length, nil)
				if n > maxBody {
					if !errors.Is(err, errTooLarge) {
						t.Fatalf("err = %v, want errTooLarge", err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(b.Bytes(), src[:n]) {
						t.Fatalf("read %d bytes, not the %d sent", b.buf.Len(), n)
					}
					// Counted in bytes buffered: a class is at most twice
					// the body, or the first buffer.
					if held := x.held.Load(); held > int64(max(2*n, firstBuffer)+bytes.MinRead) {
						t.Fatalf("%d bytes held for a body of %d", held, n)
					}
				}
				b.close()
				if held := x.held.Load(); held != 0 {
					t.Fatalf("%d bytes still held after close", held)
				}
			})
		}
	}
}

// choppy returns its bytes in reads of varying, small sizes.
type choppy struct {
	b []byte
	i int
}

func (c *choppy) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	c.i++
	n := min(len(p), len(c.b), 1+c.i%7*1000)
	copy(p, c.b[:n])
	c.b = c.b[n:]
	return n, nil
}

// A body that has declared its length but not sent it holds a first
// buffer, not its Content-Length.
func TestNoBufferForBytesNotSent(t *testing.T) {
	x := testIntake(t, 32<<20, 64<<20)
	pr, pw := io.Pipe()
	b := &body{x: x, leave: func() {}}
	got := make(chan error, 1)
	go func() { got <- b.readAll(pr, 32<<20, nil) }()
	if _, err := pw.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if held := x.held.Load(); held != firstBuffer+bytes.MinRead {
		t.Fatalf("a body of 10 bytes so far (32 MiB declared) holds %d bytes, want %d", held, firstBuffer+bytes.MinRead)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF) // the client gives up
	if err := <-got; !errors.Is(err, errBadRequest) {
		t.Fatalf("err = %v, want errBadRequest", err)
	}
	b.close()
	if held := x.held.Load(); held != 0 {
		t.Fatalf("%d bytes still held", held)
	}
}

// When BODY_MEMORY is taken, a body that needs more is refused with 503
// and Retry-After; slow clients take only a first buffer each, and the
// memory comes back when they go.
func TestBodyMemoryBound(t *testing.T) {
	const maxBody = 64 << 10
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes, c.BodyMemory = maxBody, 2*maxBody })
	addr := strings.TrimPrefix(s.URL, "http://")
	first := int64(firstBuffer + bytes.MinRead)
	var conns []net.Conn
	for i := 0; i < 7; i++ { // 7 first buffers: 116 KiB of 128
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /resize?width=10 HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n\xff")
		conns = append(conns, c)
	}
	waitBodyMemory(t, s, 7*first)
	// A body of 40 KiB needs a buffer of 64 KiB, more than is left.
	img := testJPEG(t, 200, 150)
	for len(img) < 40<<10 {
		img = append(img, img...) // trailing bytes after the JPEG are ignored
	}
	img = img[:40<<10]
	resp, body := s.do(t, "POST", "/resize?width=10", img, nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "BODY_MEMORY") {
		t.Fatalf("over BODY_MEMORY: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	for _, c := range conns {
		c.Close()
	}
	waitBodyMemory(t, s, 0)
	if resp, body := s.do(t, "POST", "/resize?width=10", img, nil); resp.StatusCode != 200 {
		t.Fatalf("with the memory back: %d %s", resp.StatusCode, body)
	}
	waitBodyMemory(t, s, 0)
}

var bodyMemoryLine = regexp.MustCompile(`(?m)^resizer_body_memory_bytes (\S+)$`)

// waitBodyMemory waits, a few seconds at most, for the BODY_MEMORY gauge to
// read want.
func waitBodyMemory(t *testing.T, s *testServer, want int64) {
	t.Helper()
	var got string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, body := s.do(t, "GET", "/metrics", nil, nil)
		m := bodyMemoryLine.FindSubmatch(body)
		if m == nil {
			t.Fatal("no resizer_body_memory_bytes in /metrics")
		}
		if got = string(m[1]); got == strconv.FormatInt(want, 10) {
			return
		}
	}
	t.Fatalf("resizer_body_memory_bytes %s, want %d", got, want)
}

// The body's deadlines end with the body: a request that waits for a slot
// past READ_TIMEOUT is served, whether its body was read to its end or
// left after the file part of a form.
func TestReadTimeoutEndsWithTheBody(t *testing.T) {
	base := newTestServer(t, func(c *Config, p *imageproc.Config) {
		c.ReadTimeout, c.MinBodyRateGrace = 300*time.Millisecond, 300*time.Millisecond
		p.Concurrency, p.QueueTimeout = 1, 10*time.Second
	})
	// As cmd/server runs it: http.Server's ReadTimeout is READ_TIMEOUT too.
	srv := serveWith(t, base.Config.Handler, func(c *http.Server) { c.ReadTimeout = 300 * time.Millisecond })
	s := &testServer{Server: srv, logs: base.logs, proc: base.proc}
	img := testJPEG(t, 40, 30)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "a.jpg")
	fw.Write(img)
	mw.Close()
	for _, tt := range []struct {
		name string
		body []byte
		h    http.Header
	}{
		{"raw", img, nil},
		{"multipart", form.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release, err := s.proc.Gate().Acquire(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			time.AfterFunc(time.Second, release)
			start := time.Now()
			resp, body := s.do(t, "POST", "/resize?width=10", tt.body, tt.h)
			if resp.StatusCode != 200 || time.Since(start) < time.Second {
				t.Fatalf("after waiting %v for a slot: %d %s", time.Since(start), resp.StatusCode, body)
			}
		})
	}
}

// readError tells the client's mistakes from its slowness and from ours,
// however the error is wrapped on its way up.
func TestReadError(t *testing.T) {
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name  string
		err   error
		paced *pacedBody
		want  error
	}{
		{"cut short", io.ErrUnexpectedEOF, nil, errBadRequest},
		{"cut short, in multipart", fmt.Errorf("multipart: NextPart: %w", io.ErrUnexpectedEOF), nil, errBadRequest},
		{"malformed chunks", errors.New("malformed chunked encoding"), nil, errBadRequest},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, nil, errBadRequest},
		{"over MAX_BODY_BYTES", &http.MaxBytesError{Limit: 10}, nil, errTooLarge},
		{"a deadline", timeout, nil, errRequestTimeout},
		{"a deadline, wrapped", fmt.Errorf("multipart: NextPart: %w", timeout), nil, errRequestTimeout},
		// Whatever surfaced, a body whose deadline fired is a 408.
		{"after our deadline fired", errors.New("multipart: something"),
			&pacedBody{cut: fmt.Errorf("%w: MIN_BODY_RATE", errRequestTimeout)}, errRequestTimeout},
		{"a deadline we could not set", io.ErrUnexpectedEOF, &pacedBody{fault: http.ErrNotSupported}, http.ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readError(tt.err, tt.paced); !errors.Is(got, tt.want) {
				t.Fatalf("readError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
	if got := readError(http.ErrBodyReadAfterClose, nil); lookup(got).status != 500 {
		t.Fatalf("a read after Close is ours: %v", got)
	}
}
