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
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"
)

// optionsSeed is the seed of the option property tests: RESIZER_OPTIONS_SEED
// to reproduce or vary a run, else a fixed one.
func optionsSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(20261202)
	if s := os.Getenv("RESIZER_OPTIONS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	t.Logf("seed %d (RESIZER_OPTIONS_SEED)", seed)
	return seed
}

// blockPalette are the colours of a block picture: the corners of the RGB
// cube, far from each other and from borderGrey and padGrey, so that a
// pixel is told apart whatever the resampling and a lossy encoder do to it.
var blockPalette = []color.NRGBA{
	{0, 0, 0, 255}, {255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255},
	{255, 255, 0, 255}, {255, 0, 255, 255}, {0, 255, 255, 255}, {255, 255, 255, 255},
}

var (
	borderGrey = color.NRGBA{128, 128, 128, 255} // a trim's border
	padGrey    = Color{90, 90, 90}               // the background asked for
)

// blockPicture is an upright picture of bw x bh blocks of bs pixels, each
// of a random palette colour, inside a uniform border (top, right, bottom,
// left) of borderGrey: the colour of any of its points is known.
type blockPicture struct {
	bs, bw, bh int
	border     [4]int
	colour     [][]int // [by][bx], an index into blockPalette
}

func (p blockPicture) size() (int, int) {
	return p.bs*p.bw + p.border[1] + p.border[3], p.bs*p.bh + p.border[0] + p.border[2]
}

// at is the colour at the upright point x, y, and how far the point is
// from the nearest edge between two colours (blocks or border).
func (p blockPicture) at(x, y float64) (color.NRGBA, float64) {
	ix, iy := x-float64(p.border[3]), y-float64(p.border[0])
	iw, ih := float64(p.bs*p.bw), float64(p.bs*p.bh)
	if ix < 0 || iy < 0 || ix >= iw || iy >= ih {
		d := math.Max(math.Max(-ix, ix-iw), math.Max(-iy, iy-ih))
		return borderGrey, d
	}
	bs := float64(p.bs)
	fx, fy := math.Mod(ix, bs), math.Mod(iy, bs)
	d := math.Min(math.Min(fx, bs-fx), math.Min(fy, bs-fy))
	return blockPalette[p.colour[int(iy/bs)][int(ix/bs)]], d
}

// stored draws the picture as a file stored with EXIF orientation o would
// hold it: the image that, turned as o says, is the upright picture. The
// mapping from stored to upright pixels is the TIFF specification's,
// written here independently of the service's.
func (p blockPicture) stored(o int) image.Image {
	uw, uh := p.size()
	sw, sh := uw, uh
	if o >= 5 {
		sw, sh = uh, uw
	}
	img := image.NewNRGBA(image.Rect(0, 0, sw, sh))
	for y := range sh {
		for x := range sw {
			var u, v int
			switch o {
			case 2:
				u, v = sw-1-x, y
			case 3:
				u, v = sw-1-x, sh-1-y
			case 4:
				u, v = x, sh-1-y
			case 5:
				u, v = y, x
			case 6:
				u, v = sh-1-y, x
			case 7:
				u, v = sh-1-y, sw-1-x
			case 8:
				u, v = y, sw-1-x
			default:
				u, v = x, y
			}
			c, _ := p.at(float64(u)+0.5, float64(v)+0.5)
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// stepModel is what docs/api.md says the steps make of a region of
// rw x rh pixels at rx, ry of the upright source, written from the
// documentation alone: the scaled size, the cut of a cover, the canvas of a
// contain, the turn, the flip and the pad, in output pixels.
type stepModel struct {
	rx, ry, rw, rh int
	iw, ih         int // the region scaled
	kx, ky, kw, kh int // the part of it kept (cover), else all of it
	canvas         bool
	cx, cy, cw, ch int // contain: where the kept part lies on its canvas
	rotate         int
	flip           Flip
	pad            [4]int
	w, h           int // of the output
}

// modelSteps works out the model of o over region rw x rh at rx, ry of an
// upright source of sw x sh.
func modelSteps(sw, sh, rx, ry, rw, rh int, o Options) stepModel {
	m := stepModel{rx: rx, ry: ry, rw: rw, rh: rh, rotate: o.Rotate, flip: o.Flip}
	d := o.DPR
	if d == 0 {
		d = 1
	}
	mul := func(n int) int { return int(math.Round(float64(n) * d)) }
	W, H := mul(o.Width), mul(o.Height)
	for i := range m.pad {
		m.pad[i] = mul(o.Pad[i])
	}
	if o.Rotate == 90 || o.Rotate == 270 {
		W, H = H, W // width and height are the turned image's
	}
	// Scales are exact fractions num/den: a side that sets the scale comes
	// out exactly, and halves round up.
	round := func(n int, num, den int64) int { return max(1, int((2*int64(n)*num+den)/(2*den))) }
	fit := o.Fit
	if W == 0 || H == 0 {
		fit = FitInside
	}
	num, den := int64(1), int64(1)
	pick := func(larger bool) {
		a, b, c, e := int64(W), int64(rw), int64(H), int64(rh) // W/rw against H/rh
		if (a*e > c*b) == larger {
			num, den = a, b
		} else {
			num, den = c, e
		}
	}
	switch {
	case W == 0 && H == 0:
	case H == 0:
		num, den = int64(W), int64(rw)
	case W == 0:
		num, den = int64(H), int64(rh)
	case fit == FitCover:
		pick(true)
	default:
		pick(false)
	}
	grows := num > den
	if grows && !o.Enlarge {
		num, den = 1, 1
	}
	m.iw, m.ih = round(rw, num, den), round(rh, num, den)
	switch fit {
	case FitFill:
		m.iw, m.ih = W, H
		if !o.Enlarge {
			m.iw, m.ih = min(W, rw), min(H, rh)
		}
	case FitContain:
		if !grows || o.Enlarge {
			m.canvas = true
			m.cw, m.ch = W, H
			m.cx, m.cy = (W-m.iw)/2, (H-m.ih)/2
		}
	}
	m.kw, m.kh = m.iw, m.ih
	if fit == FitCover {
		m.kw, m.kh = min(W, m.iw), min(H, m.ih)
		slackX, slackY := m.iw-m.kw, m.ih-m.kh
		m.kx, m.ky = slackX/2, slackY/2
		switch o.Gravity {
		case GravityNorth, GravityNorthEast, GravityNorthWest:
			m.ky = 0
		case GravitySouth, GravitySouthEast, GravitySouthWest:
			m.ky = slackY
		}
		switch o.Gravity {
		case GravityWest, GravityNorthWest, GravitySouthWest:
			m.kx = 0
		case GravityEast, GravityNorthEast, GravitySouthEast:
			m.kx = slackX
		}
		if o.Gravity == GravityFocus {
			// The focal point, a fraction of the whole upright source, in
			// the scaled region, as near the middle of the cut as it goes.
			fx := (o.Focus.X*float64(sw) - float64(rx)) * float64(m.iw) / float64(rw)
			fy := (o.Focus.Y*float64(sh) - float64(ry)) * float64(m.ih) / float64(rh)
			m.kx = min(max(0, int(math.Round(fx-float64(m.kw)/2))), slackX)
			m.ky = min(max(0, int(math.Round(fy-float64(m.kh)/2))), slackY)
		}
	}
	a, b := m.kw, m.kh
	if m.canvas {
		a, b = m.cw, m.ch
	}
	if m.rotate == 90 || m.rotate == 270 {
		a, b = b, a
	}
	m.w, m.h = a+m.pad[1]+m.pad[3], b+m.pad[0]+m.pad[2]
	return m
}

// source maps the centre of output pixel ox, oy back to the upright
// source: the point it shows, and how many source pixels one output pixel
// spans there; pad is true for padding (a pad or a contain's canvas).
func (m stepModel) source(ox, oy int) (x, y, span float64, pad bool) {
	px, py := float64(ox)+0.5-float64(m.pad[3]), float64(oy)+0.5-float64(m.pad[0])
	a, b := m.kw, m.kh // before the turn
	if m.canvas {
		a, b = m.cw, m.ch
	}
	tw, th := a, b // after it
	if m.rotate == 90 || m.rotate == 270 {
		tw, th = b, a
	}
	if px < 0 || py < 0 || px >= float64(tw) || py >= float64(th) {
		return 0, 0, 0, true
	}
	if m.flip == FlipHorizontal || m.flip == FlipBoth {
		px = float64(tw) - px
	}
	if m.flip == FlipVertical || m.flip == FlipBoth {
		py = float64(th) - py
	}
	// Undo a clockwise turn of an a x b image.
	var u, v float64
	switch m.rotate {
	case 90:
		u, v = py, float64(b)-px
	case 180:
		u, v = float64(a)-px, float64(b)-py
	case 270:
		u, v = float64(a)-py, px
	default:
		u, v = px, py
	}
	if m.canvas {
		u, v = u-float64(m.cx), v-float64(m.cy)
		if u < 0 || v < 0 || u >= float64(m.iw) || v >= float64(m.ih) {
			return 0, 0, 0, true
		}
	}
	u, v = u+float64(m.kx), v+float64(m.ky)
	sx, sy := float64(m.rw)/float64(m.iw), float64(m.rh)/float64(m.ih)
	return float64(m.rx) + u*sx, float64(m.ry) + v*sy, math.Max(1, math.Max(sx, sy)), false
}

// nearestPaletteColour is the palette colour (or padGrey, or borderGrey)
// nearest to c, by index: -1 for padGrey, -2 for borderGrey.
func nearestPaletteColour(c [4]uint8) int {
	best, bestD := 0, math.MaxInt
	dist := func(r, g, b uint8) int {
		dr, dg, db := int(c[0])-int(r), int(c[1])-int(g), int(c[2])-int(b)
		return dr*dr + dg*dg + db*db
	}
	for i, p := range blockPalette {
		if d := dist(p.R, p.G, p.B); d < bestD {
			best, bestD = i, d
		}
	}
	if d := dist(padGrey.R, padGrey.G, padGrey.B); d < bestD {
		best, bestD = -1, d
	}
	if d := dist(borderGrey.R, borderGrey.G, borderGrey.B); d < bestD {
		best = -2
	}
	return best
}

func paletteIndex(c color.NRGBA) int {
	for i, p := range blockPalette {
		if p == c {
			return i
		}
	}
	return -2 // the border
}

// Random combinations of EXIF orientation, trim, crop, every fit and
// gravity but smart (focus included), rotate, flip, pad and dpr, over a
// picture of coloured blocks whose every point is known: each output has
// the size the documentation promises, and each of its pixels away from an
// edge between colours shows the colour of the point of the upright
// source the documented steps put there (padding the background's). A
// picture out sideways, mirrored, shifted or cut at the wrong place shows
// in its blocks.
func TestPixelsFollowTheSteps(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = time.Minute })
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 1))
	n := 120
	if testing.Short() {
		n = 40
	}
	outputs, pixels := 0, 0
	for i := range n {
		pic := blockPicture{bs: 8 + r.IntN(14), bw: 3 + r.IntN(6), bh: 3 + r.IntN(6)}
		pic.colour = make([][]int, pic.bh)
		for y := range pic.colour {
			pic.colour[y] = make([]int, pic.bw)
			for x := range pic.colour[y] {
				pic.colour[y][x] = r.IntN(len(blockPalette))
			}
		}
		// A JPEG with an orientation, or a lossless PNG with a border to
		// trim (exact for lossless pixels, within ringing for a JPEG).
		png := r.IntN(3) == 0
		orientation := 1
		if png {
			// Its top-left pixel is the border's, the colour trim cuts.
			pic.border = [4]int{1 + r.IntN(8), r.IntN(9), r.IntN(9), 1 + r.IntN(8)}
		} else {
			orientation = 1 + r.IntN(8)
		}
		sw, sh := pic.size()
		var data []byte
		if png {
			data = encodePNG(t, pic.stored(1))
		} else {
			data = withOrientation(encodeJPEG(t, pic.stored(orientation)), uint16(orientation))
		}

		o := Options{Fit: []Fit{FitInside, FitCover, FitCover, FitContain, FitFill}[r.IntN(5)], Enlarge: r.IntN(2) == 0, Rotate: 90 * r.IntN(4), Flip: Flip(r.IntN(4)),
			Background: &padGrey, Format: []Format{FormatPNG, FormatPNG, FormatWebP, FormatJPEG}[r.IntN(4)]}
		side := func() int {
			if r.IntN(4) == 0 {
				return 0
			}
			return 8 + r.IntN(160)
		}
		o.Width, o.Height = side(), side()
		if g := Gravity(r.IntN(14)); g >= GravityFocus { // focus more often than the others
			o.Gravity, o.Focus = GravityFocus, &Point{r.Float64(), r.Float64()}
		} else if g != GravitySmart {
			o.Gravity = g
		}
		rx, ry, rw, rh := 0, 0, sw, sh
		if png && r.IntN(2) == 0 {
			th := 10.0
			o.Trim = &th
			rx, ry = pic.border[3], pic.border[0]
			rw, rh = sw-pic.border[1]-pic.border[3], sh-pic.border[0]-pic.border[2]
		}
		rx, ry, rw, rh = drawCrop(r, &o, sw, sh, rx, ry, rw, rh)
		if r.IntN(3) == 0 {
			o.Pad = [4]int{r.IntN(6), r.IntN(6), r.IntN(6), r.IntN(6)}
		}
		if r.IntN(3) == 0 {
			o.DPR = []float64{1.5, 2, 3}[r.IntN(3)]
		}
		what := fmt.Sprintf("seed %d #%d: %s %dx%d orientation %d, %s", seed, i,
			map[bool]string{true: "png", false: "jpeg"}[png], sw, sh, orientation, o.Canonical())
		res, err := p.Process(t.Context(), data, o)
		if rw <= 0 || rh <= 0 {
			if !errors.Is(err, ErrBadOption) {
				t.Errorf("%s: a crop outside what the trim leaves: %v, want ErrBadOption", what, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		m := modelSteps(sw, sh, rx, ry, rw, rh, o)
		what += fmt.Sprintf(" (region %d,%d,%d,%d)", rx, ry, rw, rh)
		img := decode(t, res.Data)
		if b := img.Bounds(); b.Dx() != m.w || b.Dy() != m.h || res.Width != m.w || res.Height != m.h {
			t.Errorf("%s: made %dx%d (reported %dx%d), promised %dx%d", what, b.Dx(), b.Dy(), res.Width, res.Height, m.w, m.h)
			continue
		}
		// Pixels whose neighbourhood shows one colour: the turn, the flips
		// and the cut may each move the picture by a pixel of rounding, the
		// resample blends a span of source pixels, a JPEG's chroma blurs a
		// few more, and a lossy output's blocks bleed further still.
		k := 1
		if o.Format != FormatPNG {
			k = 6
		}
		checked, wrong, first := m.sample(r, pic, img, k, 4000)
		if wrong > 0 {
			t.Errorf("%s: %d of %d pixels checked are wrong: first %s", what, wrong, checked, first)
		}
		outputs++
		pixels += checked
	}
	t.Logf("%d outputs, %d pixels checked", outputs, pixels)
}

// sample checks up to n output pixels drawn at random whose
// neighbourhood (k pixels each way) the model is sure shows one colour of
// pic: how many were checked, how many img shows in another colour, and
// the first of those, told.
func (m stepModel) sample(r *rand.Rand, pic blockPicture, img image.Image, k, n int) (checked, wrong int, first string) {
	for range min(n, m.w*m.h) {
		ox, oy := r.IntN(m.w), r.IntN(m.h)
		want, ok := m.expected(pic, ox, oy)
		for dy := -k; ok && dy <= k; dy++ {
			for dx := -k; ok && dx <= k; dx++ {
				c, sure := m.expected(pic, ox+dx, oy+dy)
				ok = sure && c == want
			}
		}
		if !ok {
			continue
		}
		checked++
		if got := nearestPaletteColour(rgbAt(img, ox, oy)); got != want {
			wrong++
			if first == "" {
				x, y, _, _ := m.source(ox, oy)
				first = fmt.Sprintf("pixel %d,%d is colour %d %v, want %d (source %.1f,%.1f)", ox, oy, got, rgbAt(img, ox, oy), want, x, y)
			}
		}
	}
	return checked, wrong, first
}

// expected is the colour output pixel ox, oy shows by the model, as
// nearestPaletteColour names it, and whether it is sure: the pixel is
// padding, or far enough from an edge between colours in the source.
// Pixels outside the output are padding.
func (m stepModel) expected(pic blockPicture, ox, oy int) (int, bool) {
	x, y, span, pad := m.source(ox, oy)
	if pad {
		return -1, true
	}
	c, d := pic.at(x, y)
	return paletteIndex(c), d >= 1.5*span+2
}

// The same over animated GIFs that stay animated: each frame a picture of
// its own coloured blocks, placed in a border of its own (the border all
// frames have is what trim cuts, what is left of any frame stays), with
// random trim, crop, fit, gravity, rotate, flip, pad and dpr. Every frame
// of the output has the promised size, and each of its pixels shows what
// the documented steps put there from that frame.
func TestAnimationPixelsFollowTheSteps(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = time.Minute })
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 3))
	n := 30
	if testing.Short() {
		n = 12
	}
	palette := color.Palette{borderGrey}
	for _, c := range blockPalette {
		palette = append(palette, c)
	}
	checked := 0
	for i := range n {
		bs, bw, bh := 6+r.IntN(10), 3+r.IntN(4), 3+r.IntN(4)
		bx, by := 1+r.IntN(8), 1+r.IntN(8) // each frame's left and right (top and bottom) borders add up to these
		frames := make([]blockPicture, 2+r.IntN(3))
		anim := &gif.GIF{}
		for f := range frames {
			pic := blockPicture{bs: bs, bw: bw, bh: bh}
			l, tp := 1+r.IntN(bx), 1+r.IntN(by) // the top-left pixel is the border's
			pic.border = [4]int{tp, bx - l, by - tp, l}
			pic.colour = make([][]int, bh)
			for y := range pic.colour {
				pic.colour[y] = make([]int, bw)
				for x := range pic.colour[y] {
					pic.colour[y][x] = r.IntN(len(blockPalette))
				}
			}
			frames[f] = pic
			img := pic.stored(1)
			fr := image.NewPaletted(img.Bounds(), palette)
			draw.Draw(fr, fr.Bounds(), img, image.Point{}, draw.Src)
			anim.Image = append(anim.Image, fr)
			anim.Delay = append(anim.Delay, 10)
		}
		var buf bytes.Buffer
		if err := gif.EncodeAll(&buf, anim); err != nil {
			t.Fatal(err)
		}
		sw, sh := frames[0].size()

		o := Options{Fit: []Fit{FitInside, FitCover, FitCover, FitContain, FitFill}[r.IntN(5)], Enlarge: r.IntN(2) == 0,
			Rotate: 90 * r.IntN(4), Flip: Flip(r.IntN(4)), Background: &padGrey, Format: FormatGIF}
		side := func() int {
			if r.IntN(4) == 0 {
				return 0
			}
			return 8 + r.IntN(100)
		}
		o.Width, o.Height = side(), side()
		if g := Gravity(r.IntN(14)); g >= GravityFocus {
			o.Gravity, o.Focus = GravityFocus, &Point{r.Float64(), r.Float64()}
		} else if g != GravitySmart {
			o.Gravity = g
		}
		rx, ry, rw, rh := 0, 0, sw, sh
		if r.IntN(2) == 0 {
			th := 10.0
			o.Trim = &th
			x0, y0, x1, y1 := sw, sh, 0, 0
			for _, pic := range frames {
				x0, y0 = min(x0, pic.border[3]), min(y0, pic.border[0])
				x1, y1 = max(x1, pic.border[3]+bs*bw), max(y1, pic.border[0]+bs*bh)
			}
			rx, ry, rw, rh = x0, y0, x1-x0, y1-y0
		}
		rx, ry, rw, rh = drawCrop(r, &o, sw, sh, rx, ry, rw, rh)
		if r.IntN(3) == 0 {
			o.Pad = [4]int{r.IntN(5), r.IntN(5), r.IntN(5), r.IntN(5)}
		}
		if r.IntN(3) == 0 {
			o.DPR = []float64{1.5, 2}[r.IntN(2)]
		}
		what := fmt.Sprintf("seed %d #%d: %d frames of %dx%d, %s", seed, i, len(frames), sw, sh, o.Canonical())
		res, err := p.Process(t.Context(), buf.Bytes(), o)
		if rw <= 0 || rh <= 0 {
			if !errors.Is(err, ErrBadOption) {
				t.Errorf("%s: a crop outside what the trim leaves: %v, want ErrBadOption", what, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		m := modelSteps(sw, sh, rx, ry, rw, rh, o)
		what += fmt.Sprintf(" (region %d,%d,%d,%d)", rx, ry, rw, rh)
		screens := gifScreens(t, res.Data)
		if len(screens) != len(frames) || res.Width != m.w || res.Height != m.h || screens[0].Bounds().Dx() != m.w || screens[0].Bounds().Dy() != m.h {
			t.Errorf("%s: %d frames of %v (reported %dx%d), want %d of %dx%d", what, len(screens), screens[0].Bounds(),
				res.Width, res.Height, len(frames), m.w, m.h)
			continue
		}
		for f, screen := range screens {
			sum, wrong, first := m.sample(r, frames[f], screen, 2, 1500)
			if wrong > 0 {
				t.Errorf("%s: frame %d: %d of %d pixels checked are wrong: first %s", what, f, wrong, sum, first)
			}
			checked += sum
		}
	}
	t.Logf("%d pixels checked", checked)
}

// drawCrop draws, one time in two, a crop of the upright sw x sh source
// (its border included) into o, and returns the part of the region
// rx,ry,rw,rh (what a trim left, or the whole) that the crop keeps: empty
// when they do not meet.
func drawCrop(r *rand.Rand, o *Options, sw, sh, rx, ry, rw, rh int) (int, int, int, int) {
	if r.IntN(2) != 0 {
		return rx, ry, rw, rh
	}
	cw, ch := 1+r.IntN(sw), 1+r.IntN(sh)
	c := Region{r.IntN(sw - cw + 1), r.IntN(sh - ch + 1), cw, ch}
	o.Crop = &c
	x0, y0 := max(rx, c.X), max(ry, c.Y)
	x1, y1 := min(rx+rw, c.X+c.W), min(ry+rh, c.Y+c.H)
	return x0, y0, x1 - x0, y1 - y0
}
