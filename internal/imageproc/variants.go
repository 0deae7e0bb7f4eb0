package imageproc

import (
	"context"
	"math"
)

// reuseBelow is the scale under which several outputs are made from one
// intermediate rather than each from the source: decoding an 18 MP JPEG
// costs ten times more than decoding the same picture at 1600 pixels, but
// an intermediate close to the source's size saves nothing.
const reuseBelow = 0.8

// Variants makes one output per element of opts from the image b, holding
// a single gate slot for all of them, and decodes the full-size source only
// once: it first scales the source, upright and in sRGB, to the largest
// size any output needs, kept as an uncompressed TIFF (lossless, and
// written and read at the speed of a copy), then makes every output from
// that. Errors are Process's.
func (p *Processor) Variants(ctx context.Context, b []byte, opts []Options) ([]*Result, error) {
	return withSlot(ctx, p, b, func(f Format) ([]*Result, error) { return p.variants(b, f, opts) })
}

func (p *Processor) variants(b []byte, f Format, opts []Options) ([]*Result, error) {
	src, err := readSource(b, f)
	if err != nil {
		return nil, err
	}
	if err := p.checkPixels(src.width, src.height); err != nil {
		return nil, err
	}
	// Each output keeps the format of the source, not of the intermediate.
	resolved := make([]Options, len(opts))
	scale := 0.0
	for i, o := range opts {
		if o.Format == FormatUnknown {
			o.Format = OutputFormatFor(f, src.alpha)
		}
		resolved[i] = o
		scale = math.Max(scale, neededScale(src, o))
	}
	if len(opts) < 2 || scale >= reuseBelow {
		out := make([]*Result, len(resolved))
		for i, o := range resolved {
			if out[i], err = p.resizeFrom(b, src, o); err != nil {
				return nil, err
			}
		}
		return out, nil
	}

	uw, uh := src.upright()
	mid := Options{Width: roundSide(float64(uw) * scale), Height: roundSide(float64(uh) * scale),
		Fit: FitFill, Format: FormatTIFF}
	im, err := p.resizeFrom(b, src, mid)
	if err != nil {
		return nil, err
	}
	// The intermediate is upright, whatever orientation tag its TIFF
	// carries over, and exactly the size asked for.
	imSrc := source{width: mid.Width, height: mid.Height, orientation: 1, alpha: src.alpha, format: FormatTIFF}
	out := make([]*Result, len(resolved))
	for i, o := range resolved {
		// Every output needs at most the intermediate's size, so enlarge
		// only decides, as it did against the source, that contain pads.
		o.Enlarge = true
		if out[i], err = p.resizeFrom(im.Data, imSrc, o); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// neededScale is the scale of the source (upright) that the output o is
// cut or padded from: the largest of its two axes.
func neededScale(src source, o Options) float64 {
	uw, uh := src.upright()
	sw, sh := float64(uw), float64(uh)
	W, H := float64(o.Width), float64(o.Height)
	var s float64
	switch {
	case o.Width == 0 && o.Height == 0:
		return 1
	case o.Height == 0:
		s = W / sw
	case o.Width == 0:
		s = H / sh
	case o.Fit == FitCover:
		s = math.Max(W/sw, H/sh)
	case o.Fit == FitFill:
		s = math.Max(W/sw, H/sh)
	default: // inside, contain
		s = math.Min(W/sw, H/sh)
	}
	if !o.Enlarge {
		s = math.Min(s, 1)
	}
	return s
}
