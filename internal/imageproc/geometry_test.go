package imageproc

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"math/big"
	"testing"
	"time"
)

// promised is the size each fit mode promises, written from the
// documentation (docs/api.md, openapi.yaml) with exact fractions, independently
// of fitGeometry: scaled sides are rounded to the nearest pixel (halves
// up), never below one.
func promised(sw, sh, W, H int, fit Fit, enlarge bool) (int, int) {
	r := func(a, b int) *big.Rat { return big.NewRat(int64(a), int64(b)) }
	round := func(n int, s *big.Rat) int {
		x := new(big.Rat).Mul(big.NewRat(int64(n), 1), s)
		x.Add(x, big.NewRat(1, 2))
		q := new(big.Int).Quo(x.Num(), x.Denom()) // floor, x > 0
		return max(1, int(q.Int64()))
	}
	one := big.NewRat(1, 1)
	minR := func(a, b *big.Rat) *big.Rat {
		if a.Cmp(b) < 0 {
			return a
		}
		return b
	}
	maxR := func(a, b *big.Rat) *big.Rat {
		if a.Cmp(b) > 0 {
			return a
		}
		return b
	}
	switch {
	case W == 0 && H == 0:
		return sw, sh
	case W == 0 || H == 0 || fit == FitInside:
		var s *big.Rat
		switch {
		case H == 0:
			s = r(W, sw)
		case W == 0:
			s = r(H, sh)
		default:
			s = minR(r(W, sw), r(H, sh))
		}
		if !enlarge {
			s = minR(s, one)
		}
		return round(sw, s), round(sh, s)
	case fit == FitContain:
		if s := minR(r(W, sw), r(H, sh)); s.Cmp(one) > 0 && !enlarge {
			return sw, sh // fits already: neither enlarged nor padded
		}
		return W, H
	case fit == FitCover:
		s := maxR(r(W, sw), r(H, sh))
		if !enlarge {
			s = minR(s, one)
		}
		return min(W, round(sw, s)), min(H, round(sh, s))
	default: // fill
		if enlarge {
			return W, H
		}
		return min(W, sw), min(H, sh)
	}
}

// geometrySources are real images of every kind, with their upright size.
func geometrySources(t *testing.T, p *Processor) map[string]struct {
	data []byte
	w, h int
} {
	photo := readTestdata(t, "ladybird.jpg")
	alpha := image.NewNRGBA(image.Rect(0, 0, 333, 77))
	for i := range alpha.Pix {
		alpha.Pix[i] = byte(i * 7)
	}
	strip := func(w, h int) []byte {
		img := image.NewGray(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = byte(i)
		}
		return encodePNG(t, img)
	}
	big := image.NewGray(image.Rect(0, 0, 6028, 3391))
	for i := range big.Pix {
		big.Pix[i] = byte(i % 251)
	}
	webp, err := p.Process(t.Context(), photo, Options{Width: 641, Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	gifSrc := image.NewPaletted(image.Rect(0, 0, 97, 61), color.Palette{color.Black, color.White})
	return map[string]struct {
		data []byte
		w, h int
	}{
		"landscape jpeg":        {photo, 2560, 1600},
		"exif-rotated portrait": {withOrientation(photo, 6), 1600, 2560},
		"cmyk jpeg":             {readTestdata(t, "cmyk.jpg"), 160, 100},
		"cmyk without profile":  {readTestdata(t, "cmyk-noprofile.jpg"), 320, 200},
		"alpha png":             {encodePNG(t, alpha), 333, 77},
		"webp":                  {webp.Data, 641, 401},
		"gif":                   {encodeGIF(t, gifSrc), 97, 61},
		"strip 10000x1":         {strip(10000, 1), 10000, 1},
		"strip 1x10000":         {strip(1, 10000), 1, 10000},
		"6028x3391":             {encodeJPEG(t, big), 6028, 3391},
	}
}

// Every fit mode gives exactly the size it promises, for boxes from 1x1 to
// extreme ratios, with and without enlarge, on images of every kind; a
// size over the limits is refused with ErrTooLarge, never cut short.
func TestGeometryIsExact(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = time.Minute })
	boxes := [][2]int{{1, 1}, {2, 999}, {999, 2}, {300, 300}, {256, 256}, {600, 600}, {333, 77}, {77, 333},
		{1, 500}, {500, 1}, {8000, 3}, {3, 8000}, {1000, 1000}, {100, 0}, {0, 100}, {1, 0}, {0, 1}, {4000, 0}, {0, 0}}
	if testing.Short() {
		boxes = [][2]int{{1, 1}, {2, 999}, {300, 300}, {333, 77}, {3, 8000}, {100, 0}}
	}
	fits := []Fit{FitInside, FitCover, FitContain, FitFill}
	checked := 0
	for name, src := range geometrySources(t, p) {
		for _, enlarge := range []bool{false, true} {
			var opts []Options
			var want [][2]int
			srcBoxes := boxes
			if src.w*src.h > 10_000_000 {
				// A large photo costs a full decode per output: the boxes it
				// got wrong by a pixel, and the extremes.
				srcBoxes = [][2]int{{256, 256}, {300, 300}, {600, 600}, {1, 1}, {999, 2}, {0, 100}}
			}
			for _, b := range srcBoxes {
				for _, fit := range fits {
					o := Options{Width: b[0], Height: b[1], Fit: fit, Enlarge: enlarge, Format: FormatJPEG,
						Gravity: Gravity(checked % 6)}
					w, h := promised(src.w, src.h, b[0], b[1], fit, enlarge)
					grows := w > src.w || h > src.h
					if int64(w)*int64(h) > p.cfg.MaxOutputPixels || grows && max(w, h) > p.cfg.MaxDimension {
						if _, err := p.Process(t.Context(), src.data, o); !errors.Is(err, ErrTooLarge) {
							t.Errorf("%s %+v: promised %dx%d is over the limits, got err %v", name, o, w, h, err)
						}
						continue
					}
					if enlarge && w*h > 2_000_000 && name != "landscape jpeg" {
						continue // large outputs cost seconds each; one source shows them
					}
					opts, want = append(opts, o), append(want, [2]int{w, h})
				}
			}
			// All of one source's outputs at once: the shared decode and the
			// single ones are both exercised (a variant that enlarges
			// decodes on its own).
			start := time.Now()
			_, rs, err := p.Variants(t.Context(), src.data, opts)
			t.Logf("%s enlarge=%v: %d outputs in %s", name, enlarge, len(opts), time.Since(start))
			if err != nil {
				t.Fatalf("%s enlarge=%v: %v", name, enlarge, err)
			}
			for i, r := range rs {
				cfg, _, err := image.DecodeConfig(bytes.NewReader(r.Data))
				if err != nil {
					t.Fatalf("%s %+v: output does not decode: %v", name, opts[i], err)
				}
				got := [2]int{cfg.Width, cfg.Height}
				if got != want[i] || r.Width != got[0] || r.Height != got[1] {
					t.Errorf("%s %+v: made %v (reported %dx%d), promised %v", name, opts[i], got, r.Width, r.Height, want[i])
				}
				checked++
			}
		}
	}
	t.Logf("%d outputs checked", checked)
}

// The cases a photograph of 6028x3391 got wrong by a pixel.
func TestCoverOfAWidePhoto(t *testing.T) {
	for _, n := range []int{256, 300, 600} {
		g, err := fitGeometry(6028, 3391, Options{Width: n, Height: n, Fit: FitCover}, 8192, 1<<40, nil)
		if err != nil || g.Width != n || g.Height != n {
			t.Errorf("cover %dx%d: %dx%d %v", n, n, g.Width, g.Height, err)
		}
	}
}
