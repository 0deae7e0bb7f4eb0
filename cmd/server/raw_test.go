package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/contract"
)

// rawClient sends a request over a plain TCP connection, byte for byte as
// written, so that malformed and slow bodies really go over the wire the
// way a misbehaving client would send them.
type rawClient struct {
	// head is the request line and headers, without the blank line that
	// ends them.
	head string
	// pieces of the body, written every so often; the writer stops when
	// the answer has come or the connection is closed.
	pieces [][]byte
	every  time.Duration
	// closeWrite half-closes the connection after the last piece: the
	// client has nothing more to send but still reads the answer.
	closeWrite bool
}

// rawAnswer is what a rawClient got back.
type rawAnswer struct {
	resp *http.Response
	body []byte
	took time.Duration // from the first byte sent to the whole answer
	err  error
}

// start dials addr, sends the head at once and the pieces in the
// background, and delivers the answer on the channel it returns.
func (c rawClient) start(t *testing.T, addr string) <-chan rawAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	got := make(chan rawAnswer, 1)
	answered := make(chan struct{})
	start := time.Now()
	if _, err := io.WriteString(conn, c.head+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	go func() {
		for i, p := range c.pieces {
			if i > 0 {
				select {
				case <-answered:
					return
				case <-time.After(c.every):
				}
			}
			if _, err := conn.Write(p); err != nil {
				return // cut off by the server
			}
		}
		if c.closeWrite {
			conn.(*net.TCPConn).CloseWrite()
		}
	}()
	go func() {
		defer close(answered)
		conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // bounds the test
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(c.head + "\r\n\r\n")))
		if err != nil {
			got <- rawAnswer{err: err}
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			got <- rawAnswer{err: err, took: time.Since(start)}
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- rawAnswer{resp: resp, body: body, took: time.Since(start), err: err}
	}()
	return got
}

// send runs the client and waits for its answer, checked against
// openapi.yaml.
func (c rawClient) send(t *testing.T, addr string) rawAnswer {
	t.Helper()
	a := <-c.start(t, addr)
	if a.err != nil {
		t.Fatalf("%s: %v", strings.SplitN(c.head, "\r\n", 2)[0], a.err)
	}
	checkRaw(t, a)
	return a
}

// checkRaw checks an answer against openapi.yaml.
func checkRaw(t *testing.T, a rawAnswer) {
	t.Helper()
	req := a.resp.Request.Clone(a.resp.Request.Context())
	req.URL.Scheme, req.URL.Host = "http", req.Host
	contract.Check(t, req, a.resp, a.body)
}

// bytesEvery splits b into pieces of n bytes.
func bytesEvery(b []byte, n int) [][]byte {
	var ps [][]byte
	for len(b) > n {
		ps = append(ps, b[:n])
		b = b[n:]
	}
	return append(ps, b)
}
