package imageproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// storedMarks is a Watermarks of the test's own: names to bytes, and a
// count of the fetches.
type storedMarks struct {
	files   map[string][]byte
	fetches atomic.Int32
}

func (s *storedMarks) Watermark(_ context.Context, name string) ([]byte, error) {
	s.fetches.Add(1)
	b, ok := s.files[name]
	if !ok {
		return nil, fmt.Errorf("%w: no watermark %q", ErrBadWatermark, name)
	}
	return b, nil
}

// solid is a w x h image of one colour (alpha included).
func solid(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

var (
	opaqueRed = color.NRGBA{255, 0, 0, 255}
	midGrey   = color.NRGBA{100, 100, 100, 255}
)

// boxOf is the smallest rectangle that holds every pixel near c.
func boxOf(img image.Image, c [4]uint8, tol int) rect {
	b := img.Bounds()
	x0, y0, x1, y1 := b.Dx(), b.Dy(), -1, -1
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			if near(rgbAt(img, x, y), c, tol) {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	if x1 < 0 {
		return rect{}
	}
	return rect{x0, y0, x1 - x0 + 1, y1 - y0 + 1}
}

func markProcessor(t *testing.T, files map[string][]byte, edit func(*Config)) (*Processor, *storedMarks) {
	t.Helper()
	s := &storedMarks{files: files}
	return newTestProcessor(t, func(c *Config) {
		c.Watermarks = s
		if edit != nil {
			edit(c)
		}
	}), s
}

// wm is a watermark option with the parser's defaults.
func wm(name string, pos Gravity, margin int) *Watermark {
	return &Watermark{Key: name, Position: pos, Opacity: 1, Margin: margin}
}

// A 40x20 watermark over a 300x200 output sits where its position says,
// at its own size, the margin away from the edges it is placed against.
func TestWatermarkPositions(t *testing.T) {
	p, _ := markProcessor(t, map[string][]byte{"red.png": encodePNG(t, solid(40, 20, opaqueRed))}, nil)
	in := encodePNG(t, solid(300, 200, midGrey))
	for _, tt := range []struct {
		pos  Gravity
		x, y int
	}{
		{GravityNorthWest, 10, 10}, {GravityNorth, 130, 10}, {GravityNorthEast, 250, 10},
		{GravityWest, 10, 90}, {GravityCenter, 130, 90}, {GravityEast, 250, 90},
		{GravitySouthWest, 10, 170}, {GravitySouth, 130, 170}, {GravitySouthEast, 250, 170},
	} {
		img := process(t, p, in, Options{Watermark: wm("red.png", tt.pos, 10)})
		if got, want := boxOf(img, red, 8), (rect{tt.x, tt.y, 40, 20}); got != want {
			t.Errorf("%s: watermark at %+v, want %+v", tt.pos, got, want)
		}
	}
	// Without a margin, against the edges.
	img := process(t, p, in, Options{Watermark: wm("red.png", GravitySouthEast, 0)})
	if got := boxOf(img, red, 8); got != (rect{260, 180, 40, 20}) {
		t.Errorf("southeast, no margin: %+v", got)
	}
}

// Its width is watermark_scale of the output's, its height following;
// one larger than the output shrinks to fit inside it, margins kept.
func TestWatermarkScale(t *testing.T) {
	p, _ := markProcessor(t, map[string][]byte{
		"small.png": encodePNG(t, solid(40, 20, opaqueRed)),
		"huge.png":  encodePNG(t, solid(1200, 600, opaqueRed)),
	}, nil)
	in := encodePNG(t, solid(300, 200, midGrey))
	for _, tt := range []struct {
		name   string
		scale  float64
		margin int
		w, h   int
	}{
		{"small.png", 0.5, 10, 150, 75}, // enlarged to half the width
		{"small.png", 0.1, 10, 30, 15},  // made smaller
		{"small.png", 1, 0, 300, 150},   // the whole width
		{"small.png", 1, 10, 280, 140},  // the whole width less the margins
		{"huge.png", 0, 10, 280, 140},   // its own size is too large: fits
		{"huge.png", 0.2, 0, 60, 30},    // the scale asked
		{"small.png", 0, 200, 4, 2},     // a margin that leaves no room shrinks
	} {
		w := wm(tt.name, GravityCenter, tt.margin)
		w.Scale = tt.scale
		img := process(t, p, in, Options{Watermark: w})
		got := boxOf(img, red, 40)
		if abs(got.w-tt.w) > 1 || abs(got.h-tt.h) > 1 {
			t.Errorf("%s scale %g margin %d: %dx%d, want %dx%d", tt.name, tt.scale, tt.margin, got.w, got.h, tt.w, tt.h)
		}
	}
	// The output's width is the padded one's, and dpr does not scale it.
	w := wm("small.png", GravityNorthWest, 0)
	w.Scale = 0.5
	img := process(t, p, in, Options{Width: 100, Pad: [4]int{0, 50, 0, 50}, DPR: 2, Watermark: w})
	if got := boxOf(img, red, 40); img.Bounds().Dx() != 400 || abs(got.w-200) > 1 || got.x != 0 {
		t.Errorf("scale 0.5 of a 400-wide padded output: %+v in %v", got, img.Bounds())
	}
}

func abs(n int) int { return max(n, -n) }

// Opacity multiplies the watermark's alpha: at 0.5, red over white is
// half of each; transparent pixels of the watermark leave the image as it
// is; and it works over JPEG (no alpha, stays without), PNG and WebP
// (alpha kept, transparency where the image is transparent).
func TestWatermarkBlend(t *testing.T) {
	half := solid(40, 20, opaqueRed)
	for y := 0; y < 20; y++ {
		for x := 0; x < 20; x++ {
			half.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 0}) // transparent (blue, were it shown)
		}
	}
	p, _ := markProcessor(t, map[string][]byte{
		"red.png":  encodePNG(t, solid(40, 20, opaqueRed)),
		"half.png": encodePNG(t, half),
		"red.jpg":  encodeJPEG(t, solid(40, 20, opaqueRed)),
	}, nil)
	white := encodePNG(t, solid(200, 100, color.NRGBA{255, 255, 255, 255}))
	fade := func(name string, opacity float64) *Watermark {
		w := wm(name, GravityNorthWest, 0)
		w.Opacity = opacity
		return w
	}
	for _, tt := range []struct {
		name    string
		in      []byte
		o       Options
		at      [2]int
		want    [4]uint8
		tol     int
		jpegOut bool
	}{
		{"half opacity over white", white, Options{Watermark: fade("red.png", 0.5)}, [2]int{30, 10}, [4]uint8{255, 128, 128, 255}, 2, false},
		{"quarter opacity over white", white, Options{Watermark: fade("red.png", 0.25)}, [2]int{30, 10}, [4]uint8{255, 191, 191, 255}, 2, false},
		{"full opacity", white, Options{Watermark: fade("red.png", 1)}, [2]int{30, 10}, [4]uint8{255, 0, 0, 255}, 0, false},
		{"a JPEG watermark (no alpha)", white, Options{Watermark: fade("red.jpg", 0.5)}, [2]int{30, 10}, [4]uint8{255, 128, 128, 255}, 6, false},
		{"transparent part", white, Options{Watermark: fade("half.png", 1)}, [2]int{10, 10}, [4]uint8{255, 255, 255, 255}, 0, false},
		{"opaque part", white, Options{Watermark: fade("half.png", 1)}, [2]int{30, 10}, [4]uint8{255, 0, 0, 255}, 0, false},
		{"JPEG output", encodeJPEG(t, solid(200, 100, midGrey)), Options{Format: FormatJPEG, Watermark: fade("red.png", 0.5)},
			[2]int{30, 10}, [4]uint8{178, 50, 50, 255}, 12, true},
		{"JPEG output, around", encodeJPEG(t, solid(200, 100, midGrey)), Options{Format: FormatJPEG, Watermark: fade("red.png", 0.5)},
			[2]int{100, 50}, [4]uint8{100, 100, 100, 255}, 6, true},
		{"grey JPEG, colour watermark", encodeJPEG(t, image.NewGray(image.Rect(0, 0, 200, 100))), Options{Format: FormatJPEG, Watermark: fade("red.png", 1)},
			[2]int{20, 10}, [4]uint8{255, 0, 0, 255}, 40, true},
		// PNG with alpha: a transparent pad, the watermark in its corner.
		{"over transparency", white, Options{Pad: [4]int{30, 30, 30, 30}, Watermark: fade("red.png", 1)}, [2]int{10, 10}, [4]uint8{255, 0, 0, 255}, 0, false},
		{"half over transparency", white, Options{Pad: [4]int{30, 30, 30, 30}, Watermark: fade("red.png", 0.5)}, [2]int{10, 10}, [4]uint8{255, 0, 0, 128}, 1, false},
		{"transparency stays", white, Options{Pad: [4]int{30, 30, 30, 30}, Watermark: fade("red.png", 1)}, [2]int{60, 25}, [4]uint8{0, 0, 0, 0}, 0, false},
		{"transparent part over transparency", white, Options{Pad: [4]int{30, 30, 30, 30}, Watermark: fade("half.png", 1)}, [2]int{10, 10}, [4]uint8{0, 0, 0, 0}, 0, false},
		{"WebP over transparency", white, Options{Format: FormatWebP, Pad: [4]int{30, 30, 30, 30}, Watermark: fade("red.png", 0.5)},
			[2]int{10, 10}, [4]uint8{255, 0, 0, 128}, 20, false}, // lossy colour
		{"WebP transparency stays", white, Options{Format: FormatWebP, Pad: [4]int{30, 30, 30, 30}, Watermark: fade("red.png", 1)},
			[2]int{60, 25}, [4]uint8{0, 0, 0, 0}, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img := process(t, p, tt.in, tt.o)
			c := rgbAt(img, tt.at[0], tt.at[1])
			if tt.want[3] == 0 && c[3] == 0 {
				return // transparent: no colour to compare
			}
			if c[3] != 0 && c[3] != 255 { // compare colours as stored, not premultiplied
				nrgba := color.NRGBAModel.Convert(img.At(img.Bounds().Min.X+tt.at[0], img.Bounds().Min.Y+tt.at[1])).(color.NRGBA)
				c = [4]uint8{nrgba.R, nrgba.G, nrgba.B, nrgba.A}
			}
			if !near(c, tt.want, tt.tol) {
				t.Errorf("%v at %v, want %v (±%d)", c, tt.at, tt.want, tt.tol)
			}
			if _, ycc := img.(*image.YCbCr); tt.jpegOut && !ycc {
				t.Errorf("JPEG output decodes as %T: want three channels, no alpha", img)
			}
		})
	}
}

// Several outputs naming one watermark fetch it once; different outputs
// may name different ones.
func TestWatermarkVariants(t *testing.T) {
	blue := color.NRGBA{0, 0, 255, 255}
	p, s := markProcessor(t, map[string][]byte{
		"red.png":  encodePNG(t, solid(40, 20, opaqueRed)),
		"blue.png": encodePNG(t, solid(40, 20, blue)),
	}, nil)
	in := encodeJPEG(t, solid(800, 400, midGrey))
	opts := []Options{
		{Width: 400, Format: FormatPNG, Watermark: wm("red.png", GravityNorthWest, 5)},
		{Width: 200, Format: FormatPNG, Watermark: wm("red.png", GravitySouthEast, 5)},
		{Width: 100, Format: FormatPNG},
		{Width: 300, Format: FormatPNG, Watermark: wm("blue.png", GravityCenter, 0)},
	}
	_, rs, err := p.Variants(t.Context(), in, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.fetches.Load(); n != 2 {
		t.Errorf("%d fetches for two watermarks", n)
	}
	want := []struct {
		c   [4]uint8
		box rect
	}{
		{red, rect{5, 5, 40, 20}}, {red, rect{155, 75, 40, 20}}, {red, rect{}}, {[4]uint8{0, 0, 255, 255}, rect{130, 65, 40, 20}},
	}
	for i, r := range rs {
		if got := boxOf(decode(t, r.Data), want[i].c, 30); got != want[i].box {
			t.Errorf("output %d: watermark at %+v, want %+v", i, got, want[i].box)
		}
	}
}

// corruptIDAT spoils a PNG's compressed pixels and mends the chunk's CRC,
// so that only decoding finds the fault.
func corruptIDAT(b []byte) []byte {
	out := bytes.Clone(b)
	i := bytes.Index(out, []byte("IDAT"))
	n := int(binary.BigEndian.Uint32(out[i-4:]))
	for j := i + 4 + 2; j < i+4+n; j++ { // past the zlib header
		out[j] ^= 0x5a
	}
	binary.BigEndian.PutUint32(out[i+4+n:], crc32.ChecksumIEEE(out[i:i+4+n]))
	return out
}

// A watermark that cannot be used is a bad option, whatever the reason,
// and takes no slot when Go can tell.
func TestWatermarkRefusals(t *testing.T) {
	redPNG := encodePNG(t, solid(400, 400, opaqueRed))
	files := map[string][]byte{
		"text.png":    []byte("not an image at all"),
		"cut.png":     redPNG[:len(redPNG)/2],
		"corrupt.png": corruptIDAT(encodePNG(t, quadrants(200, 200))), // whole, within the limits: only libvips can tell
		"huge.png":    redPNG,                                         // 160,000 pixels, over the limit below
		"tiff.tif":    tiff2x2(),
		// Cut mid-scan behind a bare end marker: libjpeg only warns, in the
		// job's one error buffer, which must not blame the input.
		"cut-eoi.jpg": readTestFile(t, filepath.Join("..", "..", "testdata", "hostile", "422-truncated-bare-eoi.jpg")),
		"red.png":     encodePNG(t, solid(40, 20, opaqueRed)),
	}
	p, _ := markProcessor(t, files, func(c *Config) { c.MaxPixels = 100_000 })
	in := encodePNG(t, solid(100, 100, midGrey))
	// And the other way round: an input cut so, under a good watermark, is
	// the input's fault.
	unlimited, _ := markProcessor(t, files, nil)
	if _, err := unlimited.Process(t.Context(), files["cut-eoi.jpg"], Options{Width: 50, Watermark: wm("red.png", GravityCenter, 0)}); !errors.Is(err, ErrUndecodable) || errors.Is(err, ErrBadOption) {
		t.Errorf("a cut input under a good watermark: %v, want ErrUndecodable", err)
	}
	if _, err := unlimited.Process(t.Context(), in, Options{Watermark: wm("cut-eoi.jpg", GravityCenter, 0)}); !errors.Is(err, ErrBadWatermark) || errors.Is(err, ErrUndecodable) {
		t.Errorf("a good input under a cut watermark: %v, want ErrBadWatermark only", err)
	}
	for _, name := range []string{"missing.png", "text.png", "cut.png", "corrupt.png", "huge.png", "tiff.tif"} {
		_, err := p.Process(t.Context(), in, Options{Watermark: wm(name, GravityCenter, 0)})
		if !errors.Is(err, ErrBadOption) || errors.Is(err, ErrUndecodable) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want only ErrBadOption", name, err)
		}
		// Found in Go or by the worker alike, it is told apart from other
		// bad options: a caller whose configuration named it is at fault.
		if !errors.Is(err, ErrBadWatermark) || !strings.HasPrefix(err.Error(), "bad option: ") {
			t.Errorf("%s: %v, want ErrBadWatermark, reading as a bad option", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// Any other bad option is not a watermark's.
	if _, err := p.Process(t.Context(), in, Options{Crop: &Region{W: 500, H: 500}}); !errors.Is(err, ErrBadOption) || errors.Is(err, ErrBadWatermark) {
		t.Errorf("crop outside: %v, want ErrBadOption, not ErrBadWatermark", err)
	}
	// The client's own image is checked first.
	if _, err := p.Process(t.Context(), []byte("nope"), Options{Watermark: wm("missing.png", GravityCenter, 0)}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("bad image and missing watermark: %v, want ErrUnsupported", err)
	}
	// No Watermarks at all: the option is refused.
	bare := newTestProcessor(t, nil)
	if _, err := bare.Process(t.Context(), in, Options{Watermark: wm("x.png", GravityCenter, 0)}); !errors.Is(err, ErrBadWatermark) {
		t.Errorf("without watermarks: %v", err)
	}
}

// CheckWatermarks finds, without an image, the watermarks that Variants
// would refuse before taking a slot, and reads each once.
func TestCheckWatermarks(t *testing.T) {
	p, s := markProcessor(t, map[string][]byte{
		"red.png":  encodePNG(t, solid(40, 20, opaqueRed)),
		"text.png": []byte("not an image at all"),
	}, nil)
	plain := Options{Width: 10}
	for _, tt := range []struct {
		names []string
		bad   string // the watermark the error names; "" for none
	}{
		{nil, ""},
		{[]string{"red.png"}, ""},
		{[]string{"red.png", "red.png"}, ""},
		{[]string{"red.png", "missing.png"}, "missing.png"},
		{[]string{"text.png", "red.png"}, "text.png"},
	} {
		opts := []Options{plain}
		for _, n := range tt.names {
			opts = append(opts, Options{Width: 10, Watermark: wm(n, GravityCenter, 0)})
		}
		err := p.CheckWatermarks(t.Context(), opts)
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("%v: %v", tt.names, err)
		case tt.bad != "" && (!errors.Is(err, ErrBadWatermark) || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("%v: %v, want ErrBadWatermark naming %s", tt.names, err, tt.bad)
		}
	}
	s.fetches.Store(0)
	if err := p.CheckWatermarks(t.Context(), []Options{{Watermark: wm("red.png", GravityCenter, 0)}, {Watermark: wm("red.png", GravityNorth, 0)}}); err != nil || s.fetches.Load() != 1 {
		t.Errorf("one watermark named twice: %v, %d fetches, want 1", err, s.fetches.Load())
	}
	bare := newTestProcessor(t, nil)
	if err := bare.CheckWatermarks(t.Context(), []Options{{Watermark: wm("red.png", GravityCenter, 0)}}); !errors.Is(err, ErrBadWatermark) {
		t.Errorf("without watermarks: %v, want ErrBadWatermark", err)
	}
}

func TestMarkBox(t *testing.T) {
	for _, tt := range []struct {
		W, H, sw, sh int
		w            Watermark
		want         rect
	}{
		{300, 200, 40, 20, Watermark{Position: GravitySouthEast, Margin: 10}, rect{250, 170, 40, 20}},
		{300, 200, 40, 20, Watermark{Position: GravityCenter, Margin: 10}, rect{130, 90, 40, 20}},
		{300, 200, 40, 20, Watermark{Position: GravityNorth, Scale: 0.5}, rect{75, 0, 150, 75}},
		{300, 200, 40, 20, Watermark{Position: GravityWest, Scale: 1, Margin: 50}, rect{50, 50, 200, 100}},
		{300, 200, 40, 40, Watermark{Position: GravityWest, Scale: 1, Margin: 50}, rect{50, 50, 100, 100}},
		{10, 10, 1000, 1, Watermark{Position: GravitySouth}, rect{0, 9, 10, 1}},
		{1, 1, 50, 50, Watermark{Position: GravityNorthEast, Margin: 7}, rect{0, 0, 1, 1}},
		{2, 300, 50, 50, Watermark{Position: GravitySouthWest, Margin: 100}, rect{0, 298, 2, 2}},
	} {
		if got := markBox(tt.W, tt.H, tt.sw, tt.sh, tt.w); got != tt.want {
			t.Errorf("%dx%d, mark %dx%d, %+v: %+v, want %+v", tt.W, tt.H, tt.sw, tt.sh, tt.w, got, tt.want)
		}
	}
	// Whatever the sizes, it lies inside the output, at least a pixel.
	for W := 1; W < 40; W += 3 {
		for sw := 1; sw < 90; sw += 7 {
			for _, pos := range []Gravity{GravityCenter, GravityNorthWest, GravitySouthEast, GravityEast} {
				for _, m := range []int{0, 3, 30} {
					r := markBox(W, 17, sw, 13, Watermark{Position: pos, Margin: m, Scale: 0.7})
					if r.w < 1 || r.h < 1 || r.x < 0 || r.y < 0 || r.x+r.w > W || r.y+r.h > 17 {
						t.Fatalf("%dx17, mark %dx13, %s margin %d: %+v", W, sw, pos, m, r)
					}
				}
			}
		}
	}
}

// The step is a function of one frame: each frame of an animation can go
// through it, and they share one decode of the watermark.
func TestWatermarkStepPerFrame(t *testing.T) {
	if err := vipsInit(DefaultInputFormats, 0); err != nil { // as a worker starts
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	toC := func(b []byte) cbuf {
		c := newCbuf(len(b))
		copy(c.bytes(), b)
		return c
	}
	mark := encodePNG(t, solid(40, 20, opaqueRed))
	bufs := markBufs{"m": toC(mark)}
	defer bufs.free()
	ms := newMarkSet(job{Marks: []jobMark{{Name: "m", Header: Header{Format: FormatPNG, Width: 40, Height: 20, Orientation: 1}, Size: len(mark)}},
		marks: bufs, Limits: limits{MaxPixels: 1 << 30}})
	defer ms.free()
	for _, c := range []color.NRGBA{midGrey, {0, 0, 255, 255}, {0, 255, 0, 255}} {
		in := toC(encodePNG(t, solid(100, 60, c)))
		im, err := vipsLoad(in, "")
		if err == nil {
			im, err = ms.apply(im, wm("m", GravitySouthEast, 0), nil)
		}
		if err != nil {
			in.free()
			t.Fatal(err)
		}
		data, err := im.save(FormatPNG, 0, false)
		im.free()
		in.free()
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, data)
		freeC(data)
		if got := boxOf(img, red, 8); got != (rect{60, 40, 40, 20}) {
			t.Errorf("frame %v: watermark at %+v", c, got)
		}
		if got := rgbAt(img, 5, 5); !near(got, [4]uint8{c.R, c.G, c.B, 255}, 2) {
			t.Errorf("frame %v: %v beside the watermark", c, got)
		}
	}
	if len(ms.made) != 1 {
		t.Errorf("%d decodes of the watermark for three frames of one size", len(ms.made))
	}
}

// Watermarking leaks nothing: the C heap does not grow with the number of
// images (see TestNoCLeakPerImage).
func TestWatermarkNoCLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	if err := vipsInit(DefaultInputFormats, 0); err != nil {
		t.Fatal(err)
	}
	src := encodeJPEG(t, quadrants(300, 200))
	mark := encodePNG(t, solid(40, 20, opaqueRed))
	toC := func(b []byte) cbuf {
		c := newCbuf(len(b))
		copy(c.bytes(), b)
		return c
	}
	w := wm("m", GravitySouthEast, 4)
	w.Opacity, w.Scale = 0.5, 0.3
	g := cGrowth(t, 150, func() {
		in, m := toC(src), toC(mark)
		j := job{Header: Header{Format: FormatJPEG, Width: 300, Height: 200, Orientation: 1},
			Outputs: []Options{{Width: 100, Watermark: w}, {Width: 60, Format: FormatPNG, Pad: [4]int{2, 2, 2, 2}, Watermark: w}},
			Limits:  unbounded,
			Marks:   []jobMark{{Name: "m", Header: Header{Format: FormatPNG, Width: 40, Height: 20, Orientation: 1}, Size: len(mark)}},
			marks:   markBufs{"m": m}}
		_, outs, err := render(in, j)
		for _, o := range outs {
			freeC(o.data)
		}
		in.free()
		m.free()
		if err != nil {
			t.Fatal(err)
		}
	})
	if g > 800 {
		t.Errorf("the C heap grows by %.0f bytes an image", g)
	}
}

// An animation stays one, and every frame carries the watermark where a
// still image would, the frame's own colour around it.
func TestWatermarkAnimation(t *testing.T) {
	black := color.NRGBA{0, 0, 0, 255}
	p, _ := markProcessor(t, map[string][]byte{"black.png": encodePNG(t, solid(20, 10, black))}, nil)
	in := animatedGIF(t, 6, 90, 60, rgbPalette, []int{10, 20, 30})
	r, err := p.Process(t.Context(), in, Options{Width: 90, Watermark: wm("black.png", GravityNorthEast, 4)})
	if err != nil {
		t.Fatal(err)
	}
	anim, err := gif.DecodeAll(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatal(err)
	}
	if len(anim.Image) != 6 {
		t.Fatalf("%d frames, want 6", len(anim.Image))
	}
	// A GIF's frames may be only what changed: paint them in turn.
	canvas := image.NewRGBA(image.Rect(0, 0, anim.Config.Width, anim.Config.Height))
	for i, fr := range anim.Image {
		draw.Draw(canvas, fr.Bounds(), fr, fr.Bounds().Min, draw.Over)
		if got := boxOf(canvas, [4]uint8{0, 0, 0, 255}, 30); got != (rect{66, 4, 20, 10}) {
			t.Errorf("frame %d: watermark at %+v, want {66 4 20 10}", i, got)
		}
		want := rgbPalette[i%3].(color.RGBA)
		if got := rgbAt(canvas, 30, 40); !near(got, [4]uint8{want.R, want.G, want.B, 255}, 40) {
			t.Errorf("frame %d: %v beside the watermark, want %v", i, got, want)
		}
	}
}

// Every file of the hostile corpus is, as a watermark, what it is as an
// input made still (a watermark is its first frame): used when the input
// would be served, and otherwise refused as the option's fault
// (ErrBadWatermark), never taken for the image's (ErrUndecodable,
// ErrTooLarge, ErrUnsupported) nor a fault of the service. A file that a
// watermark's decode let through would be put over outputs half grey.
func TestWatermarkHostileCorpus(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "hostile")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if filepath.Ext(e.Name()) != ".md" {
			files[e.Name()] = readTestFile(t, filepath.Join(dir, e.Name()))
		}
	}
	p, _ := markProcessor(t, files, nil)
	grey := encodePNG(t, solid(120, 80, midGrey))
	for name, b := range files {
		_, inErr := p.Process(t.Context(), b, Options{Width: 100, Still: true})
		_, err := p.Process(t.Context(), grey, Options{Format: FormatPNG, Watermark: &Watermark{Key: name, Position: GravityCenter, Opacity: 0.5}})
		switch {
		case inErr == nil && err != nil:
			t.Errorf("%s: served as an input, refused as a watermark: %v", name, err)
		case inErr != nil && err == nil:
			t.Errorf("%s: refused as an input (%v), used as a watermark", name, inErr)
		case err != nil && (!errors.Is(err, ErrBadWatermark) || errors.Is(err, ErrUndecodable) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupported)):
			t.Errorf("%s: %v, want ErrBadWatermark only", name, err)
		case err != nil && strings.Count(err.Error(), ErrBadWatermark.Error()) != 1:
			t.Errorf("%s: %q says %q more than once", name, err, ErrBadWatermark)
		}
	}
}

// Over an output that keeps the source's profile (keep=icc: its pixels
// stay in Display P3), a watermark is converted into that space: seen
// through the profile, it has its own colours, as over an sRGB output.
// Its transparent pixels stay transparent, and one job's outputs that do
// and do not keep the profile each get the watermark in their own space.
func TestWatermarkKeptProfile(t *testing.T) {
	green := color.NRGBA{60, 160, 60, 255}
	mark := solid(40, 20, green)
	for y := 0; y < 20; y++ {
		for x := 20; x < 40; x++ {
			mark.SetNRGBA(x, y, color.NRGBA{255, 0, 255, 0}) // the right half: transparent
		}
	}
	p, _ := markProcessor(t, map[string][]byte{"g.png": encodePNG(t, mark)}, nil)
	src := readTestdata(t, "p3.jpg") // 320x200
	w := wm("g.png", GravityCenter, 0)
	_, rs, err := p.Variants(t.Context(), src, []Options{
		{Format: FormatPNG, Keep: KeepICC, Watermark: w},
		{Format: FormatPNG, Watermark: w},
		{Format: FormatPNG, Keep: KeepICC},
	})
	if err != nil {
		t.Fatal(err)
	}
	// As a viewer sees them: in sRGB (keep=none converts through the
	// profile the outputs carry).
	seen := make([]image.Image, len(rs))
	for i, r := range rs {
		s, err := p.Process(t.Context(), r.Data, Options{Format: FormatPNG})
		if err != nil {
			t.Fatal(err)
		}
		seen[i] = decode(t, s.Data)
	}
	want := [4]uint8{green.R, green.G, green.B, 255}
	for i, name := range []string{"keep=icc", "keep=none"} {
		if got := rgbAt(seen[i], 150, 100); !near(got, want, 4) {
			t.Errorf("%s: the watermark is seen as %v, want %v", name, got, want)
		}
	}
	if got, bare := rgbAt(seen[0], 170, 100), rgbAt(seen[2], 170, 100); !near(got, bare, 3) {
		t.Errorf("keep=icc: %v under the watermark's transparent half, want the image's own %v", got, bare)
	}
}
