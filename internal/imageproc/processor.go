// Package imageproc is everything the service does with libvips: its
// one-time set-up, format sniffing and header limits before any decode, the
// resize options and their vocabulary, and the Gate that bounds concurrent
// work. It knows nothing of HTTP; its errors are the sentinels in errors.go.
package imageproc

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/h2non/bimg"
	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the limits of image work.
type Config struct {
	// Formats are the input formats accepted; others are ErrUnsupported.
	Formats []Format
	// MaxPixels bounds width*height of an input, read from its header.
	MaxPixels int64
	// MaxDimension bounds a requested width or height, and any side the
	// service would enlarge an image to.
	MaxDimension int
	// Concurrency is the number of images processed at once; QueueSize the
	// number of further requests that may wait, each at most QueueTimeout.
	Concurrency  int
	QueueSize    int
	QueueTimeout time.Duration
	// Timeout bounds the processing of one image once it has a slot.
	Timeout time.Duration
}

// DefaultConfig returns the limits used when nothing is configured.
func DefaultConfig() Config {
	n := runtime.GOMAXPROCS(0) // follows the container's CPU quota, unlike NumCPU
	return Config{
		Formats:      DefaultInputFormats,
		MaxPixels:    50_000_000,
		MaxDimension: 8192,
		Concurrency:  n,
		QueueSize:    8 * n,
		QueueTimeout: 5 * time.Second,
		Timeout:      30 * time.Second,
	}
}

// Processor resizes images within the configured limits.
type Processor struct {
	cfg     Config
	gate    *Gate
	metrics *metrics
}

// New returns a Processor. It starts libvips on first use and restricts
// libvips' loaders to cfg.Formats. It fails when a limit is not positive or
// when the registry refuses the metrics (reg may be nil).
func New(cfg Config, reg prometheus.Registerer) (*Processor, error) {
	if cfg.MaxPixels <= 0 || cfg.MaxDimension <= 0 || cfg.Concurrency <= 0 || cfg.QueueSize < 0 ||
		cfg.QueueTimeout < 0 || cfg.Timeout <= 0 || len(cfg.Formats) == 0 {
		return nil, fmt.Errorf("imageproc: invalid config %+v", cfg)
	}
	var m *metrics
	if reg != nil {
		var err error
		if m, err = newMetrics(reg); err != nil {
			return nil, fmt.Errorf("imageproc: metrics: %w", err)
		}
	}
	startVips()
	blockLoaders(cfg.Formats)
	g := NewGate(cfg.Concurrency, cfg.QueueSize, cfg.QueueTimeout)
	g.metrics = m
	return &Processor{cfg: cfg, gate: g, metrics: m}, nil
}

// Gate returns the processor's gate, for callers that admit a request
// before reading its body.
func (p *Processor) Gate() *Gate { return p.gate }

// Probe sniffs b and reads its header without decoding pixels. It returns
// ErrUnsupported for bytes that are not an enabled format, ErrUndecodable
// for a truncated or inconsistent header, ErrTooLarge over MaxPixels.
func (p *Processor) Probe(b []byte) (Header, error) {
	f := Sniff(b)
	if f == FormatUnknown {
		return Header{}, fmt.Errorf("%w: not a known image format", ErrUnsupported)
	}
	if !slices.Contains(p.cfg.Formats, f) {
		return Header{}, fmt.Errorf("%w: %s input is disabled", ErrUnsupported, f)
	}
	h, ok, err := readHeader(f, b)
	if err != nil {
		return h, err
	}
	if !ok { // formats whose header libvips reads (lazily: no pixels yet)
		runtime.LockOSThread() // see withSlot
		info, err := vipsHeader(b)
		runtime.UnlockOSThread()
		if err != nil {
			return h, fmt.Errorf("%w: %s header: %v", ErrUndecodable, f, err)
		}
		h.Width, h.Height = info.width, info.height
	}
	return h, p.checkPixels(h.Width, h.Height)
}

func (p *Processor) checkPixels(w, h int) error {
	if px := int64(w) * int64(h); px > p.cfg.MaxPixels {
		return fmt.Errorf("%w: %dx%d is %d pixels, over the limit of %d", ErrTooLarge, w, h, px, p.cfg.MaxPixels)
	}
	return nil
}

// Result is a processed image.
type Result struct {
	Data          []byte
	Format        Format
	Width, Height int
}

// Process resizes b as o asks. It probes b first (see Probe), waits for a
// slot at the gate (ErrBusy), and gives up after the configured timeout
// (ErrTimeout) or when ctx ends; the libvips work itself cannot be stopped
// and keeps its slot until it finishes. A decoder failure is
// ErrUndecodable, an output over the limits ErrTooLarge.
func (p *Processor) Process(ctx context.Context, b []byte, o Options) (*Result, error) {
	return withSlot(ctx, p, b, func(f Format) (*Result, error) { return p.resize(b, f, o) })
}

// withSlot probes b, then runs work(b's format) holding a gate slot, and
// waits for it at most the configured timeout or until ctx ends. The work
// runs on, keeping its slot, after an early return: libvips cannot be
// interrupted (see MayStillRead).
func withSlot[T any](ctx context.Context, p *Processor, b []byte, work func(Format) (T, error)) (T, error) {
	var zero T
	h, err := p.Probe(b)
	if err != nil {
		return zero, err
	}
	release, err := p.gate.Acquire(ctx)
	if err != nil {
		return zero, err
	}
	type outcome struct {
		r   T
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		defer release()
		// libvips keeps buffers per OS thread, and a region must stay on
		// the thread that made it; Go moves goroutines between threads at
		// will. Every libvips call of one image therefore runs on one
		// locked thread, which runs nothing else meanwhile: without this,
		// an image freed on another thread corrupted the heap under load
		// (free(): invalid pointer, seen once in a soak).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		r, err := work(h.Format)
		done <- outcome{r, err}
	}()
	t := time.NewTimer(p.cfg.Timeout)
	defer t.Stop()
	select {
	case out := <-done:
		return out.r, out.err
	case <-t.C:
		return zero, fmt.Errorf("%w after %s", ErrTimeout, p.cfg.Timeout)
	case <-ctx.Done():
		return zero, fmt.Errorf("%w: %w", errAbandoned, context.Cause(ctx))
	}
}

// errAbandoned marks a Process that stopped waiting for libvips because its
// context ended (see MayStillRead).
var errAbandoned = errors.New("abandoned")

// resize runs libvips; it is called holding a gate slot.
func (p *Processor) resize(b []byte, f Format, o Options) (*Result, error) {
	src, err := readSource(b, f)
	if err != nil {
		return nil, err
	}
	if err := p.checkPixels(src.width, src.height); err != nil {
		return nil, err // libvips saw a larger canvas than the header parser
	}
	return p.resizeFrom(b, src, o)
}

// resizeFrom runs the plan for b, whose header src describes.
func (p *Processor) resizeFrom(b []byte, src source, o Options) (*Result, error) {
	start := time.Now()
	pl, err := plan(src, o, p.cfg.MaxDimension)
	if err != nil {
		return nil, err
	}
	out := b
	for _, pass := range pl.passes {
		if out, err = bimg.Resize(out, pass); err != nil {
			return nil, decodeError(err)
		}
	}
	oh, _, err := readHeader(pl.format, out)
	if err != nil {
		return nil, fmt.Errorf("read own output: %v", err) // %v: not the client's ErrUndecodable
	}
	p.metrics.processed(pl.format, time.Since(start), len(b), len(out))
	return &Result{Data: out, Format: pl.format, Width: oh.Width, Height: oh.Height}, nil
}

// readSource reads what planning needs from libvips' view of the header.
func readSource(b []byte, f Format) (source, error) {
	info, err := vipsHeader(b)
	if err != nil {
		return source{}, decodeError(err)
	}
	return source{width: info.width, height: info.height, orientation: info.orientation, alpha: info.alpha, format: f}, nil
}

// decodeError classifies a bimg error. The input was sniffed and its header
// read, so a failure is the decoder's (ErrUndecodable) unless libvips says it
// failed while writing, which is the service's own fault.
func decodeError(err error) error {
	msg := err.Error()
	for _, s := range []string{"save", "Save", "output type"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("libvips: %w", err)
		}
	}
	return fmt.Errorf("%w: %s", ErrUndecodable, strings.TrimSpace(msg))
}

// MayStillRead reports whether, after Process returned err, libvips may
// still be reading the input: Process gives up waiting on a timeout or a
// cancelled context, but the work it started runs to its end. The caller
// must not reuse the input's memory then.
func MayStillRead(err error) bool {
	return errors.Is(err, ErrTimeout) || errors.Is(err, errAbandoned)
}

// IsRetryable reports whether err is a passing condition (busy, timed out)
// after which the same request may succeed.
func IsRetryable(err error) bool {
	return errors.Is(err, ErrBusy) || errors.Is(err, ErrTimeout)
}
