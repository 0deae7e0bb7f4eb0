package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// pixelPicture is an upright w x h picture whose every pixel is a colour
// of blockPalette drawn at random: neighbours need not agree, so a
// picture moved by one pixel, turned or mirrored the wrong way, or cut a
// pixel off shows in most of its pixels.
func pixelPicture(r *rand.Rand, w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := blockPalette[r.IntN(len(blockPalette))]
			img.SetRGBA(x, y, color.RGBA{c.R, c.G, c.B, 255})
		}
	}
	return img
}

// pngWithOrientation is the upright picture up stored as a PNG with EXIF
// orientation o: the pixels that o turns into up (storeAs), and an eXIf
// chunk, before the image data as the PNG specification asks, that says o.
func pngWithOrientation(t *testing.T, up *image.RGBA, o int) []byte {
	t.Helper()
	b, err := pngWith(encodePNG(t, storeAs(up, o)), orientationTIFF(uint16(o)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// unscaled is what docs/api.md says options that scale nothing make of an
// upright source, written from the documentation alone: the region (the
// crop, else the whole), the part of it a cover keeps, the canvas of a
// contain, then the turn, the flip and the pad. Where the documentation
// leaves a place open by half a pixel (a centre over an odd slack, a focal
// point half-way between two pixels), each candidate is listed.
type unscaled struct {
	rx, ry, rw, rh int
	kw, kh         int   // the part of the region kept
	kxs, kys       []int // where it may start in the region
	canvas         bool  // contain: the part kept lies on a canvas
	cw, ch         int
	cxs, cys       []int // where it may lie on the canvas
	rotate         int
	flip           Flip
	pad            [4]int
	w, h           int // of the output
}

// planUnscaled works out unscaled for o over an upright uw x uh source,
// of which trim (when not nil) is what a trim of its border leaves. ok is
// false when the crop reaches outside the source or outside what the trim
// leaves, or when o scales the region (its output is another test's
// business).
func planUnscaled(uw, uh int, o Options, trim *rect) (u unscaled, ok bool) {
	u = unscaled{rw: uw, rh: uh, rotate: o.Rotate, flip: o.Flip}
	if trim != nil {
		u.rx, u.ry, u.rw, u.rh = trim.x, trim.y, trim.w, trim.h
	}
	if c := o.Crop; c != nil {
		if c.X+c.W > uw || c.Y+c.H > uh {
			return u, false
		}
		// What both the trim and the crop leave.
		x0, y0 := max(u.rx, c.X), max(u.ry, c.Y)
		x1, y1 := min(u.rx+u.rw, c.X+c.W), min(u.ry+u.rh, c.Y+c.H)
		if x1 <= x0 || y1 <= y0 {
			return u, false
		}
		u.rx, u.ry, u.rw, u.rh = x0, y0, x1-x0, y1-y0
	}
	d := o.DPR
	if d == 0 {
		d = 1
	}
	mul := func(n int) int { return int(math.Round(float64(n) * d)) }
	W, H := mul(o.Width), mul(o.Height)
	for i := range u.pad {
		u.pad[i] = mul(o.Pad[i])
	}
	turned := o.Rotate == 90 || o.Rotate == 270
	if turned {
		W, H = H, W // width and height are the turned image's
	}
	one := big.NewRat(1, 1)
	sx, sy := big.NewRat(int64(W), int64(u.rw)), big.NewRat(int64(H), int64(u.rh))
	least, most := sx, sy
	if sy.Cmp(sx) < 0 {
		least, most = sy, sx
	}
	capped := func(s *big.Rat) *big.Rat {
		if !o.Enlarge && s.Cmp(one) > 0 {
			return one
		}
		return s
	}
	u.kw, u.kh = u.rw, u.rh
	u.kxs, u.kys, u.cxs, u.cys = []int{0}, []int{0}, []int{0}, []int{0}
	fit := o.Fit
	if W == 0 || H == 0 {
		fit = FitInside // one side given: the aspect ratio is kept
	}
	switch {
	case W == 0 && H == 0:
	case fit == FitInside:
		s := least
		if H == 0 {
			s = sx
		} else if W == 0 {
			s = sy
		}
		if capped(s).Cmp(one) != 0 {
			return u, false
		}
	case fit == FitContain:
		if least.Cmp(one) > 0 && !o.Enlarge {
			break // it fits already: neither enlarged nor padded
		}
		if least.Cmp(one) != 0 {
			return u, false
		}
		u.canvas, u.cw, u.ch = true, W, H
		u.cxs, u.cys = centred(W-u.rw), centred(H-u.rh)
	case fit == FitCover:
		if capped(most).Cmp(one) != 0 {
			return u, false
		}
		u.kw, u.kh = min(W, u.rw), min(H, u.rh)
		var fx, fy *float64
		if o.Gravity == GravityFocus {
			fx, fy = &o.Focus.X, &o.Focus.Y
		}
		g := o.Gravity
		u.kxs = along(g == GravityWest || g == GravityNorthWest || g == GravitySouthWest,
			g == GravityEast || g == GravityNorthEast || g == GravitySouthEast, fx, uw, u.rx, u.rw, u.kw)
		u.kys = along(g == GravityNorth || g == GravityNorthWest || g == GravityNorthEast,
			g == GravitySouth || g == GravitySouthWest || g == GravitySouthEast, fy, uh, u.ry, u.rh, u.kh)
	default: // fill: the box, capped per side without enlarge
		w, h := W, H
		if !o.Enlarge {
			w, h = min(W, u.rw), min(H, u.rh)
		}
		if w != u.rw || h != u.rh {
			return u, false
		}
	}
	a, b := u.kw, u.kh
	if u.canvas {
		a, b = u.cw, u.ch
	}
	if turned {
		a, b = b, a
	}
	u.w, u.h = a+u.pad[1]+u.pad[3], b+u.pad[0]+u.pad[2]
	return u, true
}

// centred is where something may start to be centred in a slack of n
// pixels: the middle, or either of the two middles of an odd slack.
func centred(n int) []int {
	if n%2 == 0 {
		return []int{n / 2}
	}
	return []int{n / 2, n/2 + 1}
}

// along is where a cut of n pixels may start in a span of m pixels (which
// begins at pixel at of the upright source's whole pixels along that
// axis): at its start, at its end, as near the focal point f (a fraction of
// the whole) to its middle as the span allows, or centred.
func along(start, end bool, f *float64, whole, at, m, n int) []int {
	slack := m - n
	switch {
	case f != nil:
		ideal := *f*float64(whole) - float64(at) - float64(n)/2
		lo := math.Floor(ideal)
		var c []int
		if ideal-lo <= 0.5+1e-9 {
			c = append(c, clamp(int(lo), 0, slack))
		}
		if ideal-lo >= 0.5-1e-9 {
			c = append(c, clamp(int(lo)+1, 0, slack))
		}
		return c
	case start:
		return []int{0}
	case end:
		return []int{slack}
	}
	return centred(slack)
}

// at is what output pixel ox, oy shows, as a pixel of the upright picture
// up (in, true) or padding (false), when the part kept starts at kx, ky of
// the region and lies at cx, cy of a contain's canvas.
func (u unscaled) at(ox, oy, kx, ky, cx, cy int) (x, y int, in bool) {
	x, y = ox-u.pad[3], oy-u.pad[0]
	aw, ah := u.kw, u.kh // before the turn
	if u.canvas {
		aw, ah = u.cw, u.ch
	}
	tw, th := aw, ah // after it
	if u.rotate == 90 || u.rotate == 270 {
		tw, th = ah, aw
	}
	if x < 0 || y < 0 || x >= tw || y >= th {
		return 0, 0, false
	}
	if u.flip == FlipHorizontal || u.flip == FlipBoth {
		x = tw - 1 - x
	}
	if u.flip == FlipVertical || u.flip == FlipBoth {
		y = th - 1 - y
	}
	switch u.rotate { // undo a clockwise turn of an aw x ah image
	case 90:
		x, y = y, ah-1-x
	case 180:
		x, y = aw-1-x, ah-1-y
	case 270:
		x, y = aw-1-y, x
	}
	if u.canvas {
		x, y = x-cx, y-cy
		if x < 0 || y < 0 || x >= u.kw || y >= u.kh {
			return 0, 0, false
		}
	}
	return u.rx + kx + x, u.ry + ky + y, true
}

// wrongPixels counts the pixels of img that differ from what u puts there
// from up (same, by the colour of a pixel of up and of padding's), for the
// candidate places that fit best, and tells the first of them.
func (u unscaled) wrongPixels(img image.Image, same func(got [4]uint8, x, y int, in bool) bool) (int, string) {
	best, told := u.w*u.h+1, ""
	for _, kx := range u.kxs {
		for _, ky := range u.kys {
			for _, cx := range u.cxs {
				for _, cy := range u.cys {
					wrong, first := 0, ""
					for oy := range u.h {
						for ox := range u.w {
							x, y, in := u.at(ox, oy, kx, ky, cx, cy)
							if got := rgbAt(img, ox, oy); !same(got, x, y, in) {
								if wrong == 0 {
									first = fmt.Sprintf("pixel %d,%d is %v, want source %d,%d (in %v), cut at %d,%d, canvas at %d,%d",
										ox, oy, got, x, y, in, kx, ky, cx, cy)
								}
								wrong++
							}
						}
					}
					if wrong < best {
						best, told = wrong, first
					}
				}
			}
		}
	}
	return best, told
}

// drawUnscaled draws options for an upright uw x uh source that often
// scale nothing: a crop (touching the edges more often than not, down to
// a pixel), a box whose sides are often those of the region (cover and
// contain then cut or pad without scaling), every fit, gravity (smart
// aside) and focal point, rotate, flip, pad and dpr.
func drawUnscaled(r *rand.Rand, uw, uh int) Options {
	o := Options{Rotate: 90 * r.IntN(4), Flip: Flip(r.IntN(4)), Fit: Fit(r.IntN(4)), Enlarge: r.IntN(2) == 0,
		Background: &padGrey}
	rw, rh := uw, uh
	if r.IntN(2) == 0 {
		span := func(n int) (int, int) {
			w := 1 + r.IntN(n)
			if r.IntN(5) == 0 {
				w = 1 // a crop of one pixel's width
			}
			switch r.IntN(3) {
			case 0:
				return 0, w // against the start
			case 1:
				return n - w, w // against the end
			}
			return r.IntN(n - w + 1), w
		}
		x, w := span(uw)
		y, h := span(uh)
		o.Crop = &Region{x, y, w, h}
		rw, rh = w, h
	}
	if r.IntN(3) == 0 {
		o.DPR = []float64{1.5, 2, 3, 4}[r.IntN(4)]
	}
	d := max(o.DPR, 1)
	side := func(n int) int { // a side of the box, in output pixels, near n
		switch r.IntN(6) {
		case 0:
			return 0
		case 1, 2, 3:
			return n
		case 4:
			return n + 1 + r.IntN(12)
		}
		return 1 + r.IntN(n+8)
	}
	bw, bh := side(rw), side(rh)
	if o.Fit == FitCover && r.IntN(2) == 0 {
		// A cut without a scale: one side of the box the region's (or,
		// without enlarge, longer), the other shorter.
		bw, bh = rw, 1+r.IntN(rh)
		if !o.Enlarge {
			bw += r.IntN(3)
		}
		if r.IntN(2) == 0 {
			bw, bh = 1+r.IntN(rw), rh
			if !o.Enlarge {
				bh += r.IntN(3)
			}
		}
	}
	if o.Rotate == 90 || o.Rotate == 270 {
		bw, bh = bh, bw // the box is the turned image's
	}
	asked := func(n int) int {
		if n == 0 {
			return 0
		}
		return max(1, int(math.Round(float64(n)/d)))
	}
	o.Width, o.Height = asked(bw), asked(bh)
	if g := Gravity(r.IntN(11)); g == GravityFocus {
		o.Gravity, o.Focus = g, &Point{r.Float64(), r.Float64()}
	} else if g != GravitySmart {
		o.Gravity = g
	}
	if r.IntN(3) == 0 {
		o.Pad = [4]int{r.IntN(4), r.IntN(4), r.IntN(4), r.IntN(4)}
	}
	return o
}

// uprightSide draws a side of a source: often one or a few pixels, now and
// then a long strip.
func uprightSide(r *rand.Rand) int {
	switch r.IntN(6) {
	case 0:
		return 1
	case 1:
		return 2 + r.IntN(3)
	case 2:
		return 100 + r.IntN(200)
	}
	return 1 + r.IntN(40)
}

// Options that scale nothing (a crop, a cover or contain whose box has a
// side of the region's, inside or fill that cannot grow, with rotate, flip,
// pad and dpr) over a lossless picture of random pixels stored with each
// of the 8 EXIF orientations, sizes down to 1xN, Nx1 and a crop of one
// pixel, a border trimmed or not, alone or three at a time from one
// decode (a source's variants):
// every output pixel is exactly the pixel of the upright source that the
// documented steps put there, or the background (transparent when none
// is asked for). A picture turned the
// wrong way, mirrored, or cut or placed a pixel off fails in most of its
// pixels.
func TestUnscaledStepsArePixelExact(t *testing.T) {
	p := newTestProcessor(t, nil)
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 7))
	n := 160
	if testing.Short() {
		n = 50
	}
	bg := [4]uint8{padGrey.R, padGrey.G, padGrey.B, 255}
	made, fits := 0, map[string]int{}
	for i := range n {
		uw, uh := uprightSide(r), uprightSide(r)
		if uw > 40 && uh > 40 {
			uh = 1 + r.IntN(3) // a strip, not a large picture
		}
		up := pixelPicture(r, uw, uh)
		var trim *rect
		if r.IntN(4) == 0 {
			// A border to trim, whatever the orientation the file is
			// stored with, around a picture of at least 3x3 pixels (trim
			// takes a line or two a pixel wide for specks).
			inner := pixelPicture(r, max(uw, 3), max(uh, 3))
			top, right, bottom, left := 1+r.IntN(4), r.IntN(5), r.IntN(5), 1+r.IntN(4)
			trim = &rect{left, top, inner.Rect.Dx(), inner.Rect.Dy()}
			uw, uh = left+trim.w+right, top+trim.h+bottom
			up = image.NewRGBA(image.Rect(0, 0, uw, uh))
			draw.Draw(up, up.Rect, image.NewUniform(borderGrey), image.Point{}, draw.Src)
			draw.Draw(up, image.Rect(left, top, left+trim.w, top+trim.h), inner, image.Point{}, draw.Src)
		}
		orientation := 1 + r.IntN(8)
		in := pngWithOrientation(t, up, orientation)
		var opts []Options
		var plans []unscaled
		for k := range 1 + 2*r.IntN(2) {
			for range 200 {
				o := drawUnscaled(r, uw, uh)
				if trim != nil {
					o.Trim = ptr(10.0)
				}
				if u, ok := planUnscaled(uw, uh, o, trim); ok {
					if r.IntN(3) == 0 {
						o.Background = nil // padding transparent
					}
					opts, plans = append(opts, withFormat(o, FormatPNG)), append(plans, u)
					break
				}
			}
			if k == 0 && len(opts) == 1 && opts[0].Crop != nil && r.IntN(8) == 0 {
				c := *opts[0].Crop
				c.X = uw - c.W + 1 + r.IntN(3) // a pixel or more past the right edge
				opts[0].Crop = &c
				what := fmt.Sprintf("seed %d #%d: %dx%d upright, %s", seed, i, uw, uh, opts[0].Canonical())
				if _, err := p.Process(t.Context(), in, opts[0]); !errors.Is(err, ErrBadOption) {
					t.Errorf("%s: a crop past the edge: %v, want ErrBadOption", what, err)
				}
				opts, plans = nil, nil
			}
		}
		if len(opts) == 0 {
			continue
		}
		_, rs, err := p.Variants(t.Context(), in, opts)
		if err != nil {
			t.Errorf("seed %d #%d: %dx%d upright, orientation %d, %d outputs: %v", seed, i, uw, uh, orientation, len(opts), err)
			continue
		}
		for k, o := range opts {
			u, res := plans[k], rs[k]
			what := fmt.Sprintf("seed %d #%d: %dx%d upright, orientation %d, output %d of %d: %s", seed, i, uw, uh,
				orientation, k+1, len(opts), o.Canonical())
			img := decode(t, res.Data)
			if b := img.Bounds(); b.Dx() != u.w || b.Dy() != u.h || res.Width != u.w || res.Height != u.h {
				t.Errorf("%s: made %dx%d (reported %dx%d), promised %dx%d", what, b.Dx(), b.Dy(), res.Width, res.Height, u.w, u.h)
				continue
			}
			wrong, first := u.wrongPixels(img, func(got [4]uint8, x, y int, in bool) bool {
				if !in && o.Background == nil {
					return got[3] == 0 // transparent, as PNG keeps alpha
				}
				if !in {
					return got == bg
				}
				c := up.RGBAAt(x, y)
				return got == [4]uint8{c.R, c.G, c.B, c.A}
			})
			if wrong > 0 {
				t.Errorf("%s: %d of %d pixels wrong: first %s", what, wrong, u.w*u.h, first)
			}
			made++
			fits[fmt.Sprintf("%s canvas=%v cut=%v trim=%v", o.Fit, u.canvas, u.kw != u.rw || u.kh != u.rh, o.Trim != nil)]++
		}
	}
	t.Logf("%d outputs checked pixel by pixel: %v", made, fits)
}

func withFormat(o Options, f Format) Options {
	o.Format = f
	return o
}

// The same over animated GIFs that stay animated, each frame its own
// random pixels: every frame of the output shows, pixel for pixel, what
// the documented steps put there from that frame; with animated=false (in
// GIF or PNG), the first frame does.
func TestUnscaledAnimationIsPixelExact(t *testing.T) {
	p := newTestProcessor(t, nil)
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 9))
	n := 40
	if testing.Short() {
		n = 15
	}
	palette := color.Palette{}
	for _, c := range blockPalette {
		palette = append(palette, c)
	}
	made := 0
	for i := range n {
		uw, uh := uprightSide(r), uprightSide(r)
		if uw > 40 && uh > 40 {
			uw = 1 + r.IntN(3)
		}
		frames := make([]*image.RGBA, 2+r.IntN(3))
		anim := &gif.GIF{}
		for f := range frames {
			frames[f] = pixelPicture(r, uw, uh)
			fr := image.NewPaletted(frames[f].Bounds(), palette)
			draw.Draw(fr, fr.Bounds(), frames[f], image.Point{}, draw.Src)
			anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 10)
		}
		var o Options
		var u unscaled
		ok := false
		for range 200 {
			o = drawUnscaled(r, uw, uh)
			if u, ok = planUnscaled(uw, uh, o, nil); ok {
				break
			}
		}
		if !ok {
			continue
		}
		o.Format, o.Still = FormatGIF, r.IntN(4) == 0
		if o.Still && r.IntN(2) == 0 {
			o.Format = FormatPNG
		}
		what := fmt.Sprintf("seed %d #%d: %d frames of %dx%d, %s", seed, i, len(frames), uw, uh, o.Canonical())
		res, err := p.Process(t.Context(), encodeAnimation(t, anim), o)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if o.Still {
			// animated=false: the first frame, as a still is made.
			frames = frames[:1]
		}
		var screens []*image.RGBA
		if o.Format == FormatPNG {
			img := decode(t, res.Data)
			screen := image.NewRGBA(img.Bounds())
			draw.Draw(screen, screen.Bounds(), img, img.Bounds().Min, draw.Src)
			screens = []*image.RGBA{screen}
		} else {
			screens = gifScreens(t, res.Data)
		}
		if len(screens) != len(frames) || res.Width != u.w || res.Height != u.h ||
			screens[0].Bounds() != image.Rect(0, 0, u.w, u.h) {
			t.Errorf("%s: %d frames of %v (reported %dx%d), want %d of %dx%d", what, len(screens), screens[0].Bounds(),
				res.Width, res.Height, len(frames), u.w, u.h)
			continue
		}
		for f, screen := range screens {
			wrong, first := u.wrongPixels(screen, func(got [4]uint8, x, y int, in bool) bool {
				if !in {
					return nearestPaletteColour(got) == -1
				}
				c := frames[f].RGBAAt(x, y)
				return nearestPaletteColour(got) == paletteIndex(color.NRGBA(c))
			})
			if wrong > 0 {
				t.Errorf("%s: frame %d: %d of %d pixels wrong: first %s", what, f, wrong, u.w*u.h, first)
			}
		}
		made++
	}
	t.Logf("%d animations checked pixel by pixel", made)
}

func encodeAnimation(t *testing.T, anim *gif.GIF) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
