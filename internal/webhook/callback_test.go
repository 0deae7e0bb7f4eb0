package webhook

import (
	"io"
	"net/http"
	"net/http/httptest"
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
	c, err := NewCallback(srv.URL, secret, nil)
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
	c, _ = NewCallback(bad.URL, secret, nil)
	calls.Store(0)
	if err := c.Post(t.Context(), []byte(`{}`)); err == nil || calls.Load() != 1 {
		t.Fatalf("400: %v after %d calls", err, calls.Load())
	}
	if _, err := NewCallback("ftp://x", secret, nil); err == nil {
		t.Error("ftp URL accepted")
	}
}
