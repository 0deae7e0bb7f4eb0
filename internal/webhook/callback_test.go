package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCallback(t *testing.T) {
	secret := []byte("s3cret")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := Verify(r.Header.Get(Header), body, [][]byte{secret}, time.Now()); err != nil || string(body) != `{"a":1}` {
			t.Errorf("callback %q: %v", body, err)
		}
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable) // retried
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c, err := NewCallback(srv.URL, [][]byte{secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = []time.Duration{time.Millisecond, time.Millisecond}
	if err := c.Post(t.Context(), []byte(`{"a":1}`)); err != nil || calls.Load() != 2 {
		t.Fatalf("post: %v after %d calls", err, calls.Load())
	}
	// A 400 is not retried and is the error.
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusBadRequest)
	}))
	defer bad.Close()
	c, _ = NewCallback(bad.URL, [][]byte{secret}, nil)
	calls.Store(0)
	if err := c.Post(t.Context(), []byte(`{}`)); err == nil || calls.Load() != 1 {
		t.Fatalf("400: %v after %d calls", err, calls.Load())
	}
	if _, err := NewCallback("ftp://x", [][]byte{secret}, nil); err == nil {
		t.Error("ftp URL accepted")
	}
	if _, err := NewCallback(srv.URL, [][]byte{nil}, nil); err == nil {
		t.Error("no secret accepted")
	}
}

// During a rotation the service holds "new,old" and signs with both: a
// receiver that knows only the old secret, and one that already knows only
// the new, each accept the signal; one that knows neither refuses it.
func TestCallbackSignsWithEverySecret(t *testing.T) {
	oldSecret, newSecret := []byte("old-secret"), []byte("new-secret")
	for _, c := range []struct {
		name  string
		knows [][]byte
		ok    bool
	}{
		{"the old secret", [][]byte{oldSecret}, true},
		{"the new secret", [][]byte{newSecret}, true},
		{"another secret", [][]byte{[]byte("other")}, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if Verify(r.Header.Get(Header), body, c.knows, time.Now()) != nil {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		cb, err := NewCallback(srv.URL, [][]byte{newSecret, oldSecret}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := cb.Post(t.Context(), []byte(`{"a":1}`)); (err == nil) != c.ok {
			t.Errorf("a receiver that knows %s: %v", c.name, err)
		}
		srv.Close()
	}
}

// A receiver that takes a token in its URL's path or query gets it into no
// error: they are logged ("ready signal not delivered").
func TestCallbackErrorsKeepTheURLsToken(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	target := srv.URL + "/hooks/PATH-TOKEN?token=QUERY-TOKEN"
	srv.Close() // nothing listens: a network error, which quotes the URL
	c, err := NewCallback(target, [][]byte{[]byte("s")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.backoff = nil
	err = c.Post(t.Context(), []byte(`{}`))
	if err == nil || strings.Contains(err.Error(), "TOKEN") || !strings.Contains(err.Error(), strings.TrimPrefix(srv.URL, "http://")) {
		t.Fatalf("err = %v", err)
	}
	if _, err := NewCallback("ftp://hooks.example.com/PATH-TOKEN", [][]byte{[]byte("s")}, nil); err == nil || strings.Contains(err.Error(), "TOKEN") {
		t.Fatalf("bad URL: %v", err)
	}
}

// A receiver's redirect is not followed: only the receiver's own 2xx is a
// delivery. Followed, a 301, 302 or 303 became a GET without the signal,
// which a login page or an index answered 200, and the signal was taken
// for delivered; a 307 or 308 posted the signed body wherever Location
// pointed.
func TestCallbackRedirectIsNoDelivery(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		var elsewhere atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hooks" {
				http.Redirect(w, r, "/login?state=LOGIN-STATE", code)
				return
			}
			elsewhere.Add(1)
			io.WriteString(w, "<html>sign in</html>")
		}))
		c, err := NewCallback(srv.URL+"/hooks", [][]byte{[]byte("s")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.backoff = []time.Duration{time.Millisecond}
		err = c.Post(t.Context(), []byte(`{"a":1}`))
		if err == nil || elsewhere.Load() != 0 {
			t.Errorf("HTTP %d: %v, %d requests to where it pointed; want an error, none followed", code, err, elsewhere.Load())
		} else if strings.Contains(err.Error(), "LOGIN-STATE") {
			t.Errorf("HTTP %d: the error quotes the Location's query: %v", code, err)
		}
		srv.Close()
	}
}
