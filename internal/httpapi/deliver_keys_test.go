package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
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
	r := chi.NewRouter()
	r.Method("GET", "/img/{signature}/{options}/*", handleDeliver(deliverDeps{delivery: rec,
		keys: [][]byte{[]byte(testSigningKey)}, maxDimension: 8192}))
	srv := httptest.NewServer(r)
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
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
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", p)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		resp.Body.Close()
		got := rec.take()
		if resp.StatusCode != 200 || len(got) != 1 || got[0] != key {
			t.Errorf("key %q as %s: %d, delivery asked for %q", key, p, resp.StatusCode, got)
		}
	}
}
