package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// randomOptions draws a combination of the operations that change an
// output's size, for a source of sw x sh: a crop inside the source (or,
// now and then, one that reaches past it), a box of any shape, every fit,
// gravity, rotation, flip, pad and dpr, and a format.
func randomOptions(r *rand.Rand, sw, sh int, formats []Format) Options {
	side := func() int {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return 1 + r.IntN(8)
		}
		return 1 + r.IntN(400)
	}
	o := Options{Width: side(), Height: side(), Fit: Fit(r.IntN(4)), Enlarge: r.IntN(2) == 0,
		Rotate: 90 * r.IntN(4), Flip: Flip(r.IntN(4)), Format: formats[r.IntN(len(formats))]}
	if g := Gravity(r.IntN(11)); g == GravityFocus {
		o.Gravity, o.Focus = g, &Point{r.Float64(), r.Float64()}
	} else if g != GravitySmart || r.IntN(4) == 0 { // smart costs an attention search
		o.Gravity = g
	}
	if r.IntN(3) == 0 {
		w, h := 1+r.IntN(sw), 1+r.IntN(sh)
		o.Crop = &Region{r.IntN(sw - w + 1), r.IntN(sh - h + 1), w, h}
		if r.IntN(6) == 0 {
			o.Crop.X += sw - w + 1 // one pixel or more past the right edge
		}
	}
	if r.IntN(3) == 0 {
		o.Pad = [4]int{r.IntN(12), r.IntN(12), r.IntN(12), r.IntN(12)}
	}
	if r.IntN(2) == 0 {
		o.DPR = []float64{1.5, 2, 2.5, 3, 4, 1.37, 3.3}[r.IntN(7)]
	}
	if r.IntN(8) == 0 {
		o.Blur = 0.5
	}
	if r.IntN(8) == 0 {
		o.Sharpen = 1
	}
	return o
}

// promisedSteps is the size docs/api.md promises for o over an upright
// source of sw x sh, written from the documentation alone: the crop is the
// source; dpr multiplies width, height and pad; width and height describe
// the turned image; each fit gives what promised says; pad adds T+B and
// L+R. ok is false when the crop reaches outside the image (a 400).
func promisedSteps(sw, sh int, o Options) (w, h int, ok bool) {
	if c := o.Crop; c != nil {
		if c.X+c.W > sw || c.Y+c.H > sh {
			return 0, 0, false
		}
		sw, sh = c.W, c.H
	}
	d := o.DPR
	if d == 0 {
		d = 1
	}
	m := func(n int) int { return int(math.Round(float64(n) * d)) }
	W, H := m(o.Width), m(o.Height)
	turned := o.Rotate == 90 || o.Rotate == 270
	if turned {
		W, H = H, W
	}
	w, h = promised(sw, sh, W, H, o.Fit, o.Enlarge)
	if turned {
		w, h = h, w
	}
	return w + m(o.Pad[1]) + m(o.Pad[3]), h + m(o.Pad[0]) + m(o.Pad[2]), true
}

// outputSize reads an output's size from its bytes, with Go's decoders
// where they exist (the worker's report is what is being checked).
func outputSize(t *testing.T, f Format, b []byte) (int, int) {
	t.Helper()
	if f == FormatAVIF {
		st, _, err := readHeader(f, b)
		if err != nil {
			t.Fatalf("avif output: %v", err)
		}
		return st.w, st.h
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s output does not decode: %v", f, err)
	}
	return cfg.Width, cfg.Height
}

// Random combinations of crop, fit, gravity, rotate, flip, pad and dpr over
// real images of every kind: each output has exactly the promised size and
// the format asked for, and a crop outside the image is ErrBadOption.
func TestStepsProperty(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = time.Minute })
	srcs := geometrySources(t, p)
	delete(srcs, "6028x3391") // a full decode per output: seconds each
	names := []string{"landscape jpeg", "exif-rotated portrait", "cmyk jpeg", "cmyk without profile", "alpha png", "webp",
		"gif", "strip 10000x1", "strip 1x10000"}
	r := rand.New(rand.NewPCG(7, 11))
	formats := []Format{FormatJPEG, FormatPNG, FormatWebP, FormatGIF, FormatJPEG, FormatPNG, FormatWebP}
	n := 80
	if testing.Short() {
		n = 40
	}
	checked, refused := 0, 0
	for i := range n {
		name := names[i%len(names)]
		src := srcs[name]
		o := randomOptions(r, src.w, src.h, formats)
		if i%40 == 0 {
			o.Format = FormatAVIF // slow to encode: a few
		}
		w, h, ok := promisedSteps(src.w, src.h, o)
		res, err := p.Process(t.Context(), src.data, o)
		what := fmt.Sprintf("%s %s (%+v)", name, o.Canonical(), o)
		if !ok {
			if !errors.Is(err, ErrBadOption) {
				t.Errorf("%s: crop outside the %dx%d image: %v, want ErrBadOption", what, src.w, src.h, err)
			}
			refused++
			continue
		}
		if int64(w)*int64(h) > p.cfg.MaxOutputPixels || max(w, h) > p.cfg.MaxDimension && enlargesPast(src.w, src.h, o, w, h) {
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s: promised %dx%d is over the limits: %v", what, w, h, err)
			}
			refused++
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		gw, gh := outputSize(t, o.Format, res.Data)
		if gw != w || gh != h || res.Width != gw || res.Height != gh {
			t.Errorf("%s: made %dx%d (reported %dx%d), promised %dx%d", what, gw, gh, res.Width, res.Height, w, h)
		}
		if f := Sniff(res.Data); f != o.Format || res.Format != o.Format {
			t.Errorf("%s: made %s (reported %s), asked for %s", what, f, res.Format, o.Format)
		}
		checked++
	}
	t.Logf("%d outputs checked, %d refused", checked, refused)
}

// An animated GIF stays animated through every combination of the steps
// when the output can animate: the same frame count and delays, the
// logical screen and every frame of the promised size.
func TestAnimationStepsProperty(t *testing.T) {
	p := newTestProcessor(t, nil)
	delays := []int{10, 20, 30, 40, 50}
	const sw, sh, frames = 90, 60, 5
	gifIn := animatedGIF(t, frames, sw, sh, rgbPalette, delays)
	webpIn, err := p.Process(t.Context(), gifIn, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 5))
	n := 40
	if testing.Short() {
		n = 12
	}
	checked := 0
	for i := range n {
		in := gifIn
		if i%2 == 1 {
			in = webpIn.Data // an animated WebP in
		}
		o := randomOptions(r, sw, sh, []Format{FormatGIF, FormatWebP})
		if o.Gravity == GravitySmart {
			o.Gravity = GravityCenter
		}
		w, h, ok := promisedSteps(sw, sh, o)
		res, err := p.Process(t.Context(), in, o)
		what := fmt.Sprintf("%s from %s", o.Canonical(), Sniff(in))
		if !ok {
			if !errors.Is(err, ErrBadOption) {
				t.Errorf("%s: %v, want ErrBadOption", what, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if res.Width != w || res.Height != h {
			t.Errorf("%s: reported %dx%d, promised %dx%d", what, res.Width, res.Height, w, h)
		}
		switch o.Format {
		case FormatGIF:
			g, err := gif.DecodeAll(bytes.NewReader(res.Data))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if len(g.Image) != frames || g.Config.Width != w || g.Config.Height != h {
				t.Errorf("%s: %d frames of a %dx%d screen, want %d of %dx%d", what, len(g.Image), g.Config.Width, g.Config.Height, frames, w, h)
			}
			for i, fr := range g.Image {
				if !fr.Bounds().In(image.Rect(0, 0, w, h)) {
					t.Errorf("%s: frame %d is %v, outside %dx%d", what, i, fr.Bounds(), w, h)
				}
			}
			if fmt.Sprint(g.Delay) != fmt.Sprint(delays) {
				t.Errorf("%s: delays %v, want %v", what, g.Delay, delays)
			}
		case FormatWebP:
			if gw, gh := outputSize(t, FormatWebP, res.Data); gw != w || gh != h {
				t.Errorf("%s: made %dx%d, promised %dx%d", what, gw, gh, w, h)
			}
			d := webpFrameDurations(t, res.Data)
			total := 0
			for _, ms := range d {
				total += ms
			}
			if len(d) < 2 || total != 1500 {
				t.Errorf("%s: %d frames lasting %d ms, want an animation of 1500 ms", what, len(d), total)
			}
		}
		checked++
	}
	t.Logf("%d animations checked", checked)
}

// The outputs of one decode (a source's VARIANTS) are the images POST
// /resize makes of the same options one by one: the same size and format,
// and the same picture (mean colour within resampling noise), for random
// sets of options over real images.
func TestVariantsProperty(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = time.Minute })
	srcs := geometrySources(t, p)
	r := rand.New(rand.NewPCG(13, 17))
	names := []string{"landscape jpeg", "exif-rotated portrait", "cmyk jpeg", "alpha png", "webp", "gif", "strip 10000x1"}
	rounds := 14
	checked := 0
	for i := range rounds {
		name := names[i%len(names)]
		src := srcs[name]
		var opts []Options
		for len(opts) < 4 {
			o := randomOptions(r, src.w, src.h, []Format{FormatJPEG, FormatPNG, FormatWebP})
			o.Blur, o.Sharpen = 0, 0
			if o.Gravity == GravitySmart {
				o.Gravity = GravityCenter // libvips' search may settle elsewhere on other pixels
			}
			w, h, ok := promisedSteps(src.w, src.h, o)
			if ok && w*h <= 1_000_000 && (w <= src.w && h <= src.h || max(w, h) <= p.cfg.MaxDimension) {
				opts = append(opts, o)
			}
		}
		_, got, err := p.Variants(t.Context(), src.data, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for k, o := range opts {
			want, err := p.Process(t.Context(), src.data, o)
			if err != nil {
				t.Fatalf("%s %s: %v", name, o.Canonical(), err)
			}
			g := got[k]
			if g.Format != want.Format || g.Width != want.Width || g.Height != want.Height {
				t.Errorf("%s %s: variant %v %dx%d, alone %v %dx%d", name, o.Canonical(), g.Format, g.Width, g.Height,
					want.Format, want.Width, want.Height)
				continue
			}
			gm, wm := meanRGB(decode(t, g.Data)), meanRGB(decode(t, want.Data))
			for c := range gm {
				if d := gm[c] - wm[c]; g.Width*g.Height >= 256 && (d > 4 || d < -4) { // a few pixels' mean is noise
					t.Errorf("%s %s: variant's mean colour %v, alone %v", name, o.Canonical(), gm, wm)
					break
				}
			}
			checked++
		}
	}
	t.Logf("%d variants checked", checked)
}

// Every option at random, trim, blur, sharpen, background, keep,
// progressive and max_bytes included, over real images of every kind and
// the hostile files that are images: each answer is an image of the size
// promised (trim aside, which depends on the pixels) and the format asked
// for, or an error of the caller's kind (a 4xx), never an internal one.
func TestEveryOptionProperty(t *testing.T) {
	marks := map[string][]byte{"red.png": encodePNG(t, solid(40, 20, opaqueRed)),
		"half.png": encodePNG(t, solid(300, 9, color.NRGBA{0, 0, 255, 128})), "tall.gif": encodeGIF(t, solid(3, 700, midGrey))}
	p, _ := markProcessor(t, marks, func(c *Config) { c.Timeout = time.Minute })
	srcs := geometrySources(t, p)
	delete(srcs, "6028x3391")
	for _, name := range []string{"200-16-bit.png", "200-grey-alpha.png", "200-cmyk-without-profile.jpg", "200-exif-over-1mib.webp", "200-huge-exif.jpg"} {
		b := readTestdata(t, "hostile/"+name)
		res, err := p.Process(t.Context(), b, Options{Format: FormatPNG})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		srcs[name] = struct {
			data []byte
			w, h int
		}{b, res.Width, res.Height}
	}
	srcs["animated gif"] = struct {
		data []byte
		w, h int
	}{animatedGIF(t, 4, 50, 30, rgbPalette, []int{10, 20}), 50, 30}
	var names []string
	for n := range srcs {
		names = append(names, n)
	}
	slices.Sort(names)
	r := rand.New(rand.NewPCG(23, 29))
	n := 80
	formats := []Format{FormatJPEG, FormatPNG, FormatWebP, FormatGIF, FormatAVIF, FormatUnknown}
	ok, refused := 0, map[string]int{}
	for i := range n {
		name := names[r.IntN(len(names))]
		src := srcs[name]
		o := randomOptions(r, src.w, src.h, formats)
		if o.Format == FormatAVIF && r.IntN(3) > 0 {
			o.Format = FormatWebP // AVIF is slow to encode
		}
		if r.IntN(4) == 0 {
			th := float64(r.IntN(60))
			o.Trim = &th
		}
		if r.IntN(3) == 0 {
			o.Background = &Color{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256))}
		}
		if r.IntN(4) == 0 {
			o.MaxBytes = 1 + r.IntN(20000)
		}
		if r.IntN(3) == 0 {
			o.Quality = 1 + r.IntN(100)
		}
		o.Keep, o.Progressive, o.Still = Keep(r.IntN(3)), r.IntN(3) == 0, r.IntN(3) == 0
		if r.IntN(3) == 0 {
			o.Watermark = &Watermark{Key: []string{"red.png", "half.png", "tall.gif"}[r.IntN(3)],
				Position: Gravity(r.IntN(11)), Opacity: r.Float64(), Scale: []float64{0, 0.01, 0.5, 1}[r.IntN(4)], Margin: r.IntN(40)}
			if o.Watermark.Position == GravitySmart || o.Watermark.Position == GravityFocus {
				o.Watermark.Position = GravityNorthWest
			}
		}
		what := fmt.Sprintf("%d %s %s", i, name, o.Canonical())
		res, err := p.Process(t.Context(), src.data, o)
		if err != nil {
			kind := ""
			for _, e := range []error{ErrBadOption, ErrTooLarge, ErrUnsatisfiable} {
				if errors.Is(err, e) {
					kind = e.Error()
				}
			}
			if kind == "" {
				t.Errorf("%s: %v, not an error of the caller's", what, err)
			}
			refused[kind]++
			continue
		}
		if o.Format != FormatUnknown && (res.Format != o.Format || Sniff(res.Data) != o.Format) {
			t.Errorf("%s: made %s (reported %s)", what, Sniff(res.Data), res.Format)
		}
		if o.MaxBytes > 0 && len(res.Data) > o.MaxBytes {
			t.Errorf("%s: %d bytes over max_bytes", what, len(res.Data))
		}
		if w, h, _ := promisedSteps(src.w, src.h, o); o.Trim == nil && (res.Width != w || res.Height != h) {
			t.Errorf("%s: made %dx%d, promised %dx%d", what, res.Width, res.Height, w, h)
		}
		ok++
	}
	t.Logf("%d made, refused: %v", ok, refused)
}
