package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/delivery"
)

// keyRecorder is an imageServer that answers every request with one
// small image and records the key it was asked for.
type keyRecorder struct {
	mu   sync.Mutex
	keys []string
}

func (k *keyRecorder) Serve(_ context.Context, r delivery.Request) (delivery.Image, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys = append(k.keys, r.Key)
	return delivery.Image{Data: []byte("x"), Size: 1, ContentType: "image/png", ETag: `"e"`, CacheControl: "no-store"}, nil
}

func (k *keyRecorder) take() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	keys := k.keys
	k.keys = nil
	return keys
}

// randomKey is a key of one to twelve characters drawn from every ASCII
// byte, the characters URLs and paths treat apart, and any Unicode scalar
// value: the keys a store may hold.
func randomKey(rng *rand.Rand) string {
	var b strings.Builder
	for range 1 + rng.IntN(12) {
		switch rng.IntN(4) {
		case 0:
			b.WriteByte(byte(rng.IntN(utf8.RuneSelf)))
		case 1:
			if r := rune(rng.IntN(utf8.MaxRune + 1)); utf8.ValidRune(r) {
				b.WriteRune(r)
			}
		default:
			const special = "/.%+?#;*&= aZ~-_:,@$!'()[]\\"
			b.WriteByte(special[rng.IntN(len(special))])
		}
	}
	return b.String()
}

// Every path a Signer writes, sent as it is on the wire, reaches the
// handler as the URL it signed: it verifies, and delivery is asked for
// exactly the key it names (no segment decoded twice, no %2F turned into a
// slash, no path cleaned by the router on the way).
func TestDeliverServesTheKeyItSigns(t *testing.T) {
	rec := &keyRecorder{}
	get := rawDeliver(t, deliverDeps{delivery: rec, keys: [][]byte{[]byte(testSigningKey)}, maxDimension: 8192})
	signer := imageurl.NewSigner(testSigningKey)
	rng := rand.New(rand.NewPCG(7, 11))
	sent := 0
	for sent < 3000 {
		key := randomKey(rng)
		opts := map[string][]string{"width": {"16"}, "watermark": {randomKey(rng)}}
		if strings.Contains(opts["watermark"][0], "://") {
			continue
		}
		p, err := signer.Path(imageurl.Request{Key: key, Options: opts, Expires: time.Now().Add(time.Hour)})
		if err != nil {
			continue // a key Path refuses (an empty, . or .. segment)
		}
		sent++
		// The request line as a browser or CDN sends the path: as it is.
		resp := get(p)
		got := rec.take()
		if resp.StatusCode != 200 || len(got) != 1 || got[0] != key {
			t.Errorf("key %q as %s: %d, delivery asked for %q", key, p, resp.StatusCode, got)
		}
	}
}

// A path holding bare a byte that the signers escape (a letter beyond
// ASCII, whole or one of its bytes, a quote, a brace), as a client that
// does not escape may send it, is another spelling of the URL: a CDN
// keeps a copy under it, which no purge invalidates (the markers hold
// the escaped spelling). Signed, it does not verify, since the signature
// covers the bytes as sent; unsigned, it is moved to the one spelling.
// The escaped spelling is served.
func TestDeliverBareBytesAreAnotherSpelling(t *testing.T) {
	rec := &keyRecorder{}
	send := rawDeliver(t, deliverDeps{delivery: rec, keys: [][]byte{[]byte(testSigningKey)}, unsignedPresets: true, maxDimension: 8192})
	get := func(target string) (*http.Response, []string) {
		t.Helper()
		return send(target), rec.take()
	}
	signer := imageurl.NewSigner(testSigningKey)
	for _, c := range []struct{ bare, escaped string }{
		{"é", "%C3%A9"}, {"\xc3%A9", "%C3%A9"}, {`"`, "%22"}, {"{", "%7B"}, {"|", "%7C"}, {"^", "%5E"}, {"`", "%60"},
	} {
		key := "uploads/a" + c.escaped + "b.jpg"
		key, _ = url.PathUnescape(key)
		signed, err := signer.Path(imageurl.Request{Key: key, Options: url.Values{"width": {"16"}}})
		if err != nil {
			t.Fatal(err)
		}
		unsigned, err := imageurl.UnsignedPath(imageurl.Request{Key: key, Preset: "thumb"})
		if err != nil {
			t.Fatal(err)
		}
		for _, canonical := range []string{signed, unsigned} {
			if resp, got := get(canonical); resp.StatusCode != 200 || len(got) != 1 || got[0] != key {
				t.Fatalf("%s: %d, delivery asked for %q", canonical, resp.StatusCode, got)
			}
			spelled := strings.Replace(canonical, c.escaped, c.bare, 1)
			if spelled == canonical {
				t.Fatalf("%s holds no %s", canonical, c.escaped)
			}
			resp, got := get(spelled)
			switch {
			case len(got) != 0:
				t.Errorf("%q: served, delivery asked for %q", spelled, got)
			case canonical == signed && resp.StatusCode != http.StatusForbidden:
				t.Errorf("%q: %d, want 403", spelled, resp.StatusCode)
			case canonical == unsigned && (resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != canonical):
				t.Errorf("%q: %d to %q, want a 301 to %s", spelled, resp.StatusCode, resp.Header.Get("Location"), canonical)
			}
		}
	}
}

// rawDeliver serves the image route with d and returns a function that
// sends GET target on one connection, its request line written as it is
// (net/http's client would escape bare bytes), and reads the answer.
func rawDeliver(t *testing.T, d deliverDeps) func(target string) *http.Response {
	t.Helper()
	r := chi.NewRouter()
	r.Method("GET", "/img/{signature}/{options}/*", handleDeliver(d))
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	br := bufio.NewReader(conn)
	return func(target string) *http.Response {
		t.Helper()
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		resp.Body.Close()
		return resp
	}
}
