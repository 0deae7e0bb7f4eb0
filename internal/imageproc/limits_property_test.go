package imageproc

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// enlargesPast reports whether docs/api.md counts output o of an upright
// sw x sh source, promised w x h, as an enlargement (which MAX_DIMENSION
// bounds): its region (the crop, else the whole) scaled up, which only
// enlarge allows, or a side of the output, padding and a contain's canvas
// included, longer than that side of the source turned as the output is.
// Turning enlarges nothing: a 9000x3000 photo turned is 3000x9000.
func enlargesPast(sw, sh int, o Options, w, h int) bool {
	rw, rh := sw, sh
	if c := o.Crop; c != nil {
		rw, rh = c.W, c.H
	}
	d := o.DPR
	if d == 0 {
		d = 1
	}
	W, H := int64(math.Round(float64(o.Width)*d)), int64(math.Round(float64(o.Height)*d))
	tw, th := sw, sh
	if o.Rotate == 90 || o.Rotate == 270 {
		W, H = H, W // the box is the turned image's
		tw, th = sh, sw
	}
	if w > tw || h > th {
		return true
	}
	if !o.Enlarge || W == 0 && H == 0 {
		return false
	}
	one := big.NewRat(1, 1)
	sx, sy := big.NewRat(W, int64(rw)), big.NewRat(H, int64(rh))
	switch {
	case H == 0:
		return sx.Cmp(one) > 0
	case W == 0:
		return sy.Cmp(one) > 0
	case o.Fit == FitCover:
		return sx.Cmp(one) > 0 || sy.Cmp(one) > 0 // the larger scale
	case o.Fit == FitFill:
		return W > int64(rw) || H > int64(rh)
	}
	return sx.Cmp(one) > 0 && sy.Cmp(one) > 0 // inside, contain: the smaller scale
}

// Random sizes, boxes, fits, rotations, pads (up to MAX_DIMENSION a side,
// as the parser allows), dprs and crops over sources with sides on both
// sides of MAX_DIMENSION, under small limits: an output over
// MAX_OUTPUT_PIXELS (padding included), or an enlargement past
// MAX_DIMENSION, is ErrTooLarge (a 413), and every other output is made at
// exactly its promised size. A source longer than MAX_DIMENSION turned a
// quarter, unscaled, is no enlargement: it was refused.
func TestOutputLimitsProperty(t *testing.T) {
	const maxDim, maxOut = 64, 6000
	p := newTestProcessor(t, func(c *Config) { c.MaxDimension, c.MaxOutputPixels = maxDim, maxOut })
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 13))
	n := 220
	if testing.Short() {
		n = 80
	}
	// The cases a quarter turn got wrong, then random ones.
	fixed := []struct {
		sw, sh int
		o      Options
	}{
		{100, 30, Options{Rotate: 90}},
		{1, 150, Options{Rotate: 270, Flip: FlipVertical}},
		{150, 20, Options{Rotate: 90, Width: 20, Height: 64, Fit: FitInside}},
	}
	made, refused := 0, 0
	for i := range n {
		var sw, sh int
		var o Options
		if i < len(fixed) {
			sw, sh, o = fixed[i].sw, fixed[i].sh, fixed[i].o
		} else {
			sw, sh = 1+r.IntN(150), 1+r.IntN(150)
			side := func() int {
				if r.IntN(3) == 0 {
					return 0
				}
				return 1 + r.IntN(maxDim)
			}
			o = Options{Width: side(), Height: side(), Fit: Fit(r.IntN(4)), Enlarge: r.IntN(2) == 0,
				Rotate: 90 * r.IntN(4), Flip: Flip(r.IntN(4))}
			if g := Gravity(r.IntN(11)); g == GravityFocus {
				o.Gravity, o.Focus = g, &Point{r.Float64(), r.Float64()}
			} else if g != GravitySmart {
				o.Gravity = g
			}
			if k := r.IntN(3); k > 0 {
				most := []int{0, 8, maxDim}[k]
				o.Pad = [4]int{r.IntN(most + 1), r.IntN(most + 1), r.IntN(most + 1), r.IntN(most + 1)}
			}
			if r.IntN(3) == 0 {
				o.DPR = []float64{1.5, 2, 3, 4}[r.IntN(4)]
			}
			if r.IntN(4) == 0 {
				w, h := 1+r.IntN(sw), 1+r.IntN(sh)
				o.Crop = &Region{r.IntN(sw - w + 1), r.IntN(sh - h + 1), w, h}
			}
		}
		o.Format = FormatPNG
		w, h, _ := promisedSteps(sw, sh, o)
		tooLarge := int64(w)*int64(h) > maxOut || max(w, h) > maxDim && enlargesPast(sw, sh, o, w, h)
		what := fmt.Sprintf("seed %d #%d: %dx%d, %s: promised %dx%d", seed, i, sw, sh, o.Canonical(), w, h)
		res, err := p.Process(t.Context(), encodePNG(t, solid(sw, sh, midGrey)), o)
		switch {
		case tooLarge:
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s, over the limits: %v, want ErrTooLarge", what, err)
			}
			refused++
		case err != nil:
			t.Errorf("%s: %v", what, err)
		case res.Width != w || res.Height != h:
			t.Errorf("%s: made %dx%d", what, res.Width, res.Height)
		default:
			made++
		}
	}
	t.Logf("%d made, %d refused", made, refused)
}

// Strips around each format's longest side (a WebP's 16,383, libjpeg's
// 65,500, a GIF's 65,535, AV1's 65,536), turned or cropped there or not:
// an output the format asked for cannot hold is ErrTooLarge (a 413),
// never the encoder's failure (a 500: "webpsave: image too large") nor a
// broken file (an AVIF without its image), and one it holds is made, a
// file of its size;
// format=auto takes the next format the client accepts (else the source's)
// for an output that the first cannot hold.
func TestFormatSideLimits(t *testing.T) {
	p := newTestProcessor(t, nil)
	r := rand.New(rand.NewPCG(optionsSeed(t), 19))
	limits := map[Format]int{FormatWebP: 16383, FormatJPEG: 65500, FormatGIF: 65535, FormatAVIF: 65536}
	checked := 0
	for _, f := range []Format{FormatWebP, FormatJPEG, FormatGIF, FormatAVIF} {
		for _, d := range []int{-1, 0, 1, 2} {
			side := limits[f] + d
			// The long side comes from the source, turned or not, or from
			// a crop of a longer one.
			sw, o := side, Options{Format: f}
			switch r.IntN(3) {
			case 1:
				o.Rotate = 90 // a source side-on, turned
			case 2:
				sw += 1 + r.IntN(40)
				o.Crop = &Region{sw - side, 0, side, 1}
			}
			src := image.NewGray(image.Rect(0, 0, sw, 1))
			if o.Rotate == 90 {
				src = image.NewGray(image.Rect(0, 0, 1, sw))
			}
			in := encodePNG(t, src)
			what := fmt.Sprintf("%dx%d, %s", src.Rect.Dx(), src.Rect.Dy(), o.Canonical())
			res, err := p.Process(t.Context(), in, o)
			switch {
			case side > limits[f]:
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("%s: %d pixels long: %v, want ErrTooLarge", what, side, err)
				}
			case err != nil:
				t.Errorf("%s: %v", what, err)
			case max(res.Width, res.Height) != side || res.Format != f:
				t.Errorf("%s: made %s %dx%d, want %d long", what, res.Format, res.Width, res.Height, side)
			default:
				if w, h := outputSize(t, f, res.Data); w != res.Width || h != res.Height {
					t.Errorf("%s: the file is %dx%d, reported %dx%d", what, w, h, res.Width, res.Height)
				}
			}
			checked++
		}
	}
	// format=auto: the first format accepted that holds the output.
	wide := encodePNG(t, image.NewGray(image.Rect(0, 0, 20000, 1)))
	for _, tt := range []struct {
		prefer []Format
		want   Format
	}{
		{[]Format{FormatWebP}, FormatPNG}, // the source's own
		{[]Format{FormatWebP, FormatJPEG}, FormatJPEG},
		{[]Format{FormatAVIF, FormatWebP}, FormatAVIF},
	} {
		res, err := p.Process(t.Context(), wide, Options{Prefer: tt.prefer})
		if err != nil || res.Format != tt.want || res.Width != 20000 {
			t.Errorf("20000x1, prefer %v: %v %v, want %s", tt.prefer, res, err, tt.want)
		}
	}
	// An animation too wide for a WebP stays one, in its own GIF.
	anim := animatedGIF(t, 2, 17000, 1, rgbPalette, []int{10})
	if res, err := p.Process(t.Context(), anim, Options{Prefer: []Format{FormatAVIF, FormatWebP}}); err != nil ||
		res.Format != FormatGIF || res.Width != 17000 {
		t.Errorf("a 17000x1 animation, prefer avif, webp: %v %v, want GIF", res, err)
	}
	t.Logf("%d strips checked", checked)
}
