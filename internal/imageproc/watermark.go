package imageproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
)

// A watermark is an image from the store put over an output (the step
// after pad, before the encoder). The server fetches its bytes, through
// Config.Watermarks, and checks them in Go as it checks an input, before
// any slot is taken; they go to the worker as payloads of the job, after
// the image's, and the worker decodes them through the same load path as
// an input (watermark_render.go). This package never reads a store: what
// a name means is the Watermarks implementation's business.

// Watermarks gives the bytes of stored watermarks by name (the value of
// the watermark option). Its error wraps ErrBadWatermark when the name
// cannot be used (no such watermark, an invalid name, a file over the
// size limit), which is for whoever named it to fix; any other error (a
// store that is unreachable) is passed on as it is. The bytes returned are
// shared: they must not be written to.
type Watermarks interface {
	Watermark(ctx context.Context, name string) ([]byte, error)
}

// jobMark is one watermark of a job: its name, as the outputs' options
// say it, what the server learned of its header, and the size of its
// bytes, which follow the image's in the job's frame.
type jobMark struct {
	Name   string
	Header Header
	Size   int
}

// fetchMarks gets every watermark opts name, each once, and checks it as
// prepare checks an input (an enabled format, a whole header, the pixel
// and scan limits), removing its metadata on the way. It returns the
// marks of the job and their payloads, in order. A watermark that cannot
// be used is ErrBadWatermark (an ErrBadOption), whatever the reason: the
// image is not at fault, the option's value is.
func (p *Processor) fetchMarks(ctx context.Context, opts []Options) ([]jobMark, [][]byte, error) {
	var marks []jobMark
	var parts [][]byte
	for _, o := range opts {
		w := o.Watermark
		if w == nil || slices.ContainsFunc(marks, func(m jobMark) bool { return m.Name == w.Key }) {
			continue
		}
		if p.cfg.Watermarks == nil {
			return nil, nil, fmt.Errorf("%w: watermark: this server has no watermarks", ErrBadWatermark)
		}
		b, err := p.cfg.Watermarks.Watermark(ctx, w.Key)
		if err != nil {
			return nil, nil, err
		}
		in, err := p.prepare(b, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: watermark %q: %v", ErrBadWatermark, w.Key, err)
		}
		marks = append(marks, jobMark{Name: w.Key, Header: in.header, Size: in.size})
		parts = append(parts, in.parts...)
	}
	return marks, parts, nil
}

// CheckWatermarks reads every watermark opts name and checks it as
// Variants does before it takes a slot (a file that only libvips can tell
// is broken passes), without making anything: for a service to find out,
// before any image comes, that the watermarks its configuration names are
// there.
//
// Errors: ErrBadWatermark for the first that cannot be used; the
// Watermarks' own error (a store that cannot be reached); ctx's.
func (p *Processor) CheckWatermarks(ctx context.Context, opts []Options) error {
	_, _, err := p.fetchMarks(ctx, opts)
	return err
}

// markBufs are a job's watermarks in a worker, by name: C memory, as an
// input's bytes are, since libvips decodes from them lazily.
type markBufs map[string]cbuf

// readMarks reads the watermarks' bytes that follow a job's image.
func readMarks(r *bufio.Reader, marks []jobMark) (markBufs, error) {
	bufs := markBufs{}
	for _, m := range marks {
		b := newCbuf(m.Size)
		bufs[m.Name] = b
		if _, err := io.ReadFull(r, b.bytes()); err != nil {
			bufs.free()
			return nil, fmt.Errorf("read watermark: %w", err)
		}
	}
	return bufs, nil
}

func (bufs markBufs) free() {
	for _, b := range bufs {
		b.free()
	}
}

// markBox is where a watermark of sw x sh goes over an output of W x H,
// as w asks: its size, then its place.
//
// Its width is w.Scale of the output's width, its height following its
// aspect ratio; without a scale, its own size. Whatever the scale, it is
// made smaller, aspect kept, until it fits inside the output less the
// margin on every side: a watermark is never cut, and never costs more
// than the output's own pixels. A margin that would leave no room shrinks
// to leave a pixel.
//
// It is placed at its position's edges, w.Margin from each: east and west
// against the right and left edges, north and south against the top and
// bottom, a corner against two; it is centred along a side it is not
// placed against (center: both).
func markBox(W, H, sw, sh int, w Watermark) rect {
	m := min(w.Margin, (W-1)/2, (H-1)/2)
	roomW, roomH := W-2*m, H-2*m
	s := 1.0
	if w.Scale > 0 {
		s = w.Scale * float64(W) / float64(sw)
	}
	s = math.Min(s, math.Min(float64(roomW)/float64(sw), float64(roomH)/float64(sh)))
	mw, mh := min(side(float64(sw)*s), roomW), min(side(float64(sh)*s), roomH)
	x, y := (W-mw)/2, (H-mh)/2
	switch w.Position {
	case GravityWest, GravityNorthWest, GravitySouthWest:
		x = m
	case GravityEast, GravityNorthEast, GravitySouthEast:
		x = W - mw - m
	}
	switch w.Position {
	case GravityNorth, GravityNorthEast, GravityNorthWest:
		y = m
	case GravitySouth, GravitySouthEast, GravitySouthWest:
		y = H - mh - m
	}
	return rect{x, y, mw, mh}
}
