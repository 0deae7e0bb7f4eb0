package imageproc

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Gate bounds image work in two steps. Admit counts every request that
// holds a complete input and is on its way through libvips (waiting for a
// slot, or working) and refuses at once past concurrency+queue places.
// Acquire then waits, at most the queue timeout, for one of the
// concurrency slots that may run libvips.
//
// Reading a request body takes no place: a client that sends slowly would
// otherwise hold one for as long as it liked, and a few of them would shut
// everyone else out (callers bound the memory and time of reading
// themselves). Shed lets a caller refuse a request before reading its body
// when every place is already taken, so that shedding load stays cheap.
type Gate struct {
	slots    chan struct{}
	admitted atomic.Int64
	limit    int64
	wait     time.Duration
	metrics  *metrics
}

// NewGate returns a gate with the given number of working slots, waiting
// places and longest wait.
func NewGate(concurrency, queue int, wait time.Duration) *Gate {
	return &Gate{
		slots: make(chan struct{}, concurrency),
		limit: int64(concurrency + queue),
		wait:  wait,
	}
}

// Shed returns ErrBusy when every place is taken, and nil otherwise. It
// reserves nothing: a request that passes must still be admitted, and may
// find the places taken by then.
func (g *Gate) Shed() error {
	if g.admitted.Load() >= g.limit {
		g.metrics.rejected("queue_full")
		return g.busy()
	}
	return nil
}

// Admit takes a place for a request, or returns ErrBusy when all places are
// taken. The caller must call done exactly once.
func (g *Gate) Admit() (done func(), err error) {
	if n := g.admitted.Add(1); n > g.limit {
		g.admitted.Add(-1)
		g.metrics.rejected("queue_full")
		return nil, g.busy()
	}
	g.metrics.admittedInc(1)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			g.admitted.Add(-1)
			g.metrics.admittedInc(-1)
		}
	}, nil
}

func (g *Gate) busy() error {
	return fmt.Errorf("%w: %d requests admitted", ErrBusy, g.limit)
}

// Acquire waits for a working slot. It returns ErrBusy when the wait times
// out and ctx's error when ctx ends first. The caller must call release
// exactly once, after its libvips work has finished.
func (g *Gate) Acquire(ctx context.Context) (release func(), err error) {
	start := time.Now()
	select {
	case g.slots <- struct{}{}:
	default:
		t := time.NewTimer(g.wait)
		defer t.Stop()
		select {
		case g.slots <- struct{}{}:
		case <-t.C:
			g.metrics.rejected("queue_timeout")
			return nil, fmt.Errorf("%w: no slot within %s", ErrBusy, g.wait)
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for a slot: %w", context.Cause(ctx))
		}
	}
	g.metrics.waited(time.Since(start))
	g.metrics.workingInc(1)
	return func() {
		g.metrics.workingInc(-1)
		<-g.slots
	}, nil
}
