package imageproc

import (
	"context"
	"image"
	"image/color"
	"testing"
)

var threeVariants = []Options{
	{Width: 200, Height: 200, Fit: FitCover},
	{Width: 800},
	{Width: 1600, Format: FormatWebP},
}

// Variants from one decode match what Process makes of each alone.
func TestVariantsMatchSingleResizes(t *testing.T) {
	p := newTestProcessor(t, nil)
	photo := readTestdata(t, "ladybird.jpg")
	opts := append(threeVariants, Options{Width: 300, Height: 300, Fit: FitContain, Background: &Color{255, 0, 0}},
		Options{Width: 150, Height: 40, Fit: FitFill, Format: FormatPNG})
	_, got, err := p.Variants(t.Context(), photo, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range opts {
		want, err := p.Process(t.Context(), photo, o)
		if err != nil {
			t.Fatal(err)
		}
		g := got[i]
		if g.Format != want.Format || g.Width != want.Width || g.Height != want.Height {
			t.Errorf("%+v: variant %v %dx%d, alone %v %dx%d", o, g.Format, g.Width, g.Height, want.Format, want.Width, want.Height)
			continue
		}
		gm, wm := meanRGB(decode(t, g.Data)), meanRGB(decode(t, want.Data))
		for c := range gm {
			if d := gm[c] - wm[c]; d > 2 || d < -2 {
				t.Errorf("%+v: mean colour %v, alone %v", o, gm, wm)
				break
			}
		}
	}
	// contain padded with red, through the intermediate as alone
	if c := rgbAt(decode(t, got[3].Data), 150, 5); !near(c, [4]uint8{255, 0, 0, 255}, 12) {
		t.Errorf("contain padding %v, want red", c)
	}
}

func TestVariantsOrientationAndAlpha(t *testing.T) {
	p := newTestProcessor(t, nil)
	up := quadrants(1600, 800)
	rotated := withOrientation(encodeJPEG(t, storeAs(up, 6)), 6)
	_, res, err := p.Variants(t.Context(), rotated, []Options{{Width: 400}, {Width: 100, Height: 100, Fit: FitCover, Gravity: GravityWest}})
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, res[0].Data)
	if res[0].Width != 400 || res[0].Height != 200 || !near(rgbAt(img, 50, 50), [4]uint8{255, 0, 0, 255}, 40) ||
		!near(rgbAt(img, 350, 50), [4]uint8{0, 255, 0, 255}, 40) {
		t.Errorf("rotated source: %dx%d, top-left %v top-right %v", res[0].Width, res[0].Height, rgbAt(img, 50, 50), rgbAt(img, 350, 50))
	}
	if c := rgbAt(decode(t, res[1].Data), 50, 20); !near(c, [4]uint8{255, 0, 0, 255}, 40) {
		t.Errorf("west cover of rotated source: %v, want red", c)
	}

	trans := image.NewNRGBA(image.Rect(0, 0, 2000, 1000))
	for y := 0; y < 1000; y++ {
		for x := 0; x < 1000; x++ {
			trans.Set(x, y, color.NRGBA{0, 0, 255, 255})
		}
	}
	_, res, err = p.Variants(t.Context(), encodePNG(t, trans), []Options{{Width: 200}, {Width: 100, Format: FormatWebP}, {Width: 100, Format: FormatJPEG}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Format != FormatPNG || rgbAt(decode(t, res[0].Data), 150, 50)[3] != 0 {
		t.Errorf("png variant lost alpha")
	}
	if rgbAt(decode(t, res[1].Data), 75, 25)[3] != 0 {
		t.Errorf("webp variant lost alpha")
	}
	if c := rgbAt(decode(t, res[2].Data), 75, 25); !near(c, [4]uint8{255, 255, 255, 255}, 8) {
		t.Errorf("jpeg variant of alpha: %v, want white", c)
	}
}

// BenchmarkVariants compares three variants made by Variants (one decode of
// the source) with three Process calls (one decode each), and with single
// resizes: to the largest variant, and to width 800. "mixed" is the set of
// the VARIANTS example (the largest in WebP); "defaults" is the default
// set, all JPEG.
func BenchmarkVariants(b *testing.B) {
	p := newTestProcessor(b, nil)
	in := benchImage(b)
	sets := map[string][]Options{
		"mixed":    threeVariants,
		"defaults": {{Width: 200, Height: 200, Fit: FitCover}, {Width: 800}, {Width: 1600}},
	}
	for name, set := range sets {
		b.Run(name+"/single-800", func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Process(context.Background(), in, Options{Width: 800}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/single-largest", func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Process(context.Background(), in, set[2]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/naive-three", func(b *testing.B) {
			for b.Loop() {
				for _, o := range set {
					if _, err := p.Process(context.Background(), in, o); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
		b.Run(name+"/variants-three", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := p.Variants(context.Background(), in, set); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
