package imageproc

import (
	"context"
	"fmt"
	"math"
)

// sampleBox is the side of the box the small decode of Info fits in. A
// ThumbHash has at most seven coefficients a side, which 32 samples
// resolve; the most common colour needs only some hundreds of pixels. At
// 32 x 32 in RGBA the pixels that cross the pipe are 4 KiB.
const sampleBox = 32

// Info is what the service tells of an image without making an output: its
// header, and from one small decode a placeholder and a colour.
type Info struct {
	Format Format
	// Width and Height are the size upright, as the image is shown.
	Width, Height int
	// Orientation is the EXIF orientation (1..8) the image had, which
	// Width and Height already apply.
	Orientation int
	// Alpha: the image has an alpha channel.
	Alpha bool
	// Frames is the number of frames of an animation (GIF, WebP), Pages
	// the number of pages of a document (TIFF, PDF, a HEIF of several
	// images); each is 1 where the other counts, or for a single picture.
	Frames, Pages int
	// ThumbHash is the binary ThumbHash of the upright image (its first
	// frame or page): a placeholder of about 25 bytes (see thumbHash).
	ThumbHash []byte
	// Dominant is the most common colour (see dominantColour); nil when no
	// pixel is more than half opaque.
	Dominant *Color
}

// Info reads the header of the image b and makes one small decode of it,
// upright and in sRGB, in a worker, under the same checks, slot and
// timeout as Variants; the ThumbHash and the dominant colour are computed
// from those pixels here, in Go. The errors are those of Variants.
func (p *Processor) Info(ctx context.Context, b []byte) (*Info, error) {
	in, err := p.prepare(b, nil)
	if err != nil {
		return nil, err
	}
	release, err := p.gate.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	rep, _, err := p.run(ctx, in, job{Sample: sampleBox}, nil)
	if err != nil {
		return nil, err
	}
	s := rep.Sample
	if s == nil || s.Width < 1 || s.Height < 1 || s.Width > sampleBox || s.Height > sampleBox || len(s.pixels) != 4*s.Width*s.Height {
		return nil, fmt.Errorf("worker answered without a %dx%d RGBA sample: %+v", sampleBox, sampleBox, s)
	}
	h := rep.Header
	info := &Info{Format: h.Format, Width: h.Width, Height: h.Height, Orientation: h.Orientation, Alpha: h.Alpha,
		Frames: 1, Pages: h.Pages, ThumbHash: thumbHash(s.Width, s.Height, s.pixels)}
	if h.Format.CanAnimate() {
		info.Frames, info.Pages = h.Pages, 1
	}
	if c, ok := dominantColour(s.pixels); ok {
		info.Dominant = &c
	}
	return info, nil
}

// sample is the small decode of Info, made in a worker through the
// service's own load path (the loader's limits, fail_on, the colour
// conversion): the image upright, scaled to fit a box x box square (never
// enlarged), 8-bit sRGB with an alpha band (opaque when the image has
// none), not premultiplied. data is C memory.
func sample(in cbuf, h Header, box int) (rendered, error) {
	scale := math.Min(1, math.Min(float64(box)/float64(h.Width), float64(box)/float64(h.Height)))
	w, ht := side(float64(h.Width)*scale), side(float64(h.Height)*scale)
	src := &source{in: in, h: h}
	defer src.free()
	im, err := src.decode(w, ht)
	if err != nil {
		return rendered{}, err
	}
	defer func() { im.free() }()
	if im.bands() <= 2 {
		if im, err = im.toSRGB(); err != nil {
			return rendered{}, classify(in, err)
		}
	}
	if !im.alpha() {
		if im, err = im.addAlpha(); err != nil {
			return rendered{}, classify(in, err)
		}
	}
	if im.bands() != 4 || im.width() != w || im.height() != ht {
		return rendered{}, fmt.Errorf("sample is %dx%d in %d bands, want %dx%d RGBA", im.width(), im.height(), im.bands(), w, ht)
	}
	data, err := im.pixels()
	if err != nil {
		return rendered{}, classify(in, err)
	}
	return rendered{data: data, width: w, height: ht}, nil
}
