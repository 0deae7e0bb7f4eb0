package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
	"time"
)

// A body that goes wrong on the client's side is the client's mistake:
// 400 when it is cut short or malformed, 408 when it is too slow, never
// 500. Each body is sent over a plain TCP connection, as a client would.
func TestBrokenBodies(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	s := start(t, map[string]string{"READ_TIMEOUT": "3s", "MIN_BODY_RATE": "1KiB", "MIN_BODY_RATE_GRACE": "500ms"})
	addr := strings.TrimPrefix(s.url, "http://")
	img := smallJPEG(t)
	form := func(closing bool) []byte {
		var b bytes.Buffer
		b.WriteString("--XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
		b.Write(img)
		if closing {
			b.WriteString("\r\n--XB--\r\n")
		}
		return b.Bytes()
	}
	head := func(path string, h ...string) string {
		return strings.Join(append([]string{"POST " + path + " HTTP/1.1", "Host: resizer"}, h...), "\r\n")
	}
	sized := func(path string, n int, h ...string) string {
		return head(path, append(h, fmt.Sprintf("Content-Length: %d", n))...)
	}
	chunked := "Transfer-Encoding: chunked"
	multipart := "Content-Type: multipart/form-data; boundary=XB"
	tests := []struct {
		name   string
		client rawClient
		status int
		detail string // in the problem's detail
	}{
		{"shorter than its Content-Length",
			rawClient{head: sized("/resize?width=10", 1000), pieces: [][]byte{img[:10]}, closeWrite: true},
			400, "incomplete or malformed"},
		{"shorter than its Content-Length, upload",
			rawClient{head: sized("/uploads", 1000), pieces: [][]byte{img[:10]}, closeWrite: true},
			400, "incomplete or malformed"},
		{"chunked without its last chunk",
			rawClient{head: head("/resize?width=10", chunked), pieces: [][]byte{[]byte("a\r\n\xff\xd8\xff\xe0\x00\x10JFIF\r\n")}, closeWrite: true},
			400, "incomplete or malformed"},
		{"chunked with a malformed chunk size",
			rawClient{head: head("/resize?width=10", chunked), pieces: [][]byte{[]byte("zz\r\nhello\r\n0\r\n\r\n")}},
			400, "incomplete or malformed"},
		{"multipart without its closing boundary",
			rawClient{head: sized("/resize?width=10", len(form(false)), multipart), pieces: [][]byte{form(false)}},
			400, "incomplete or malformed"},
		{"multipart without its closing boundary, upload",
			rawClient{head: sized("/uploads", len(form(false)), multipart), pieces: [][]byte{form(false)}},
			400, "incomplete or malformed"},
		{"multipart cut in its part",
			rawClient{head: sized("/resize?width=10", len(form(true)), multipart), pieces: [][]byte{form(true)[:200]}, closeWrite: true},
			400, "incomplete or malformed"},
		{"multipart cut in its part headers",
			rawClient{head: sized("/resize?width=10", 500, multipart), pieces: [][]byte{[]byte("--XB\r\nContent-Disp")}, closeWrite: true},
			400, "incomplete or malformed"},
		{"still arriving at READ_TIMEOUT",
			rawClient{head: sized("/resize?width=10", 1<<20), pieces: bytesEvery(make([]byte, 1<<20), 2<<10), every: 100 * time.Millisecond},
			408, "READ_TIMEOUT"},
		{"still arriving at READ_TIMEOUT, upload",
			rawClient{head: sized("/uploads", 1<<20), pieces: bytesEvery(make([]byte, 1<<20), 2<<10), every: 100 * time.Millisecond},
			408, "READ_TIMEOUT"},
		{"stalled",
			rawClient{head: sized("/resize?width=10", 100000), pieces: [][]byte{img[:3]}},
			408, "MIN_BODY_RATE"},
		{"stalled chunked",
			rawClient{head: head("/resize?width=10", chunked), pieces: [][]byte{[]byte("3\r\n\xff\xd8\xff\r\n")}},
			408, "MIN_BODY_RATE"},
		// Never idle for long, but far below the rate: an idle timeout
		// alone would never cut it.
		{"trickling",
			rawClient{head: sized("/resize?width=10", len(img)), pieces: bytesEvery(img, 1), every: 50 * time.Millisecond},
			408, "MIN_BODY_RATE"},
		// Slow, in small pieces, but above the rate: served.
		{"slow but steady",
			rawClient{head: sized("/resize?width=10", len(img), "Content-Type: image/jpeg"), pieces: bytesEvery(img, 1<<10), every: 50 * time.Millisecond},
			200, ""},
		{"slow but steady multipart",
			rawClient{head: sized("/resize?width=10", len(form(true)), multipart), pieces: bytesEvery(form(true), 1<<10), every: 50 * time.Millisecond},
			200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.client.send(t, addr)
			if a.resp.StatusCode != tt.status || !strings.Contains(string(a.body), tt.detail) {
				t.Fatalf("%d %s, want %d with %q", a.resp.StatusCode, a.body, tt.status, tt.detail)
			}
			// What is left of a body too slow to read cannot be told
			// from a next request: the connection goes.
			if tt.status == 408 && !a.resp.Close {
				t.Fatal("408 without closing the connection")
			}
		})
	}
	// The server is itself afterwards.
	if resp, body := post(t, s.url+"/resize?width=10", img); resp.StatusCode != 200 {
		t.Fatalf("after the broken bodies: %d %s", resp.StatusCode, body)
	}
}

// smallJPEG is a real JPEG of some 10 KiB.
func smallJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for y := 0; y < 120; y++ {
		for x := 0; x < 160; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 7), uint8(y * 13), uint8(x * y), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
