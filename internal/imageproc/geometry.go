package imageproc

import (
	"fmt"
	"math"
)

// rect is a region in pixels.
type rect struct{ x, y, w, h int }

// geometry is how one output is cut from an upright source: take region of
// the source (the whole of it, or what trim and crop leave, or the part a
// cover that enlarges keeps: see fitGeometry) and scale it to exactly
// scaleW x scaleH; crop to crop (or, with smart, let libvips' attention
// strategy choose a crop of that size); pad onto a canvas of padW x padH at
// padX, padY (contain); turn (Rotate, Flip); then add Pad around it. Every
// size is exact: the output is Width x Height.
//
// A smart cover that enlarges is cut before the scale, so libvips chooses
// where: smartIn is then the part of the source in which it places region
// (whose size is fixed, its place not yet).
type geometry struct {
	region         rect
	scaleW, scaleH int
	crop           rect // in the scaled image; the whole of it when nothing is cut
	smart          bool
	smartIn        rect
	contain        bool
	padX, padY     int
	padW, padH     int
	// Width and Height of the output, rotation and Pad included.
	Width, Height int
	rotate        int
	flip          Flip
	pad           [4]int
	enlarges      bool
	regionIsWhole bool
}

// fitGeometry works out the output of options o for an upright source of
// sw x sh pixels, of which trim (when not nil) is what a trim of its border
// leaves. It is the one place the fit modes are defined:
//
//   - no width and no height: the source's size;
//   - one side given (any fit): that side, the other following the aspect
//     ratio;
//   - inside: the largest size that fits the box, aspect kept;
//   - contain: as inside, then padded to the box;
//   - cover: the smallest size that covers the box, aspect kept, then cut
//     to the box at the gravity (or around the focal point);
//   - fill: the box, aspect ignored.
//
// The source is first trimmed and cropped (both in the upright source's
// pixels: the region kept is what both leave). Width and Height describe
// the image after Rotate, so a quarter turn swaps the box. Without enlarge
// no side grows: inside and one-sided sizes stop at the region's size,
// cover cuts what the region has (a 100x100 cover of a 50x300 region is
// 50x100), fill is capped per side, and contain neither grows nor pads an
// image that already fits. Pad is added around the result, and DPR
// multiplies Width, Height and Pad. Scaled sides are rounded to the nearest
// pixel, and never below 1 (a 10000x1 strip at width 100 is 100x1).
//
// It fails with ErrBadOption for a crop outside the source, and with
// ErrTooLarge when the output grows past maxDimension on a side (grows:
// its region scaled up, or a side, padding included, longer than that
// side of the source turned as the output is) or past maxPixels in all.
func fitGeometry(sw, sh int, o Options, maxDimension int, maxPixels int64, trim *rect) (geometry, error) {
	o = o.scaledBy()
	g := geometry{region: rect{0, 0, sw, sh}, rotate: o.Rotate, flip: o.Flip, pad: o.Pad}
	if trim != nil {
		g.region = *trim
	}
	if c := o.Crop; c != nil {
		if c.X+c.W > sw || c.Y+c.H > sh {
			return g, fmt.Errorf("%w: crop %d,%d,%d,%d is outside the %dx%d image", ErrBadOption, c.X, c.Y, c.W, c.H, sw, sh)
		}
		r, ok := intersect(g.region, rect{c.X, c.Y, c.W, c.H})
		if !ok {
			return g, fmt.Errorf("%w: crop %d,%d,%d,%d and trim leave nothing", ErrBadOption, c.X, c.Y, c.W, c.H)
		}
		g.region = r
	}
	g.regionIsWhole = g.region == rect{0, 0, sw, sh}
	W, H := o.Width, o.Height
	if o.Rotate == 90 || o.Rotate == 270 {
		W, H = H, W // the box is the turned image's: resize into it as turned back
	}
	if err := g.fit(W, H, o, sw, sh); err != nil {
		return g, err
	}
	w, h := g.crop.w, g.crop.h
	if g.contain {
		w, h = g.padW, g.padH
	}
	if g.rotate == 90 || g.rotate == 270 {
		w, h = h, w
	}
	g.Width, g.Height = w+g.pad[1]+g.pad[3], h+g.pad[0]+g.pad[2]
	rw, rh := g.region.w, g.region.h
	// The output is compared with the source turned as it is: a quarter
	// turn alone enlarges nothing (a 9000x3000 photo turned is 3000x9000,
	// and was refused as an enlargement past a limit of 8192).
	tw, th := sw, sh
	if g.rotate == 90 || g.rotate == 270 {
		tw, th = sh, sw
	}
	g.enlarges = g.scaleW > rw || g.scaleH > rh || g.Width > tw || g.Height > th
	if g.enlarges && (g.Width > maxDimension || g.Height > maxDimension) {
		return g, fmt.Errorf("%w: output %dx%d is over the limit of %d pixels a side", ErrTooLarge, g.Width, g.Height, maxDimension)
	}
	if px := int64(g.Width) * int64(g.Height); px > maxPixels {
		return g, fmt.Errorf("%w: output %dx%d is %d pixels, over the limit of %d", ErrTooLarge, g.Width, g.Height, px, maxPixels)
	}
	return g, nil
}

// fit sets the scale and the cut of the region into the box W x H (0: a
// free side), as o's fit mode says (see fitGeometry).
func (g *geometry) fit(W, H int, o Options, sw, sh int) error {
	rw, rh := g.region.w, g.region.h
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
		s = ratio{W, rw}
	case W == 0:
		s = ratio{H, rh}
	case fit == FitCover:
		s = maxRatio(ratio{W, rw}, ratio{H, rh})
	default: // inside, contain, fill (fill uses s only to decide padding: never)
		s = minRatio(ratio{W, rw}, ratio{H, rh})
	}
	grows := s.num > s.den
	if grows && !o.Enlarge {
		s = ratio{1, 1}
	}
	switch {
	case fit == FitFill:
		g.scaleW, g.scaleH = W, H
		if !o.Enlarge {
			g.scaleW, g.scaleH = min(W, rw), min(H, rh)
		}
	case fit == FitContain && (!grows || o.Enlarge):
		// Scale into the box and pad to it. An image already inside the box
		// is, without enlarge, neither enlarged nor padded.
		g.scaleW, g.scaleH = s.of(rw), s.of(rh)
		g.contain = true
		g.padW, g.padH = W, H
		g.padX, g.padY = (W-g.scaleW)/2, (H-g.scaleH)/2
	case fit == FitCover:
		w, h := min(W, s.of(rw)), min(H, s.of(rh))
		g.smart = o.Gravity == GravitySmart
		if s.num > s.den {
			// Enlarging: cut the region from the source first, then scale
			// only that. Scaling first would build an image as large as the
			// scale times the source (a 1x10000 strip covering 100x100
			// would be 100x1000000) to keep a box of it.
			inv := ratio{s.den, s.num}
			cw, ch := min(rw, inv.of(w)), min(rh, inv.of(h))
			if g.smart && (cw < rw || ch < rh) {
				// libvips places the cut in the source, before the scale.
				g.smartIn, g.smart = g.region, false
			}
			x, y := cutOffset(o, g.region, sw, sh, rw, rh, cw, ch)
			g.region = rect{g.region.x + x, g.region.y + y, cw, ch}
			g.regionIsWhole = g.region == rect{0, 0, sw, sh}
			g.scaleW, g.scaleH = w, h
			break
		}
		g.scaleW, g.scaleH = s.of(rw), s.of(rh)
		g.crop = rect{0, 0, w, h}
		g.crop.x, g.crop.y = cutOffset(o, g.region, sw, sh, g.scaleW, g.scaleH, w, h)
	default: // inside, or one side given
		g.scaleW, g.scaleH = s.of(rw), s.of(rh)
	}
	if g.crop.w == 0 {
		g.crop = rect{0, 0, g.scaleW, g.scaleH}
	}
	return nil
}

// cutOffset places a cut of cw x ch in an image of iw x ih (the region of
// the source, scaled to that size) at o's gravity: an edge or corner, the
// centre, or as near the focal point as the image allows. Smart starts
// centred; libvips decides.
func cutOffset(o Options, region rect, sw, sh, iw, ih, cw, ch int) (x, y int) {
	slackX, slackY := iw-cw, ih-ch
	x, y = slackX/2, slackY/2
	switch o.Gravity {
	case GravityNorth, GravityNorthEast, GravityNorthWest:
		y = 0
	case GravitySouth, GravitySouthEast, GravitySouthWest:
		y = slackY
	}
	switch o.Gravity {
	case GravityWest, GravityNorthWest, GravitySouthWest:
		x = 0
	case GravityEast, GravityNorthEast, GravitySouthEast:
		x = slackX
	}
	if o.Gravity == GravityFocus && o.Focus != nil {
		// The focal point, in the scaled region's pixels.
		fx := (o.Focus.X*float64(sw) - float64(region.x)) * float64(iw) / float64(region.w)
		fy := (o.Focus.Y*float64(sh) - float64(region.y)) * float64(ih) / float64(region.h)
		x = clamp(int(math.Round(fx-float64(cw)/2)), 0, slackX)
		y = clamp(int(math.Round(fy-float64(ch)/2)), 0, slackY)
	}
	return x, y
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

func intersect(a, b rect) (rect, bool) {
	x0, y0 := max(a.x, b.x), max(a.y, b.y)
	x1, y1 := min(a.x+a.w, b.x+b.w), min(a.y+a.h, b.y+b.h)
	if x1 <= x0 || y1 <= y0 {
		return rect{}, false
	}
	return rect{x0, y0, x1 - x0, y1 - y0}, true
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
// its region of the source: how large a shared decode must be for the
// output to be cut from it without loss.
func (g geometry) scale() float64 {
	return math.Max(float64(g.scaleW)/float64(g.region.w), float64(g.scaleH)/float64(g.region.h))
}

// side rounds a scaled length to whole pixels, at least one.
func side(f float64) int { return max(1, int(math.Round(f))) }
