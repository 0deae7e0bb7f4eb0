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
	fw, fh := float64(sw), float64(sh)
	W, H := float64(o.Width), float64(o.Height)
	clamp := func(s float64) float64 {
		if !o.Enlarge {
			return math.Min(s, 1)
		}
		return s
	}
	fit := o.Fit
	if o.Width == 0 || o.Height == 0 {
		fit = FitInside // one side free: every mode keeps the aspect ratio
	}
	switch {
	case o.Width == 0 && o.Height == 0:
		g.scaleW, g.scaleH = sw, sh
	case fit == FitInside, fit == FitContain:
		s := math.Inf(1)
		if o.Width > 0 {
			s = W / fw
		}
		if o.Height > 0 {
			s = math.Min(s, H/fh)
		}
		pad := fit == FitContain && (s < 1 || o.Enlarge)
		s = clamp(s)
		g.scaleW, g.scaleH = side(fw*s), side(fh*s)
		if pad {
			// Rounding keeps each side within the box: the side that set the
			// scale is the box's exactly, the other is at most the box's.
			g.scaleW, g.scaleH = min(g.scaleW, o.Width), min(g.scaleH, o.Height)
			g.pad = true
			g.padX, g.padY = (o.Width-g.scaleW)/2, (o.Height-g.scaleH)/2
			g.Width, g.Height = o.Width, o.Height
		}
	case fit == FitCover:
		s := clamp(math.Max(W/fw, H/fh))
		w, h := min(o.Width, side(fw*s)), min(o.Height, side(fh*s))
		if s > 1 {
			// Enlarging: cut the region from the source first, then scale
			// only that. Scaling first would build an image as large as the
			// scale times the source (a 1x10000 strip covering 100x100
			// would be 100x1000000) to keep a box of it.
			rw, rh := min(sw, side(float64(w)/s)), min(sh, side(float64(h)/s))
			g.region = rect{0, 0, rw, rh}
			g.region.x, g.region.y = gravityOffset(o.Gravity, sw-rw, sh-rh)
			g.regionIsWhole = rw == sw && rh == sh
			g.smart = o.Gravity == GravitySmart
			g.scaleW, g.scaleH = w, h
			break
		}
		g.scaleW, g.scaleH = side(fw*s), side(fh*s)
		g.crop = rect{0, 0, w, h}
		g.crop.x, g.crop.y = gravityOffset(o.Gravity, g.scaleW-w, g.scaleH-h)
		g.smart = o.Gravity == GravitySmart
	case fit == FitFill:
		g.scaleW, g.scaleH = o.Width, o.Height
		if !o.Enlarge {
			g.scaleW, g.scaleH = min(g.scaleW, sw), min(g.scaleH, sh)
		}
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
