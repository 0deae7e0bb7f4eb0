package imageproc

import (
	"fmt"
	"math"
)

// rect is a region in pixels.
type rect struct{ x, y, w, h int }

// geometry is how one output is cut from an upright source, in three
// steps: take region of the source (the whole of it, except when cover
// enlarges: see fitGeometry) and scale it to exactly scaleW x scaleH; then
// crop to crop (or, with smart, let libvips' attention strategy choose a
// crop of that size); then pad the result onto a canvas of padW x padH at
// crop's offset. Every size is exact: the output is Width x Height.
type geometry struct {
	region         rect
	scaleW, scaleH int
	crop           rect // in the scaled image; the whole of it when nothing is cut
	smart          bool
	pad            bool
	padX, padY     int
	Width, Height  int // the output
	enlarges       bool
	regionIsWhole  bool
}

// fitGeometry works out the output of options o for an upright source of
// sw x sh pixels. It is the one place the fit modes are defined:
//
//   - no width and no height: the source's size;
//   - one side given (any fit): that side, the other following the aspect
//     ratio;
//   - inside: the largest size that fits the box, aspect kept;
//   - contain: as inside, then padded to the box;
//   - cover: the smallest size that covers the box, aspect kept, then cut
//     to the box at the gravity;
//   - fill: the box, aspect ignored.
//
// Without enlarge no side grows: inside and one-sided sizes stop at the
// source's size, cover cuts what the source has (a 100x100 cover of a
// 50x300 source is 50x100), fill is capped per side, and contain neither
// grows nor pads an image that already fits. Scaled sides are rounded to
// the nearest pixel, and never below 1 (a 10000x1 strip at width 100 is
// 100x1).
//
// It fails with ErrTooLarge when the output grows past maxDimension on a
// side or past maxPixels in all.
func fitGeometry(sw, sh int, o Options, maxDimension int, maxPixels int64) (geometry, error) {
	g := geometry{region: rect{0, 0, sw, sh}, regionIsWhole: true}
	W, H := o.Width, o.Height
	fit := o.Fit
	if W == 0 || H == 0 {
		fit = FitInside // one side free: every mode keeps the aspect ratio
	}
	// Scales are kept as fractions num/den, so that a side that sets the
	// scale comes out exactly and rounding is the same on every platform.
	var s ratio
	switch {
	case W == 0 && H == 0:
		s = ratio{1, 1}
	case H == 0:
		s = ratio{W, sw}
	case W == 0:
		s = ratio{H, sh}
	case fit == FitCover:
		s = maxRatio(ratio{W, sw}, ratio{H, sh})
	default: // inside, contain, fill (fill uses s only to decide padding: never)
		s = minRatio(ratio{W, sw}, ratio{H, sh})
	}
	grows := s.num > s.den
	if grows && !o.Enlarge {
		s = ratio{1, 1}
	}
	switch {
	case fit == FitFill && W > 0 && H > 0:
		g.scaleW, g.scaleH = W, H
		if !o.Enlarge {
			g.scaleW, g.scaleH = min(W, sw), min(H, sh)
		}
	case fit == FitContain && W > 0 && H > 0 && (!grows || o.Enlarge):
		// Scale into the box and pad to it. An image already inside the box
		// is, without enlarge, neither enlarged nor padded.
		g.scaleW, g.scaleH = s.of(sw), s.of(sh)
		g.pad = true
		g.padX, g.padY = (W-g.scaleW)/2, (H-g.scaleH)/2
		g.Width, g.Height = W, H
	case fit == FitCover && W > 0 && H > 0:
		w, h := min(W, s.of(sw)), min(H, s.of(sh))
		g.smart = o.Gravity == GravitySmart
		if s.num > s.den {
			// Enlarging: cut the region from the source first, then scale
			// only that. Scaling first would build an image as large as the
			// scale times the source (a 1x10000 strip covering 100x100
			// would be 100x1000000) to keep a box of it.
			inv := ratio{s.den, s.num}
			rw, rh := min(sw, inv.of(w)), min(sh, inv.of(h))
			g.region = rect{0, 0, rw, rh}
			g.region.x, g.region.y = gravityOffset(o.Gravity, sw-rw, sh-rh)
			g.regionIsWhole = rw == sw && rh == sh
			g.scaleW, g.scaleH = w, h
			break
		}
		g.scaleW, g.scaleH = s.of(sw), s.of(sh)
		g.crop = rect{0, 0, w, h}
		g.crop.x, g.crop.y = gravityOffset(o.Gravity, g.scaleW-w, g.scaleH-h)
	default: // inside, or one side given
		g.scaleW, g.scaleH = s.of(sw), s.of(sh)
	}
	if g.crop.w == 0 {
		g.crop = rect{0, 0, g.scaleW, g.scaleH}
	}
	if !g.pad {
		g.Width, g.Height = g.crop.w, g.crop.h
	}
	g.enlarges = g.Width > sw || g.Height > sh || g.scaleW > g.region.w || g.scaleH > g.region.h
	if g.enlarges && (g.Width > maxDimension || g.Height > maxDimension) {
		return g, fmt.Errorf("%w: output %dx%d is over the limit of %d pixels a side", ErrTooLarge, g.Width, g.Height, maxDimension)
	}
	if px := int64(g.Width) * int64(g.Height); px > maxPixels {
		return g, fmt.Errorf("%w: output %dx%d is %d pixels, over the limit of %d", ErrTooLarge, g.Width, g.Height, px, maxPixels)
	}
	return g, nil
}

// ratio is a scale factor num/den.
type ratio struct{ num, den int }

// of scales a length, rounded to the nearest pixel (halves up), never
// below 1 (a 10000x1 strip at width 100 is 100x1).
func (r ratio) of(n int) int {
	v := (2*int64(n)*int64(r.num) + int64(r.den)) / (2 * int64(r.den))
	return int(max(1, v))
}

func (r ratio) less(o ratio) bool { return int64(r.num)*int64(o.den) < int64(o.num)*int64(r.den) }

func minRatio(a, b ratio) ratio {
	if b.less(a) {
		return b
	}
	return a
}

func maxRatio(a, b ratio) ratio {
	if a.less(b) {
		return b
	}
	return a
}

// scale is the largest factor, over both axes, by which the output scales
// the source: how large an intermediate must be for the output to be cut
// from it without loss.
func (g geometry) scale() float64 {
	return math.Max(float64(g.scaleW)/float64(g.region.w), float64(g.scaleH)/float64(g.region.h))
}

// gravityOffset places a cut of the given slack (the size of what is cut
// away, per axis) at gravity g. Smart starts centred; libvips decides.
func gravityOffset(g Gravity, slackX, slackY int) (x, y int) {
	x, y = slackX/2, slackY/2
	switch g {
	case GravityNorth:
		y = 0
	case GravitySouth:
		y = slackY
	case GravityEast:
		x = slackX
	case GravityWest:
		x = 0
	}
	return x, y
}

// side rounds a scaled length to whole pixels, at least one.
func side(f float64) int { return max(1, int(math.Round(f))) }
