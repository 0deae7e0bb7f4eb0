package httpapi

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
)

// stalledReceiver is a ready signal's receiver that does not answer until
// it is let go.
type stalledReceiver struct {
	got     chan pipeline.Manifest
	release chan struct{}
}

func (s *stalledReceiver) Ready(ctx context.Context, m pipeline.Manifest) error {
	s.got <- m
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// An upload's ready signal holds no place at the gate: with a receiver
// that does not answer (for up to the signal's 15 s), an upload that held
// its place shut every other image out with 503, though none was being
// made. The upload is answered before the signal goes, and the signal
// still goes.
func TestUploadReadySignalHoldsNoPlace(t *testing.T) {
	rcv := &stalledReceiver{got: make(chan pipeline.Manifest, 1), release: make(chan struct{})}
	s := newTestServerWith(t, nil, func(_ *Config, p *imageproc.Config) { p.Concurrency, p.QueueSize = 1, 0 },
		func(c *pipeline.Config) { c.Ready = rcv })
	photo := testJPEG(t, 64, 48)

	type answer struct {
		code int
		body []byte
	}
	uploaded := make(chan answer, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		// Its connection is not the resize's: a connection serves its
		// next request only once the handler of the one before returns.
		resp, body := s.do(t, "POST", "/uploads", photo, http.Header{"Content-Type": {"image/jpeg"}, "Connection": {"close"}})
		uploaded <- answer{resp.StatusCode, body}
	})
	var m pipeline.Manifest
	select {
	case m = <-rcv.got:
	case <-time.After(30 * time.Second):
		t.Fatal("no ready signal")
	}
	// The receiver holds the signal: the upload is answered, and another
	// image finds the one place free.
	select {
	case a := <-uploaded:
		if a.code != 201 {
			t.Errorf("upload: %d %s", a.code, a.body)
		}
	case <-time.After(5 * time.Second):
		t.Error("the upload is not answered while its ready signal waits on the receiver")
	}
	resp, body := s.do(t, "POST", "/resize?width=10", photo, http.Header{"Content-Type": {"image/jpeg"}})
	close(rcv.release)
	wg.Wait()
	if resp.StatusCode != 200 {
		t.Errorf("resize while the ready signal waits: %d %s", resp.StatusCode, body)
	}
	if m.Key == "" || m.ETag == "" {
		t.Errorf("ready signal %+v", m)
	}
}
