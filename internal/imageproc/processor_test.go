package imageproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestFitDimensions(t *testing.T) {
	p := newTestProcessor(t, nil)
	land := encodeJPEG(t, quadrants(400, 200)) // 2:1
	photo := readTestdata(t, "ladybird.jpg")   // 2560x1600, 8:5
	tests := []struct {
		name string
		in   []byte
		o    Options
		w, h int
	}{
		{"width only", land, Options{Width: 100}, 100, 50},
		{"height only", land, Options{Height: 100}, 200, 100},
		{"nothing keeps size", land, Options{}, 400, 200},
		{"inside", land, Options{Width: 100, Height: 100}, 100, 50},
		{"inside tall box", land, Options{Width: 300, Height: 50}, 100, 50},
		{"cover", land, Options{Width: 100, Height: 100, Fit: FitCover}, 100, 100},
		{"cover wide box", land, Options{Width: 300, Height: 50, Fit: FitCover}, 300, 50},
		{"contain", land, Options{Width: 100, Height: 100, Fit: FitContain}, 100, 100},
		{"fill", land, Options{Width: 100, Height: 100, Fit: FitFill}, 100, 100},
		{"cover with one side is inside", land, Options{Width: 100, Fit: FitCover}, 100, 50},
		{"no enlarge inside", land, Options{Width: 800}, 400, 200},
		{"enlarge inside", land, Options{Width: 800, Enlarge: true}, 800, 400},
		{"no enlarge cover crops only", land, Options{Width: 300, Height: 300, Fit: FitCover}, 300, 200},
		{"enlarge cover", land, Options{Width: 600, Height: 600, Fit: FitCover, Enlarge: true}, 600, 600},
		{"no enlarge contain inside box", land, Options{Width: 800, Height: 800, Fit: FitContain}, 400, 200},
		{"enlarge contain", land, Options{Width: 800, Height: 800, Fit: FitContain, Enlarge: true}, 800, 800},
		{"no enlarge fill", land, Options{Width: 800, Height: 100, Fit: FitFill}, 400, 100},
		{"photo width 800", photo, Options{Width: 800}, 800, 500},
		{"photo cover square", photo, Options{Width: 333, Height: 333, Fit: FitCover}, 333, 333},
		{"photo smart cover", photo, Options{Width: 200, Height: 300, Fit: FitCover, Gravity: GravitySmart}, 200, 300},
		{"photo contain", photo, Options{Width: 500, Height: 500, Fit: FitContain}, 500, 500},
		{"photo fill", photo, Options{Width: 123, Height: 457, Fit: FitFill}, 123, 457},
		{"photo odd inside", photo, Options{Width: 777, Height: 333}, 533, 333},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := p.Process(t.Context(), tt.in, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			img := decode(t, r.Data)
			if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h || r.Width != tt.w || r.Height != tt.h {
				t.Fatalf("got %dx%d (decoded %dx%d), want %dx%d", r.Width, r.Height, b.Dx(), b.Dy(), tt.w, tt.h)
			}
		})
	}
}

func TestGravityKeepsTheRightSide(t *testing.T) {
	p := newTestProcessor(t, nil)
	// A wide image: left half red/blue, right half green/white. A square
	// cover crop keeps the middle, or the side gravity asks for.
	in := encodePNG(t, quadrants(400, 100))
	tests := []struct {
		g     Gravity
		probe [2]int // a point in the output
		want  [4]uint8
	}{
		{GravityWest, [2]int{90, 10}, [4]uint8{255, 0, 0, 255}},
		{GravityEast, [2]int{10, 10}, [4]uint8{0, 255, 0, 255}},
		{GravityCenter, [2]int{10, 10}, [4]uint8{255, 0, 0, 255}},
		{GravityCenter, [2]int{90, 10}, [4]uint8{0, 255, 0, 255}},
	}
	for _, tt := range tests {
		r, err := p.Process(t.Context(), in, Options{Width: 100, Height: 100, Fit: FitCover, Gravity: tt.g, Format: FormatPNG})
		if err != nil {
			t.Fatal(err)
		}
		if got := rgbAt(decode(t, r.Data), tt.probe[0], tt.probe[1]); !near(got, tt.want, 8) {
			t.Errorf("gravity %v at %v: %v, want %v", tt.g, tt.probe, got, tt.want)
		}
	}
}

func TestFormats(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := encodeJPEG(t, quadrants(200, 100))
	for _, f := range []Format{FormatJPEG, FormatPNG, FormatWebP, FormatAVIF} {
		r, err := p.Process(t.Context(), in, Options{Width: 100, Format: f})
		if err != nil {
			t.Fatalf("%v: %v", f, err)
		}
		if got := Sniff(r.Data); got != f || r.Format != f {
			t.Errorf("asked for %v, got bytes of %v (result says %v)", f, got, r.Format)
		}
		if r.Width != 100 || r.Height != 50 {
			t.Errorf("%v: %dx%d, want 100x50", f, r.Width, r.Height)
		}
	}
	// Original keeps the input format; HEIF-like inputs and GIF map as documented.
	for _, tt := range []struct {
		in   []byte
		want Format
	}{
		{in, FormatJPEG},
		{encodePNG(t, quadrants(20, 20)), FormatPNG},
		{encodeGIF(t, quadrants(20, 20)), FormatGIF},
	} {
		r, err := p.Process(t.Context(), tt.in, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if Sniff(r.Data) != tt.want {
			t.Errorf("original of %v came out as %v", Sniff(tt.in), Sniff(r.Data))
		}
	}
}

func TestQualityChangesSize(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := readTestdata(t, "ladybird.jpg")
	lo, err := p.Process(t.Context(), in, Options{Width: 600, Quality: 20})
	if err != nil {
		t.Fatal(err)
	}
	hi, err := p.Process(t.Context(), in, Options{Width: 600, Quality: 95})
	if err != nil {
		t.Fatal(err)
	}
	if len(lo.Data)*2 > len(hi.Data) {
		t.Fatalf("quality 20 gave %d bytes, quality 95 %d: want at least half", len(lo.Data), len(hi.Data))
	}
}

// Every EXIF orientation comes out upright: red top-left, green top-right,
// blue bottom-left. Each stored image is the upright one transformed the
// way a camera would have stored it.
func TestOrientationUpright(t *testing.T) {
	p := newTestProcessor(t, nil)
	upright := quadrants(80, 40)
	for o := 1; o <= 8; o++ {
		stored := storeAs(upright, o)
		for _, opts := range []Options{{Format: FormatPNG}, {Width: 40, Format: FormatPNG},
			{Width: 40, Height: 40, Fit: FitCover, Gravity: GravityWest, Format: FormatPNG}} {
			r, err := p.Process(t.Context(), withOrientation(encodeJPEG(t, stored), uint16(o)), opts)
			if err != nil {
				t.Fatalf("orientation %d: %v", o, err)
			}
			img := decode(t, r.Data)
			w, h := img.Bounds().Dx(), img.Bounds().Dy()
			if opts.Fit == FitCover {
				// west gravity keeps the left half: red over blue
				if w != 40 || h != 40 || !near(rgbAt(img, 20, 5), [4]uint8{255, 0, 0, 255}, 40) ||
					!near(rgbAt(img, 20, 35), [4]uint8{0, 0, 255, 255}, 40) {
					t.Errorf("orientation %d cover west: %dx%d, top %v bottom %v", o, w, h, rgbAt(img, 20, 5), rgbAt(img, 20, 35))
				}
				continue
			}
			if w != 2*h {
				t.Errorf("orientation %d %+v: %dx%d, want landscape 2:1", o, opts, w, h)
				continue
			}
			for _, c := range []struct {
				x, y int
				want [4]uint8
			}{{w / 4, h / 4, [4]uint8{255, 0, 0, 255}}, {3 * w / 4, h / 4, [4]uint8{0, 255, 0, 255}}, {w / 4, 3 * h / 4, [4]uint8{0, 0, 255, 255}}} {
				if got := rgbAt(img, c.x, c.y); !near(got, c.want, 40) {
					t.Errorf("orientation %d %+v: at (%d,%d) %v, want %v", o, opts, c.x, c.y, got, c.want)
				}
			}
		}
	}
}

// storeAs returns the stored pixels of an upright image for an EXIF
// orientation: the inverse of what a viewer applies.
func storeAs(up *image.RGBA, o int) *image.RGBA {
	w, h := up.Bounds().Dx(), up.Bounds().Dy()
	sw, sh := w, h
	if o >= 5 {
		sw, sh = h, w
	}
	st := image.NewRGBA(image.Rect(0, 0, sw, sh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var sx, sy int
			switch o {
			case 1:
				sx, sy = x, y
			case 2:
				sx, sy = w-1-x, y
			case 3:
				sx, sy = w-1-x, h-1-y
			case 4:
				sx, sy = x, h-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, w-1-x
			case 7:
				sx, sy = h-1-y, w-1-x
			case 8:
				sx, sy = h-1-y, x
			}
			st.Set(sx, sy, up.At(x, y))
		}
	}
	return st
}

func TestColourProfilesBecomeSRGB(t *testing.T) {
	p := newTestProcessor(t, nil)
	ref, err := p.Process(t.Context(), readTestdata(t, "ladybird.jpg"), Options{Width: 160})
	if err != nil {
		t.Fatal(err)
	}
	want := meanRGB(decode(t, ref.Data))
	tests := []struct {
		file string
		tol  float64
	}{
		// Display P3 pixels read as sRGB would be 4-5 levels redder.
		{"p3.jpg", 1.5},
		// CMYK through a print profile loses some gamut (deep greens);
		// read naively as RGB it would be nowhere near.
		{"cmyk.jpg", 12},
		{"cmyk-noprofile.jpg", 12},
	}
	for _, tt := range tests {
		r, err := p.Process(t.Context(), readTestdata(t, tt.file), Options{Width: 160})
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		img := decode(t, r.Data)
		if _, isCMYK := img.(*image.CMYK); isCMYK {
			t.Fatalf("%s: output is still CMYK", tt.file)
		}
		got := meanRGB(img)
		for i := range got {
			if d := got[i] - want[i]; d > tt.tol || d < -tt.tol {
				t.Errorf("%s: mean colour %v, want %v within %v", tt.file, got, want, tt.tol)
				break
			}
		}
		if bytes.Contains(r.Data, []byte("ICC_PROFILE")) || bytes.Contains(r.Data, []byte("Exif")) {
			t.Errorf("%s: metadata not stripped", tt.file)
		}
	}
}

func TestMetadataStripped(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := withOrientation(encodeJPEG(t, quadrants(64, 64)), 1)
	r, err := p.Process(t.Context(), in, Options{Width: 32})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(in, []byte("Exif")) || bytes.Contains(r.Data, []byte("Exif")) {
		t.Fatal("EXIF survived the resize")
	}
}

func TestAlpha(t *testing.T) {
	p := newTestProcessor(t, nil)
	half := image.NewNRGBA(image.Rect(0, 0, 100, 100))
	for y := 0; y < 100; y++ {
		for x := 0; x < 50; x++ {
			half.Set(x, y, color.NRGBA{0, 0, 255, 255}) // right half transparent
		}
	}
	in := encodePNG(t, half)
	tests := []struct {
		name string
		o    Options
		at   [2]int
		want [4]uint8
	}{
		{"jpeg flattens on white", Options{Format: FormatJPEG}, [2]int{75, 50}, [4]uint8{255, 255, 255, 255}},
		{"jpeg flattens on background", Options{Format: FormatJPEG, Background: &Color{255, 0, 0}}, [2]int{75, 50}, [4]uint8{255, 0, 0, 255}},
		{"png keeps alpha", Options{Format: FormatPNG}, [2]int{75, 50}, [4]uint8{0, 0, 0, 0}},
		{"webp keeps alpha", Options{Format: FormatWebP}, [2]int{75, 50}, [4]uint8{0, 0, 0, 0}},
		{"opaque part kept", Options{Format: FormatJPEG}, [2]int{25, 50}, [4]uint8{0, 0, 255, 255}},
		{"contain pads transparent", Options{Width: 50, Height: 100, Fit: FitContain, Format: FormatPNG}, [2]int{12, 10}, [4]uint8{0, 0, 0, 0}},
		{"contain keeps the image", Options{Width: 50, Height: 100, Fit: FitContain, Format: FormatPNG}, [2]int{12, 50}, [4]uint8{0, 0, 255, 255}},
	}
	for _, tt := range tests {
		r, err := p.Process(t.Context(), in, tt.o)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := rgbAt(decode(t, r.Data), tt.at[0], tt.at[1]); !near(got, tt.want, 10) {
			t.Errorf("%s: pixel %v = %v, want %v", tt.name, tt.at, got, tt.want)
		}
	}
	// An opaque image padded by contain gets white, or the background asked for.
	// Padding of 37 rows: the sample is two JPEG blocks away from the image.
	opaque := encodeJPEG(t, quadrants(200, 50))
	for _, tt := range []struct {
		bg   *Color
		want [4]uint8
	}{{nil, [4]uint8{255, 255, 255, 255}}, {&Color{0, 128, 0}, [4]uint8{0, 128, 0, 255}}} {
		r, err := p.Process(t.Context(), opaque, Options{Width: 100, Height: 100, Fit: FitContain, Background: tt.bg})
		if err != nil {
			t.Fatal(err)
		}
		if got := rgbAt(decode(t, r.Data), 50, 3); !near(got, tt.want, 10) {
			t.Errorf("contain padding with background %v: %v, want %v", tt.bg, got, tt.want)
		}
	}
}

func TestHostileInput(t *testing.T) {
	p := newTestProcessor(t, nil)
	jpg := readTestdata(t, "ladybird.jpg")
	tests := []struct {
		name string
		in   []byte
		o    Options
		want error
	}{
		{"empty", nil, Options{}, ErrUnsupported},
		{"text named .jpg", []byte("this is not a photo, just text in a file called photo.jpg"), Options{}, ErrUnsupported},
		{"html", []byte("<!doctype html><html><body>hi</body></html>"), Options{}, ErrUnsupported},
		{"truncated jpeg", jpg[:len(jpg)/2], Options{Width: 100}, ErrUndecodable},
		{"jpeg header only", jpg[:600], Options{}, ErrUndecodable},
		{"pixel flood png", readTestdata(t, "flood.png"), Options{Width: 100}, ErrTooLarge},
		{"svg while disabled", []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>`), Options{}, ErrUnsupported},
		{"pdf while disabled", []byte("%PDF-1.4\n1 0 obj<<>>endobj\n"), Options{}, ErrUnsupported},
		{"enlarge past max dimension", encodeJPEG(t, quadrants(10, 1000)), Options{Width: 8000, Enlarge: true}, ErrTooLarge},
		{"jpeg magic then garbage", append([]byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10}, bytes.Repeat([]byte{0xAB}, 5000)...), Options{}, ErrUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := p.Process(t.Context(), tt.in, tt.o)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			t.Logf("%v in %v", err, time.Since(start))
		})
	}
}

func TestFormatsAreConfigurable(t *testing.T) {
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="red"/></svg>`)
	p := newTestProcessor(t, func(c *Config) { c.Formats = []Format{FormatSVG} })
	r, err := p.Process(t.Context(), svg, Options{Width: 80, Enlarge: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format != FormatPNG || r.Width != 80 || r.Height != 40 {
		t.Fatalf("svg gave %v %dx%d, want png 80x40", r.Format, r.Width, r.Height)
	}
	if _, err := p.Process(t.Context(), encodeJPEG(t, quadrants(8, 8)), Options{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("jpeg with only svg enabled: err = %v, want ErrUnsupported", err)
	}
}

func TestBusyAndTimeout(t *testing.T) {
	in := readTestdata(t, "ladybird.jpg")
	p := newTestProcessor(t, func(c *Config) { c.Concurrency, c.QueueSize, c.QueueTimeout = 1, 0, 10*time.Millisecond })
	release, err := p.Gate().Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Process(t.Context(), in, Options{Width: 10}); !errors.Is(err, ErrBusy) {
		t.Fatalf("with the only slot taken: err = %v, want ErrBusy", err)
	}
	release()

	p = newTestProcessor(t, func(c *Config) { c.Timeout = time.Millisecond })
	_, err = p.Process(t.Context(), in, Options{Width: 2000, Format: FormatAVIF})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}

	// A caller that goes away stops the work too.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(5 * time.Millisecond); cancel() }()
	p = newTestProcessor(t, nil)
	_, err = p.Process(ctx, in, Options{Width: 2000, Format: FormatAVIF})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrBusy) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Concurrency, c.QueueSize, c.QueueTimeout = 2, 16, 30*time.Second })
	in := readTestdata(t, "ladybird.jpg")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := p.Process(context.Background(), in, Options{Width: 100 + i})
			if err == nil && r.Width != 100+i {
				err = errors.New("wrong width")
			}
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// loaderOf opens b the way libvips does when nobody names a loader and
// returns the loader used.
func loaderOf(b []byte) (string, error) {
	in := newCbuf(len(b))
	defer in.free()
	copy(in.bytes(), b)
	h, err := vipsHeader(in)
	return h.loader, err
}

func TestLoadersBlocked(t *testing.T) {
	if err := vipsInit(DefaultInputFormats, 0); err != nil { // as a worker starts
		t.Fatal(err)
	}
	if got, err := loaderOf(encodeJPEG(t, quadrants(8, 8))); err != nil || got != "jpegload_buffer" {
		t.Fatalf("jpeg: loader %q, err %v; want jpegload_buffer", got, err)
	}
	loadable := map[string][]byte{
		"ppm":      []byte("P6\n2 2\n255\n" + strings.Repeat("\x00", 12)),
		"matrix":   []byte("2 2\n1 2\n3 4\n"),
		"vips":     append([]byte{0x08, 0xf2, 0xa6, 0xb6}, make([]byte, 64)...),
		"bmp":      bmp2x2(),
		"psd":      append([]byte("8BPS\x00\x01"), make([]byte, 64)...),
		"svg":      []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>`),
		"pdf":      []byte("%PDF-1.4\n"),
		"fits":     []byte("SIMPLE  =                    T"),
		"radiance": []byte("#?RADIANCE\n"),
		"csv-ish":  []byte("1,2,3\n4,5,6\n"),
		"tiff":     tiff2x2(),
	}
	for name, b := range loadable {
		if got, err := loaderOf(b); err == nil {
			t.Errorf("%s: libvips loaded it with %s; want every such loader blocked", name, got)
		}
	}
	// The same bytes do load once the block is lifted, so it is the block
	// that refused them above.
	setBlock("VipsForeignLoad", false)
	defer func() {
		if err := vipsInit(DefaultInputFormats, 0); err != nil {
			t.Fatal(err)
		}
	}()
	for _, name := range []string{"ppm", "svg", "bmp", "tiff"} {
		if _, err := loaderOf(loadable[name]); err != nil {
			t.Errorf("%s: does not load even unblocked (%v): the test proves nothing", name, err)
		}
	}
}

// tiff2x2 is a valid 2x2 8-bit grey TIFF.
func tiff2x2() []byte {
	b := []byte("II*\x00\x08\x00\x00\x00")
	entries := [][3]uint32{{256, 3, 2}, {257, 3, 2}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 122}, {277, 3, 1}, {278, 3, 2}, {279, 4, 4}}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
	for _, e := range entries {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, 1)
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	b = binary.LittleEndian.AppendUint32(b, 0)
	return append(b, 10, 20, 30, 40)
}

// bmp2x2 is a valid 2x2 24-bit BMP, which only ImageMagick would read.
func bmp2x2() []byte {
	b := make([]byte, 70)
	copy(b, "BM")
	binary.LittleEndian.PutUint32(b[2:], 70)  // file size
	binary.LittleEndian.PutUint32(b[10:], 54) // pixel data offset
	binary.LittleEndian.PutUint32(b[14:], 40) // info header size
	binary.LittleEndian.PutUint32(b[18:], 2)  // width
	binary.LittleEndian.PutUint32(b[22:], 2)  // height
	binary.LittleEndian.PutUint16(b[26:], 1)  // planes
	binary.LittleEndian.PutUint16(b[28:], 24) // bits per pixel
	binary.LittleEndian.PutUint32(b[34:], 16) // image size
	return b
}
