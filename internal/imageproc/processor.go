// Package imageproc is everything the service does with images: format
// sniffing and header limits before any decode, metadata removal, the
// options and the geometry they mean, the Gate that bounds concurrent
// work, and the worker processes that run libvips. It knows nothing of
// HTTP; its errors are the sentinels in errors.go.
//
// One request reads top to bottom in Variants (this file), then render
// (render.go, in a worker).
package imageproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config holds the limits of image work.
type Config struct {
	// Formats are the input formats accepted; others are ErrUnsupported.
	Formats []Format
	// MaxPixels bounds width*height of an input, read from its header.
	MaxPixels int64
	// MaxOutputPixels bounds width*height of an output, padding and
	// enlarging included; 0 means MaxPixels.
	MaxOutputPixels int64
	// MaxDimension bounds a requested width or height, and any side the
	// service would enlarge an image to.
	MaxDimension int
	// MaxJPEGScans bounds the scans of a progressive JPEG: libjpeg decodes
	// every scan over the whole image, and neither it nor libvips has a
	// limit (2,000 empty scans in 248 KB took 33 s).
	MaxJPEGScans int
	// MaxFrames and MaxAnimationPixels (frames x width x height) bound an
	// animation that stays animated, in and out; 0 means MaxPixels for the
	// latter. A still output of an animated source decodes one frame.
	MaxFrames          int
	MaxAnimationPixels int64
	// Qualities are the default qualities of lossy outputs, by format,
	// where the configuration sets them; the format table's otherwise.
	Qualities map[Format]int
	// Concurrency is the number of images processed at once, each in its
	// own worker process; QueueSize the number of further requests that
	// may wait, each at most QueueTimeout.
	Concurrency  int
	QueueSize    int
	QueueTimeout time.Duration
	// Timeout bounds the processing of one image once it has a slot; when
	// it passes, the image's worker is killed and the slot is free.
	Timeout time.Duration
	// Executable is the program run as an image worker, with workerArg:
	// this very binary (os.Executable) when empty.
	Executable string
	// Watermarks gives the images the watermark option names; nil: the
	// option is refused (ErrBadOption).
	Watermarks Watermarks
}

// validate names every field out of range.
func (cfg Config) validate() error {
	var bad []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Formats", len(cfg.Formats) > 0}, {"MaxPixels", cfg.MaxPixels > 0}, {"MaxOutputPixels", cfg.MaxOutputPixels > 0},
		{"MaxDimension", cfg.MaxDimension > 0}, {"MaxJPEGScans", cfg.MaxJPEGScans > 0}, {"Concurrency", cfg.Concurrency > 0},
		{"MaxFrames", cfg.MaxFrames > 0}, {"MaxAnimationPixels", cfg.MaxAnimationPixels > 0},
		{"QueueSize", cfg.QueueSize >= 0}, {"QueueTimeout", cfg.QueueTimeout >= 0}, {"Timeout", cfg.Timeout > 0},
	} {
		if !f.ok {
			bad = append(bad, f.name)
		}
	}
	for f, q := range cfg.Qualities {
		if f.DefaultQuality() == 0 || q < 1 || q > 100 {
			bad = append(bad, fmt.Sprintf("Qualities[%s]", f))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("config out of range: %s", strings.Join(bad, ", "))
	}
	return nil
}

// Processor makes images within the configured limits.
type Processor struct {
	cfg     Config
	gate    *Gate
	pool    *pool
	metrics *metrics
}

// New starts cfg.Concurrency worker processes and returns a Processor that
// sends them images. It fails when a limit is not positive, when a worker
// cannot start (libvips missing, or a test binary whose TestMain does not
// call ServeWorkerIfAsked), or when the registry refuses the metrics (reg
// may be nil). Close stops the workers.
func New(cfg Config, reg prometheus.Registerer) (*Processor, error) {
	if cfg.MaxOutputPixels == 0 {
		cfg.MaxOutputPixels = cfg.MaxPixels
	}
	if cfg.MaxAnimationPixels == 0 {
		cfg.MaxAnimationPixels = cfg.MaxPixels
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("imageproc: %w", err)
	}
	var m *metrics
	if reg != nil {
		var err error
		if m, err = newMetrics(reg); err != nil {
			return nil, fmt.Errorf("imageproc: metrics: %w", err)
		}
	}
	exe := cfg.Executable
	if exe == "" {
		var err error
		if exe, err = ownBinary(); err != nil {
			return nil, fmt.Errorf("imageproc: find own binary: %w", err)
		}
	}
	// Two arenas hold a worker's RSS flat for a small cost in lock
	// contention (see rz_init); an explicit MALLOC_ARENA_MAX wins.
	arenas := 2
	if os.Getenv("MALLOC_ARENA_MAX") != "" {
		arenas = 0
	}
	pl, err := newPool(exe, workerInit{Formats: cfg.Formats, Arenas: arenas}, cfg.Concurrency)
	if err != nil {
		return nil, fmt.Errorf("imageproc: %w", err)
	}
	g := NewGate(cfg.Concurrency, cfg.QueueSize, cfg.QueueTimeout)
	g.metrics = m
	return &Processor{cfg: cfg, gate: g, pool: pl, metrics: m}, nil
}

// Close kills the workers, whatever they are doing; images in flight fail
// with ErrBusy, as do any sent after.
func (p *Processor) Close() { p.pool.close() }

// Gate returns the processor's gate, for callers that admit a request
// before reading its body.
func (p *Processor) Gate() *Gate { return p.gate }

// Check reports whether image workers can run, for the readiness probe.
// It takes no slot: a busy server is still ready.
func (p *Processor) Check(context.Context) error { return p.pool.check() }

// Version is the version of libvips the workers run.
func (p *Processor) Version() string {
	p.pool.mu.Lock()
	defer p.pool.mu.Unlock()
	return p.pool.version
}

// Result is a processed image.
type Result struct {
	Data          []byte
	Format        Format
	Width, Height int
}

// Process makes one image of b as o asks; see Variants.
func (p *Processor) Process(ctx context.Context, b []byte, o Options) (*Result, error) {
	_, rs, err := p.Variants(ctx, b, []Options{o})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// Variants makes one output per element of opts from the image b, in one
// slot and one worker, decoding the source once where the outputs allow.
// It returns the source's Header as settled by the worker.
//
// Errors: ErrUnsupported (not an enabled format), ErrUndecodable (a
// broken or truncated file, or one the decoder crashed on twice),
// ErrTooLarge (over a pixel, dimension or scan limit), ErrBusy (no slot in
// time, or the processor closed), ErrTimeout (the work took longer than
// Timeout: its worker was killed), or ctx's error. When Variants returns, no worker reads b any
// more: the caller may reuse its memory.
func (p *Processor) Variants(ctx context.Context, b []byte, opts []Options) (Header, []*Result, error) {
	start := time.Now()
	in, err := p.prepare(b, opts)
	if err != nil {
		return in.header, nil, err
	}
	marks, markParts, err := p.fetchMarks(ctx, opts) // I/O: before a slot is taken
	if err != nil {
		return in.header, nil, err
	}
	release, err := p.gate.Acquire(ctx)
	if err != nil {
		return in.header, nil, err
	}
	defer release()
	j := job{Outputs: opts, Marks: marks, Rights: jobRights(opts, in.header.Format, in.rights, b)}
	rep, outs, err := p.run(ctx, in, j, markParts)
	if err != nil {
		return rep.Header, nil, err
	}
	res := make([]*Result, len(outs))
	total := 0
	for i, o := range rep.Outputs {
		res[i] = &Result{Data: outs[i], Format: o.Format, Width: o.Width, Height: o.Height}
		total += len(outs[i])
	}
	if len(res) > 0 {
		p.metrics.processed(res[0].Format, time.Since(start), len(b), total)
	}
	return rep.Header, res, nil
}

// run sends j, for the image in, to a worker, with the image's header,
// size and the limits, the image's bytes and then more (the watermarks'),
// and waits for the reply (see Variants for the errors). The reply's
// Header is the worker's when it answered, else in's. The caller holds a
// slot.
func (p *Processor) run(ctx context.Context, in input, j job, more [][]byte) (reply, [][]byte, error) {
	j.Header, j.Size, j.Frames = in.header, in.size, in.frames
	j.Limits = limits{MaxPixels: p.cfg.MaxPixels, MaxOutputPixels: p.cfg.MaxOutputPixels, MaxDimension: p.cfg.MaxDimension,
		MaxFrames: p.cfg.MaxFrames, MaxAnimationPixels: p.cfg.MaxAnimationPixels, Qualities: p.cfg.Qualities}
	payloads := slices.Concat(in.parts, more)
	deadline := time.Now().Add(p.cfg.Timeout)
	rep, outs, err := p.pool.do(ctx, deadline, j, payloads)
	if errors.Is(err, errWorkerDied) {
		// Once may be bad luck (memory pressure); twice is the image.
		rep, outs, err = p.pool.do(ctx, deadline, j, payloads)
		switch {
		case errors.Is(err, errWorkerOutOfMemory):
			err = fmt.Errorf("%w: making it took more memory than this server has (its worker was killed out of memory, twice)", ErrTooLarge)
		case errors.Is(err, errWorkerDied):
			err = fmt.Errorf("%w: the %s decoder crashed on this image", ErrUndecodable, in.header.Format)
		}
	}
	if errors.Is(err, ErrTimeout) {
		err = fmt.Errorf("%w after %s", ErrTimeout, p.cfg.Timeout)
	}
	if err != nil {
		return reply{Header: in.header}, nil, err
	}
	if rep.Err != nil {
		return rep, nil, rep.Err.err()
	}
	return rep, outs, nil
}

// input is an image checked in Go and ready for a worker.
type input struct {
	header Header
	parts  [][]byte // the file to send, metadata removed
	size   int
	rights exifRights // read from the removed EXIF, for keep=copyright
	frames int        // of an animated GIF or WebP, counted in its blocks (frameCount)
}

// prepare does, in Go and before any slot is taken, every check the bytes
// allow: the format is known and enabled; the header is whole and within
// the pixel limit; a JPEG's scans are within theirs; every output fits the
// output limits. It removes the metadata (the decoder never sees it, and
// no encoder can write it back) and learns the EXIF orientation, and the
// Artist and Copyright that keep=copyright writes back, on the way.
func (p *Processor) prepare(b []byte, opts []Options) (input, error) {
	f := Sniff(b)
	in := input{header: Header{Format: f}}
	if f == FormatUnknown {
		return in, fmt.Errorf("%w: not a known image format", ErrUnsupported)
	}
	if !slices.Contains(p.cfg.Formats, f) {
		return in, fmt.Errorf("%w: %s input is disabled", ErrUnsupported, f)
	}
	for _, o := range opts {
		if o.Format != FormatUnknown && !o.Format.Writable(p.cfg.Formats) {
			return in, fmt.Errorf("%w: format=%s: %s output is disabled (INPUT_FORMATS)", ErrBadOption, o.Format, o.Format)
		}
	}
	st, known, err := readHeader(f, b)
	if err != nil {
		return in, err
	}
	if st.pixels > p.cfg.MaxPixels {
		return in, fmt.Errorf("%w: %dx%d, decoding %d pixels, over the limit of %d", ErrTooLarge, st.w, st.h, st.pixels, p.cfg.MaxPixels)
	}
	c, err := clean(f, b)
	if err != nil {
		return in, err // ErrUndecodable, with the format named
	}
	if c.scans > p.cfg.MaxJPEGScans {
		return in, fmt.Errorf("%w: %d progressive scans, over the limit of %d", ErrTooLarge, c.scans, p.cfg.MaxJPEGScans)
	}
	in.parts, in.size, in.rights = c.parts, c.size, c.rights
	in.header.Orientation = c.orientation
	frames, err := frameCount(f, b)
	in.frames = frames
	if limit := max(p.cfg.MaxFrames, maxWebPFrames); f == FormatWebP && frames > limit {
		// Even for a still: libvips reads every frame in the header.
		return in, fmt.Errorf("%w: an animated WebP of %d frames, over the %d whose header is read (libwebp takes time quadratic in the frames)",
			ErrTooLarge, frames, limit)
	}
	if frames > 1 && animates(f, opts) {
		if err != nil {
			return in, err
		}
		if frames > p.cfg.MaxFrames {
			return in, fmt.Errorf("%w: %d frames, over the limit of %d (animated=false takes the first)", ErrTooLarge, frames, p.cfg.MaxFrames)
		}
		if px := int64(frames) * int64(st.w) * int64(st.h); px > p.cfg.MaxAnimationPixels {
			return in, fmt.Errorf("%w: %d frames of %dx%d are %d pixels, over the limit of %d (animated=false takes the first)",
				ErrTooLarge, frames, st.w, st.h, px, p.cfg.MaxAnimationPixels)
		}
	}
	if f == FormatAVIF || f == FormatHEIF || f == FormatJXL {
		in.header.Orientation = 1 // libheif and libjxl turn the image upright themselves
	}
	if !known {
		return in, nil
	}
	in.header.Width, in.header.Height = upright(st.w, st.h, max(in.header.Orientation, 1))
	for _, o := range opts {
		if o.Trim != nil {
			continue // what a trim leaves is known once decoded, in the worker
		}
		if _, err := fitGeometry(in.header.Width, in.header.Height, o, p.cfg.MaxDimension, p.cfg.MaxOutputPixels, nil); err != nil {
			return in, err
		}
	}
	return in, nil
}

// animates reports whether any output of an animated source of format f
// would stay animated: asked for a format that can animate (or none, or a
// list of them), and not for a still.
func animates(f Format, opts []Options) bool {
	for _, o := range opts {
		if outputAnimates(f, o) {
			return true
		}
	}
	return false
}

// outputAnimates reports whether output o of an animated source of format
// f stays animated: its format is one that can animate (see outputFormat).
func outputAnimates(f Format, o Options) bool {
	return !o.Still && outputFormat(f, false, true, o).CanAnimate()
}

// outputFormat is the format of output o of a source of format f: the one
// asked for; else the first of o.Prefer that suits (for an animated source
// that stays animated, one that can animate); else the source's own where
// the service writes it, PNG where it has alpha, JPEG.
func outputFormat(f Format, alpha, animated bool, o Options) Format {
	if o.Format != FormatUnknown {
		return o.Format
	}
	for _, p := range o.Prefer {
		if !animated || o.Still || p.CanAnimate() {
			return p
		}
	}
	if animated && !o.Still && f.CanAnimate() {
		return f // no format the client takes animates: keep the source's
	}
	if len(o.Prefer) > 0 {
		return o.Prefer[0] // an animated TIFF: its first page
	}
	return OutputFormatFor(f, alpha)
}

// clean removes the metadata of the formats that carry it in blocks the
// service can drop in Go (see clean_*.go), and refuses an SVG that embeds
// files (checkSVG); other formats pass unchanged.
func clean(f Format, b []byte) (cleaned, error) {
	switch f {
	case FormatJPEG:
		return cleanJPEG(b)
	case FormatPNG:
		return cleanPNG(b)
	case FormatWebP:
		return cleanWebP(b)
	case FormatSVG:
		if err := checkSVG(b); err != nil {
			return cleaned{}, err
		}
	}
	return cleaned{parts: [][]byte{b}, size: len(b)}, nil
}
