package imageproc

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Gate bounds image work in two steps. Admit counts every request that is
// on its way to libvips (reading its body, waiting, or working) and refuses
// at once past concurrency+queue, so the memory held by request bodies is
// bounded before any body is read. Acquire then waits, at most the queue
// timeout, for one of the concurrency slots that may run libvips.
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

// Admit takes a place for a request, or returns ErrBusy when all places are
// taken. The caller must call done exactly once.
func (g *Gate) Admit() (done func(), err error) {
	if n := g.admitted.Add(1); n > g.limit {
		g.admitted.Add(-1)
		g.metrics.rejected("queue_full")
		return nil, fmt.Errorf("%w: %d requests admitted", ErrBusy, g.limit)
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
