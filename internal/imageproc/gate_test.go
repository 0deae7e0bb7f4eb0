package imageproc

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestGateAdmitLimit(t *testing.T) {
	g := NewGate(1, 2, time.Second)
	var dones []func()
	for i := 0; i < 3; i++ {
		done, err := g.Admit()
		if err != nil {
			t.Fatalf("admit %d: %v", i, err)
		}
		dones = append(dones, done)
	}
	if _, err := g.Admit(); !errors.Is(err, ErrBusy) {
		t.Fatalf("fourth admit: err = %v, want ErrBusy", err)
	}
	dones[0]()
	dones[0]() // a second call must not free a second place
	if _, err := g.Admit(); err != nil {
		t.Fatalf("admit after done: %v", err)
	}
	if _, err := g.Admit(); !errors.Is(err, ErrBusy) {
		t.Fatalf("admit after double done: err = %v, want ErrBusy", err)
	}
}

func TestGateAcquireTimesOut(t *testing.T) {
	g := NewGate(1, 1, 50*time.Millisecond)
	release, err := g.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second acquire: err = %v, want ErrBusy", err)
	}
	release()
	release2, err := g.Acquire(context.Background())
	if err != nil {
		t.Fatalf("acquire after release: %v", err)
	}
	release2()
}

func TestGateAcquireWaitsForRelease(t *testing.T) {
	g := NewGate(1, 1, 5*time.Second)
	release, _ := g.Acquire(context.Background())
	got := make(chan error, 1)
	go func() {
		r, err := g.Acquire(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	release()
	if err := <-got; err != nil {
		t.Fatalf("waiting acquire: %v", err)
	}
}

func TestGateAcquireStopsWithContext(t *testing.T) {
	g := NewGate(1, 1, 5*time.Second)
	release, _ := g.Acquire(context.Background())
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Shed refuses when every place is taken and reserves nothing otherwise.
func TestGateShed(t *testing.T) {
	g := NewGate(1, 1, time.Second)
	for i := 0; i < 3; i++ { // shedding takes no place, however often
		if err := g.Shed(); err != nil {
			t.Fatalf("shed %d with no place taken: %v", i, err)
		}
	}
	done1, _ := g.Admit()
	if err := g.Shed(); err != nil {
		t.Fatalf("shed with a place left: %v", err)
	}
	done2, _ := g.Admit()
	if err := g.Shed(); !errors.Is(err, ErrBusy) {
		t.Fatalf("shed with every place taken: err = %v, want ErrBusy", err)
	}
	done1()
	if err := g.Shed(); err != nil {
		t.Fatalf("shed after done: %v", err)
	}
	done2()
}
