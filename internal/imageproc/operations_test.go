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
	"strings"
	"testing"
)

// process makes one output, in PNG (lossless: pixels can be compared), and
// decodes it.
func process(t *testing.T, p *Processor, in []byte, o Options) image.Image {
	t.Helper()
	if o.Format == FormatUnknown {
		o.Format = FormatPNG
	}
	r, err := p.Process(t.Context(), in, o)
	if err != nil {
		t.Fatalf("%+v: %v", o, err)
	}
	img := decode(t, r.Data)
	if b := img.Bounds(); b.Dx() != r.Width || b.Dy() != r.Height {
		t.Fatalf("%+v: reported %dx%d, made %dx%d", o, r.Width, r.Height, b.Dx(), b.Dy())
	}
	return img
}

var (
	red   = [4]uint8{255, 0, 0, 255}
	green = [4]uint8{0, 255, 0, 255}
	blue  = [4]uint8{0, 0, 255, 255}
	whit  = [4]uint8{255, 255, 255, 255}
)

// A crop keeps exactly its region of the upright source: each quadrant
// cropped alone has that quadrant's colour, and a crop outside the image
// is refused as a bad option.
func TestCrop(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodePNG(t, quadrants(200, 100))
	for _, tt := range []struct {
		crop Region
		want [4]uint8
	}{{Region{0, 0, 100, 50}, red}, {Region{100, 0, 100, 50}, green}, {Region{0, 50, 100, 50}, blue}, {Region{110, 60, 30, 20}, whit}} {
		img := process(t, p, in, Options{Crop: &tt.crop})
		if b := img.Bounds(); b.Dx() != tt.crop.W || b.Dy() != tt.crop.H {
			t.Errorf("crop %+v: %v", tt.crop, b)
		}
		if m := meanRGB(img); !near([4]uint8{uint8(m[0]), uint8(m[1]), uint8(m[2]), 255}, tt.want, 2) {
			t.Errorf("crop %+v: mean %v, want %v", tt.crop, m, tt.want)
		}
	}
	// Cropped, then resized: the region scaled to the width asked.
	img := process(t, p, in, Options{Crop: &Region{0, 0, 100, 50}, Width: 40})
	if b := img.Bounds(); b.Dx() != 40 || b.Dy() != 20 {
		t.Errorf("crop then width 40: %v", b)
	}
	// EXIF-rotated: the region is of the upright image.
	turned := withOrientation(encodeJPEG(t, storeAs(quadrants(200, 100), 6)), 6)
	img = process(t, p, turned, Options{Crop: &Region{100, 0, 100, 50}})
	if c := rgbAt(img, 50, 25); !near(c, green, 40) {
		t.Errorf("crop of an EXIF-rotated source: %v, want green", c)
	}
	if _, err := p.Process(t.Context(), in, Options{Crop: &Region{150, 0, 100, 50}}); err == nil {
		t.Error("a crop past the right edge was accepted")
	}
}

// A quarter turn swaps the sides and moves the red corner clockwise; the
// flips mirror it; width and height describe the turned image.
func TestRotateAndFlip(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodePNG(t, quadrants(200, 100)) // red top-left
	corner := func(img image.Image) string {
		b := img.Bounds()
		for _, c := range []struct {
			name string
			x, y int
		}{{"top-left", 5, 5}, {"top-right", b.Dx() - 6, 5}, {"bottom-left", 5, b.Dy() - 6}, {"bottom-right", b.Dx() - 6, b.Dy() - 6}} {
			if near(rgbAt(img, c.x, c.y), red, 8) {
				return c.name
			}
		}
		return "nowhere"
	}
	for _, tt := range []struct {
		o      Options
		w, h   int
		corner string
	}{
		{Options{Rotate: 90}, 100, 200, "top-right"},
		{Options{Rotate: 180}, 200, 100, "bottom-right"},
		{Options{Rotate: 270}, 100, 200, "bottom-left"},
		{Options{Flip: FlipHorizontal}, 200, 100, "top-right"},
		{Options{Flip: FlipVertical}, 200, 100, "bottom-left"},
		{Options{Flip: FlipBoth}, 200, 100, "bottom-right"},
		{Options{Rotate: 90, Flip: FlipHorizontal}, 100, 200, "top-left"},
		{Options{Rotate: 90, Width: 50}, 50, 100, "top-right"}, // the width of the turned image
		{Options{Rotate: 90, Width: 50, Height: 50, Fit: FitCover}, 50, 50, ""},
	} {
		img := process(t, p, in, tt.o)
		if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
			t.Errorf("%+v: %dx%d, want %dx%d", tt.o, b.Dx(), b.Dy(), tt.w, tt.h)
		}
		if got := corner(img); tt.corner != "" && got != tt.corner {
			t.Errorf("rotate %d flip %s: red %s, want %s", tt.o.Rotate, tt.o.Flip, got, tt.corner)
		}
	}
}

// energy is the mean absolute difference between neighbouring pixels: the
// high-frequency content that blur takes away and sharpen adds.
func energy(img image.Image) float64 {
	b := img.Bounds()
	var sum float64
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X-1; x++ {
			r1, g1, b1, _ := img.At(x, y).RGBA()
			r2, g2, b2, _ := img.At(x+1, y).RGBA()
			sum += math.Abs(float64(r1)-float64(r2)) + math.Abs(float64(g1)-float64(g2)) + math.Abs(float64(b1)-float64(b2))
			n++
		}
	}
	return sum / float64(n)
}

func TestBlurAndSharpen(t *testing.T) {
	p := newTestProcessor(t, nil)
	photo := readTestdata(t, "ladybird.jpg")
	plain := energy(process(t, p, photo, Options{Width: 400}))
	for _, sigma := range []float64{0.5, 2, 8} {
		if e := energy(process(t, p, photo, Options{Width: 400, Blur: sigma})); e >= plain {
			t.Errorf("blur=%g: energy %.0f, not below the plain %.0f", sigma, e, plain)
		}
		if e := energy(process(t, p, photo, Options{Width: 400, Sharpen: sigma})); e <= plain {
			t.Errorf("sharpen=%g: energy %.0f, not above the plain %.0f", sigma, e, plain)
		}
	}
	blurred := energy(process(t, p, photo, Options{Width: 400, Blur: 2}))
	if more := energy(process(t, p, photo, Options{Width: 400, Blur: 8})); more >= blurred {
		t.Errorf("blur 8 (%.0f) not blurrier than blur 2 (%.0f)", more, blurred)
	}
}

// onHiddenColours is a w x h image, transparent but for an opaque red
// square of side n in the middle (none when n is 0), whose transparent
// pixels hide colours that change from pixel to pixel, as encoders
// leave them: a transparent pixel shows nothing, whatever its RGB.
func onHiddenColours(w, h, n int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 37), uint8(y * 53), uint8((x + y) * 11), 0})
		}
	}
	x0, y0 := (w-n)/2, (h-n)/2
	for y := y0; y < y0+n; y++ {
		for x := x0; x < x0+n; x++ {
			img.SetNRGBA(x, y, color.NRGBA{255, 0, 0, 255})
		}
	}
	return img
}

// visibleColoursNear checks that every pixel of img that shows (alpha at
// least 16) has colour c, within tol: a blur that mixes the colours of
// transparent pixels into the visible ones makes a dark or coloured fringe.
func visibleColoursNear(t *testing.T, what string, img image.Image, c [3]uint8, tol int) {
	t.Helper()
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			n := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA) // rgbAt's are premultiplied
			px := [4]uint8{n.R, n.G, n.B, n.A}
			if px[3] >= 16 && !near([4]uint8{px[0], px[1], px[2], 255}, [4]uint8{c[0], c[1], c[2], 255}, tol) {
				t.Errorf("%s: pixel %d,%d is %v, want the colour %v at any opacity", what, x, y, px, c)
				return
			}
		}
	}
}

// A blur of an image with transparency blends colours by how much they
// show: the edge of an opaque shape fades out in its own colour, whatever
// colour its transparent neighbours hide, and a contain's transparent
// canvas does not darken the picture's edges.
func TestBlurOfTransparency(t *testing.T) {
	p := newTestProcessor(t, nil)
	// PNG is exact; lossy WebP moves faint pixels' colours a little (a
	// fringe moves them by more than a hundred).
	for f, tol := range map[Format]int{FormatPNG: 2, FormatWebP: 30} {
		img := process(t, p, encodePNG(t, onHiddenColours(60, 40, 20)), Options{Blur: 2, Format: f})
		visibleColoursNear(t, f.String()+" red square blurred", img, [3]uint8{255, 0, 0}, tol)
		if a := rgbAt(img, 30, 20)[3]; a != 255 {
			t.Errorf("%s: the middle of the square has alpha %d after a blur of 2, want 255", f, a)
		}
		if a := rgbAt(img, 0, 0)[3]; a != 0 {
			t.Errorf("%s: a corner far from the square has alpha %d, want 0", f, a)
		}
		white := encodePNG(t, solid(40, 20, color.NRGBA{255, 255, 255, 255}))
		img = process(t, p, white, Options{Width: 40, Height: 40, Fit: FitContain, Blur: 3, Format: f})
		visibleColoursNear(t, f.String()+" contain then blur", img, [3]uint8{255, 255, 255}, tol)
	}
	// With a background the canvas is opaque: the blur mixes it in.
	img := process(t, p, encodePNG(t, solid(40, 20, color.NRGBA{255, 255, 255, 255})),
		Options{Width: 40, Height: 40, Fit: FitContain, Blur: 3, Background: &Color{0, 0, 0}})
	if c := rgbAt(img, 20, 10); c[3] != 255 || c[0] < 40 || c[0] > 215 {
		t.Errorf("contain on black, blurred: the picture's edge is %v, want a grey between", c)
	}
}

// bordered is a red image of w x h inside a white border of the given
// widths (top, right, bottom, left).
func bordered(w, h int, border [4]int) *image.RGBA {
	W, H := w+border[1]+border[3], h+border[0]+border[2]
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for y := 0; y < H; y++ {
		for x := 0; x < W; x++ {
			c := color.RGBA{255, 255, 255, 255}
			if x >= border[3] && x < border[3]+w && y >= border[0] && y < border[0]+h {
				c = color.RGBA{200, 30, 30, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// Trim removes exactly a known border, whatever its widths, and before
// the resize; an image that is all border cannot be trimmed.
func TestTrim(t *testing.T) {
	p := newTestProcessor(t, nil)
	for _, border := range [][4]int{{10, 13, 5, 7}, {1, 1, 1, 1}, {3, 30, 0, 1}, {40, 0, 3, 2}} {
		in := encodePNG(t, bordered(100, 80, border))
		img := process(t, p, in, Options{Trim: ptr(10.0)})
		if b := img.Bounds(); b.Dx() != 100 || b.Dy() != 80 {
			t.Errorf("border %v: trimmed to %dx%d, want 100x80", border, b.Dx(), b.Dy())
		}
		if m := meanRGB(img); m[0] < 195 || m[1] > 35 {
			t.Errorf("border %v: mean %v, want the red inside", border, m)
		}
		img = process(t, p, in, Options{Trim: ptr(10.0), Width: 50})
		if b := img.Bounds(); b.Dx() != 50 || b.Dy() != 40 {
			t.Errorf("border %v: trimmed then width 50: %dx%d, want 50x40", border, b.Dx(), b.Dy())
		}
	}
	// The border is the top-left pixel's colour: with no border there, the
	// red is what is trimmed, and the white strip is what stays.
	img := process(t, p, encodePNG(t, bordered(100, 80, [4]int{0, 30, 0, 0})), Options{Trim: ptr(10.0)})
	if b := img.Bounds(); b.Dx() != 30 || b.Dy() != 80 || !near(rgbAt(img, 15, 40), whit, 2) {
		t.Errorf("red at the top-left: trimmed to %v, %v; want the 30x80 white strip", b, rgbAt(img, 15, 40))
	}
	plain := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range plain.Pix {
		plain.Pix[i] = 255
	}
	if _, err := p.Process(t.Context(), encodePNG(t, plain), Options{Trim: ptr(10.0)}); !errors.Is(err, ErrUnsatisfiable) {
		t.Errorf("trim of a white image: err = %v, want ErrUnsatisfiable", err)
	}
}

// A transparent border is uniform whatever colours its pixels hide: trim
// cuts it, and an image transparent all over is all border.
func TestTrimOfTransparency(t *testing.T) {
	p := newTestProcessor(t, nil)
	img := process(t, p, encodePNG(t, onHiddenColours(60, 40, 20)), Options{Trim: ptr(10.0)})
	if b := img.Bounds(); b.Dx() != 20 || b.Dy() != 20 {
		t.Errorf("a red square on transparency: trimmed to %dx%d, want 20x20", b.Dx(), b.Dy())
	}
	visibleColoursNear(t, "trimmed", img, [3]uint8{255, 0, 0}, 2)
	if _, err := p.Process(t.Context(), encodePNG(t, onHiddenColours(60, 40, 0)), Options{Trim: ptr(10.0)}); !errors.Is(err, ErrUnsatisfiable) {
		t.Errorf("trim of an image transparent all over: err = %v, want ErrUnsatisfiable", err)
	}
	// Half-transparent content on a transparent border is content.
	half := onHiddenColours(60, 40, 0)
	for y := 5; y < 15; y++ {
		for x := 10; x < 30; x++ {
			half.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 128})
		}
	}
	img = process(t, p, encodePNG(t, half), Options{Trim: ptr(10.0)})
	if b := img.Bounds(); b.Dx() != 20 || b.Dy() != 10 {
		t.Errorf("half-transparent blue on transparency: trimmed to %dx%d, want 20x10", b.Dx(), b.Dy())
	}
}

// Trim as a rule, over random borders: of a lossless image it leaves
// exactly the inside; of a JPEG, the inside to within its ringing (two
// pixels); single specks in the border are ignored as noise, as libvips
// does; a line three pixels wide is kept wherever it is.
func TestTrimOverRandomBorders(t *testing.T) {
	p := newTestProcessor(t, nil)
	// Images too small for a 3x3 neighbourhood are trimmed or refused as
	// all border, never an error of another kind.
	for _, sz := range [][2]int{{1, 1}, {1, 50}, {50, 1}, {2, 2}, {3, 2}} {
		img := bordered(sz[0], sz[1], [4]int{})
		_, err := p.Process(t.Context(), encodePNG(t, img), Options{Trim: ptr(10.0)})
		if err != nil && !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("trim of a %dx%d image: %v", sz[0], sz[1], err)
		}
		img.Set(0, 0, color.RGBA{255, 255, 255, 255})
		_, err = p.Process(t.Context(), encodePNG(t, img), Options{Trim: ptr(10.0)})
		if err != nil && !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("trim of a %dx%d image with a white corner: %v", sz[0], sz[1], err)
		}
	}
	rnd := rand.New(rand.NewPCG(11, 12))
	size := func(img image.Image) (int, int) { b := img.Bounds(); return b.Dx(), b.Dy() }
	for i := 0; i < 12; i++ {
		w, h := 20+rnd.IntN(600), 20+rnd.IntN(400)
		border := [4]int{rnd.IntN(90), rnd.IntN(90), rnd.IntN(90), 1 + rnd.IntN(90)}
		img := bordered(w, h, border)
		W, H := size(img)
		for k := 0; k < 20; k++ { // specks in the border, away from the inside
			x, y := rnd.IntN(W), rnd.IntN(H)
			if x < border[3]-2 || y < border[0]-2 || x > border[3]+w+1 || y > border[0]+h+1 {
				img.Set(x, y, color.RGBA{0, 0, 0, 255})
			}
		}
		if gw, gh := size(process(t, p, encodePNG(t, img), Options{Trim: ptr(10.0)})); gw != w || gh != h {
			t.Errorf("PNG %dx%d, border %v: trimmed to %dx%d, want %dx%d", W, H, border, gw, gh, w, h)
		}
		if gw, gh := size(process(t, p, encodeJPEG(t, img), Options{Trim: ptr(10.0)})); abs(gw-w) > 4 || abs(gh-h) > 4 {
			t.Errorf("JPEG %dx%d, border %v: trimmed to %dx%d, want %dx%d within 2 pixels a side", W, H, border, gw, gh, w, h)
		}
		// A 3-pixel line along the far right edge of the border stays.
		if border[1] > 3 {
			for y := 0; y < H; y++ {
				for x := W - 3; x < W; x++ {
					img.Set(x, y, color.RGBA{0, 0, 200, 255})
				}
			}
			if gw, _ := size(process(t, p, encodePNG(t, img), Options{Trim: ptr(10.0)})); gw != W-border[3] {
				t.Errorf("PNG %dx%d, border %v, a line on the right: trimmed to width %d, want %d", W, H, border, gw, W-border[3])
			}
		}
	}
}

// Pad adds borders of the background around the resized image: a 200-wide
// result with pad=10,20,10,20 is 240 wide; dpr multiplies width, height and
// pad.
func TestPadAndDPR(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodeJPEG(t, quadrants(400, 200))
	bg := Color{0, 0, 255}
	img := process(t, p, in, Options{Width: 200, Pad: [4]int{10, 20, 10, 20}, Background: &bg, Format: FormatJPEG})
	if b := img.Bounds(); b.Dx() != 240 || b.Dy() != 120 {
		t.Fatalf("pad: %dx%d, want 240x120", b.Dx(), b.Dy())
	}
	for _, at := range [][2]int{{5, 60}, {234, 60}, {120, 3}, {120, 116}} {
		if c := rgbAt(img, at[0], at[1]); !near(c, blue, 30) {
			t.Errorf("pad at %v: %v, want the background", at, c)
		}
	}
	if c := rgbAt(img, 40, 30); !near(c, red, 40) {
		t.Errorf("the image inside the pad: %v, want red", c)
	}
	img = process(t, p, in, Options{Width: 100, Pad: [4]int{5, 5, 5, 5}, DPR: 2})
	if b := img.Bounds(); b.Dx() != 220 || b.Dy() != 120 {
		t.Errorf("width 100, pad 5, dpr 2: %dx%d, want 220x120", b.Dx(), b.Dy())
	}
	// transparent padding where the format keeps alpha and no background
	img = process(t, p, in, Options{Width: 100, Pad: [4]int{5, 5, 5, 5}, Format: FormatPNG})
	if c := rgbAt(img, 1, 1); c[3] != 0 {
		t.Errorf("PNG pad without background: %v, want transparent", c)
	}
}

// Cover keeps the corner or the focal point asked for.
func TestCornersAndFocus(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodePNG(t, quadrants(400, 200)) // red, green / blue, white
	for _, tt := range []struct {
		g    Gravity
		want [4]uint8
	}{{GravityNorthWest, red}, {GravityNorthEast, green}, {GravitySouthWest, blue}, {GravitySouthEast, whit}} {
		img := process(t, p, in, Options{Width: 50, Height: 50, Fit: FitCover, Gravity: tt.g, Enlarge: true, Crop: nil})
		// A 50x50 cover of 400x200 at scale 1/4 is 100x50: the corner
		// column keeps the corner's colour in its top or bottom half.
		x, y := 5, 5
		if tt.g == GravityNorthEast || tt.g == GravitySouthEast {
			x = 44
		}
		if tt.g == GravitySouthWest || tt.g == GravitySouthEast {
			y = 44
		}
		if c := rgbAt(img, x, y); !near(c, tt.want, 30) {
			t.Errorf("gravity %s: %v at (%d,%d), want %v", tt.g, c, x, y, tt.want)
		}
	}
	// The focal point at the far right of a wide image: the cut is
	// against the right edge; at the middle, centred.
	for _, tt := range []struct {
		focus Point
		x     int // where the cut starts, in the 100-wide scaled image
	}{{Point{0.95, 0.5}, 50}, {Point{0.05, 0.5}, 0}, {Point{0.5, 0.5}, 25}, {Point{0.6, 0.5}, 35}} {
		g, err := fitGeometry(400, 200, Options{Width: 50, Height: 50, Fit: FitCover, Gravity: GravityFocus, Focus: &tt.focus}, 8192, 1<<40, nil)
		if err != nil || g.crop.x != tt.x {
			t.Errorf("focus %v: cut at %d (%v), want %d", tt.focus, g.crop.x, err, tt.x)
		}
	}
	img := process(t, p, in, Options{Width: 50, Height: 50, Fit: FitCover, Gravity: GravityFocus, Focus: &Point{0.95, 0.1}})
	if c := rgbAt(img, 25, 10); !near(c, green, 30) {
		t.Errorf("focus on the green quadrant: %v", c)
	}
}

// featureAt is a w x h grey picture whose one interesting part, a
// magenta and grey check, fills the band of a fifth of its width (or
// height, when tall) at the left or top (first), or at the right or bottom.
func featureAt(w, h int, first bool) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA{128, 128, 128, 255}
			v, n := x, w
			if h > w {
				v, n = y, h
			}
			in := v >= n*4/5
			if first {
				in = v < n/5
			}
			if in && (x/3+y/3)%2 == 0 {
				c = color.NRGBA{255, 0, 200, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// magentaShare is the fraction of img's pixels that are the check's magenta.
func magentaShare(img image.Image) float64 {
	b := img.Bounds()
	n := 0
	for y := range b.Dy() {
		for x := range b.Dx() {
			if near(rgbAt(img, x, y), [4]uint8{255, 0, 200, 255}, 60) {
				n++
			}
		}
	}
	return float64(n) / float64(b.Dx()*b.Dy())
}

// gravity=smart keeps the interesting part of a cover's cut whether the
// cover shrinks the picture or enlarges it, and in every frame of an
// animation that stays animated: a cut made in the middle would leave
// only grey.
func TestSmartCoverKeepsTheFeature(t *testing.T) {
	p := newTestProcessor(t, nil)
	for _, tc := range []struct {
		w, h, W, H int
		enlarge    bool
	}{
		{500, 250, 100, 100, false}, {100, 50, 200, 200, true}, {400, 200, 300, 300, true},
		{50, 100, 160, 160, true}, {90, 30, 40, 40, true},
	} {
		for _, first := range []bool{true, false} {
			what := fmt.Sprintf("%dx%d, feature first %v, cover %dx%d enlarge %v", tc.w, tc.h, first, tc.W, tc.H, tc.enlarge)
			o := Options{Width: tc.W, Height: tc.H, Fit: FitCover, Gravity: GravitySmart, Enlarge: tc.enlarge}
			img := process(t, p, encodePNG(t, featureAt(tc.w, tc.h, first)), o)
			if b := img.Bounds(); b.Dx() != tc.W || b.Dy() != tc.H {
				t.Errorf("%s: %dx%d", what, b.Dx(), b.Dy())
			}
			if m := magentaShare(img); m < 0.1 {
				t.Errorf("%s: %.0f%% of the output is the feature, want it kept", what, 100*m)
			}
			// An animation, each frame the same picture: every frame keeps it.
			frame := featureAt(tc.w, tc.h, first)
			pal := image.NewPaletted(frame.Bounds(), color.Palette{color.NRGBA{128, 128, 128, 255}, color.NRGBA{255, 0, 200, 255}})
			draw.Draw(pal, pal.Bounds(), frame, image.Point{}, draw.Src)
			var b bytes.Buffer
			if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{pal, pal}, Delay: []int{10, 20}}); err != nil {
				t.Fatal(err)
			}
			o.Format = FormatGIF
			r, err := p.Process(t.Context(), b.Bytes(), o)
			if err != nil {
				t.Fatalf("%s, animated: %v", what, err)
			}
			for i, f := range gifScreens(t, r.Data) {
				if m := magentaShare(f); m < 0.1 {
					t.Errorf("%s, animated: frame %d is %.0f%% the feature, want it kept", what, i, 100*m)
				}
			}
		}
	}
}

// A progressive JPEG has a progressive frame header (SOF2); an interlaced
// PNG says so in its IHDR.
func TestProgressive(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodeJPEG(t, quadrants(64, 64))
	for _, progressive := range []bool{false, true} {
		r, err := p.Process(t.Context(), in, Options{Progressive: progressive})
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(r.Data, []byte{0xFF, 0xC2}); got != progressive {
			t.Errorf("JPEG progressive=%v: SOF2 %v", progressive, got)
		}
		r, err = p.Process(t.Context(), in, Options{Progressive: progressive, Format: FormatPNG})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Data[28] == 1; got != progressive {
			t.Errorf("PNG progressive=%v: interlace byte %d", progressive, r.Data[28])
		}
	}
}

// The sizes promised with rotation, pad and dpr: the fit's size turned
// and padded, every length multiplied by dpr.
func TestGeometryOfTheSteps(t *testing.T) {
	checked := 0
	for _, src := range [][2]int{{640, 480}, {333, 77}, {1, 500}} {
		for _, rot := range []int{0, 90, 180, 270} {
			for _, dpr := range []float64{0, 1.5, 2, 4} {
				for _, pad := range [][4]int{{}, {1, 2, 3, 4}, {10, 0, 0, 10}} {
					for _, fit := range []Fit{FitInside, FitCover, FitContain, FitFill} {
						o := Options{Width: 100, Height: 60, Fit: fit, Rotate: rot, DPR: dpr, Pad: pad, Enlarge: true}
						g, err := fitGeometry(src[0], src[1], o, 8192, 1<<40, nil)
						if err != nil {
							t.Fatal(err)
						}
						d := dpr
						if d == 0 {
							d = 1
						}
						W, H := int(math.Round(100*d)), int(math.Round(60*d))
						if rot == 90 || rot == 270 {
							W, H = H, W // the promise is about the image before the turn
						}
						w, h := promised(src[0], src[1], W, H, fit, true)
						if rot == 90 || rot == 270 {
							w, h = h, w
						}
						m := func(n int) int { return int(math.Round(float64(n) * d)) }
						w += m(pad[1]) + m(pad[3])
						h += m(pad[0]) + m(pad[2])
						if g.Width != w || g.Height != h {
							t.Errorf("%v %+v: %dx%d, want %dx%d", src, o, g.Width, g.Height, w, h)
						}
						checked++
					}
				}
			}
		}
	}
	t.Log(fmt.Sprint(checked, " combinations"))
}

// A crop scaled down from a JPEG is cut from a decode the loader shrank
// (regionShrink): it shows what the same crop of the full-size pixels
// shows, within a little resampling noise, at every factor and for an
// EXIF-rotated source too.
func TestCropOfAShrunkDecode(t *testing.T) {
	p := newTestProcessor(t, nil)
	photo := readTestdata(t, "ladybird.jpg")
	full, err := p.Process(t.Context(), photo, Options{Format: FormatPNG}) // the decoded pixels, lossless
	if err != nil {
		t.Fatal(err)
	}
	W, H := full.Width, full.Height
	for _, tt := range []struct{ x, y, w, h, out int }{
		{0, 0, W, H, W / 9},                   // the whole, as a crop
		{W / 3, H / 4, W / 2, H / 2, W / 5},   // shrunk by 2
		{W / 7, H / 5, W / 2, H / 2, W / 9},   // by 4
		{1, 3, W - 5, H - 7, W / 17},          // by 8, odd corners
		{W - 401, H - 301, 400, 300, 49},      // at the far corner
		{W / 2, H / 2, W/2 - 1, H/2 - 1, 131}, // odd sizes
	} {
		o := Options{Crop: &Region{tt.x, tt.y, tt.w, tt.h}, Width: tt.out}
		got := process(t, p, photo, o)
		want := process(t, p, full.Data, o)
		if got.Bounds() != want.Bounds() {
			t.Fatalf("%+v: %v, want %v", tt, got.Bounds(), want.Bounds())
		}
		if d := meanAbsDiff(got, want); d > 2.5 {
			t.Errorf("crop %+v to width %d: differs from the full-size crop by %.1f levels on average", tt, tt.out, d)
		}
	}
	// EXIF-rotated: the region is of the upright image, shrunk or not.
	turned := withOrientation(photo, 6)
	upright, err := p.Process(t.Context(), turned, Options{Format: FormatPNG})
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Crop: &Region{H / 5, W / 3, H / 2, W / 2}, Width: H / 9}
	if d := meanAbsDiff(process(t, p, turned, o), process(t, p, upright.Data, o)); d > 2.5 {
		t.Errorf("crop of an EXIF-rotated JPEG differs from the upright crop by %.1f levels on average", d)
	}
}

// The size the region path asks decode for is one that the loader makes
// by shrinking n times: at every size, odd or not, decode's loader
// options shrink by n itself, not n/2 (a fourfold larger decode).
func TestShrunkSizeIsTheLoaders(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		W, H := 16+rnd.IntN(9000), 16+rnd.IntN(9000)
		for _, n := range []int{2, 4, 8} {
			w, h := shrunk(W, H, n)
			scale := math.Max(float64(w)/float64(W), float64(h)/float64(H)) // as decode computes it
			if got, want := loadOptions(FormatJPEG, scale), fmt.Sprintf("shrink=%d", n); !strings.HasSuffix(got, want) {
				t.Fatalf("%dx%d shrunk by %d to %dx%d: loader options %q, want %s", W, H, n, w, h, got, want)
			}
		}
	}
}

// meanAbsDiff is the mean absolute difference of two images of one size,
// over their RGB channels, in levels of 255.
func meanAbsDiff(a, b image.Image) float64 {
	var sum float64
	bd := a.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			ca, cb := rgbAt(a, x, y), rgbAt(b, x, y)
			for i := 0; i < 3; i++ {
				sum += math.Abs(float64(ca[i]) - float64(cb[i]))
			}
		}
	}
	return sum / float64(3*bd.Dx()*bd.Dy())
}

// Sharpening an image with transparency sharpens what shows: a uniform
// shape keeps its colour to its edge, whatever colours its transparent
// neighbours hide (they are no edge anyone sees), while a visible edge
// inside it is still sharpened.
func TestSharpenOfTransparency(t *testing.T) {
	p := newTestProcessor(t, nil)
	grey := func(w, h, n int, hidden func(x, y int) color.NRGBA) *image.NRGBA {
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		x0, y0 := (w-n)/2, (h-n)/2
		for y := range h {
			for x := range w {
				c := hidden(x, y)
				if x >= x0 && x < x0+n && y >= y0 && y < y0+n {
					c = color.NRGBA{128, 128, 128, 255}
				}
				img.SetNRGBA(x, y, c)
			}
		}
		return img
	}
	for name, hidden := range map[string]func(x, y int) color.NRGBA{
		"black":  func(x, y int) color.NRGBA { return color.NRGBA{0, 0, 0, 0} },
		"white":  func(x, y int) color.NRGBA { return color.NRGBA{255, 255, 255, 0} },
		"varied": func(x, y int) color.NRGBA { return color.NRGBA{uint8(x * 37), uint8(y * 53), uint8((x + y) * 11), 0} },
	} {
		for _, sigma := range []float64{0.5, 1, 3} {
			img := process(t, p, encodePNG(t, grey(60, 40, 20, hidden)), Options{Sharpen: sigma, Format: FormatPNG})
			visibleColoursNear(t, fmt.Sprintf("grey square on hidden %s, sharpen %g", name, sigma), img, [3]uint8{128, 128, 128}, 2)
		}
	}
	// A visible edge is still sharpened: a grey square inside an opaque
	// lighter one gets a darker rim.
	in := grey(60, 40, 20, func(x, y int) color.NRGBA {
		if x >= 10 && x < 50 && y >= 5 && y < 35 {
			return color.NRGBA{200, 200, 200, 255}
		}
		return color.NRGBA{0, 0, 0, 0}
	})
	img := process(t, p, encodePNG(t, in), Options{Sharpen: 1, Format: FormatPNG})
	if c := rgbAt(img, 20, 20); c[0] >= 124 {
		t.Errorf("the inner square's edge next to lighter grey is %v after sharpen 1, want darker than its 128", c)
	}
}
