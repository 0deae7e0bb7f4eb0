package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
)

// animatedGIF is n frames of w x h, frame i coloured palette[i%len], each
// shown for delays[i%len] hundredths of a second.
func animatedGIF(t testing.TB, n, w, h int, palette color.Palette, delays []int) []byte {
	t.Helper()
	anim := &gif.GIF{LoopCount: 0}
	for i := 0; i < n; i++ {
		fr := image.NewPaletted(image.Rect(0, 0, w, h), palette)
		for j := range fr.Pix {
			fr.Pix[j] = uint8(i % len(palette))
		}
		anim.Image = append(anim.Image, fr)
		anim.Delay = append(anim.Delay, delays[i%len(delays)])
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

var rgbPalette = color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}}

// webpFrameDurations reads the duration (ms) of each ANMF chunk of an
// animated WebP.
func webpFrameDurations(t *testing.T, b []byte) []int {
	t.Helper()
	var d []int
	eachANMF(t, b, func(p []byte) { d = append(d, int(p[12])|int(p[13])<<8|int(p[14])<<16) })
	return d
}

// eachANMF calls fn with the payload of each ANMF chunk (a frame) of the
// animated WebP b, in order; the payload is b's own bytes.
func eachANMF(t *testing.T, b []byte, fn func(payload []byte)) {
	t.Helper()
	err := eachWebPChunk(b, len(b), func(fourcc, payload []byte, _, _ int) {
		if string(fourcc) == "ANMF" {
			fn(payload)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// An animated GIF stays animated: every frame resized, in order, with its
// delay, as GIF (the same frame count) or WebP (the same total duration:
// libwebp merges identical frames); animated=false and the formats that
// cannot animate take the first frame; format=auto picks WebP over AVIF
// for it.
func TestAnimation(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := animatedGIF(t, 12, 90, 60, rgbPalette, []int{10, 20, 30})

	r, err := p.Process(t.Context(), in, Options{Width: 45})
	if err != nil {
		t.Fatal(err)
	}
	out, err := gif.DecodeAll(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Image) != 12 || r.Format != FormatGIF || r.Width != 45 || r.Height != 30 {
		t.Fatalf("GIF: %d frames, %v %dx%d; want 12 frames, gif 45x30", len(out.Image), r.Format, r.Width, r.Height)
	}
	for i, fr := range out.Image {
		if b := fr.Bounds(); b.Dx() > 45 || b.Dy() > 30 {
			t.Errorf("frame %d: %v", i, b)
		}
		want := rgbPalette[i%3].(color.RGBA)
		if got := rgbAt(fr, fr.Bounds().Dx()/2, fr.Bounds().Dy()/2); !near(got, [4]uint8{want.R, want.G, want.B, 255}, 40) {
			t.Errorf("frame %d: %v, want %v", i, got, want)
		}
		if out.Delay[i] != []int{10, 20, 30}[i%3] {
			t.Errorf("frame %d: delay %d, want %d", i, out.Delay[i], []int{10, 20, 30}[i%3])
		}
	}

	r, err = p.Process(t.Context(), in, Options{Width: 45, Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, d := range webpFrameDurations(t, r.Data) {
		total += d
	}
	if total != 12/3*(100+200+300) {
		t.Errorf("WebP: total duration %d ms, want %d", total, 12/3*600)
	}

	for name, o := range map[string]Options{
		"animated=false": {Width: 45, Still: true},
		"avif":           {Width: 45, Format: FormatAVIF},
		"png":            {Width: 45, Format: FormatPNG},
		"jpeg":           {Width: 45, Format: FormatJPEG},
	} {
		r, err := p.Process(t.Context(), in, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if o.Format == FormatAVIF {
			continue // no decoder here: that it is made, one frame, is enough
		}
		if g, err := gif.DecodeAll(bytes.NewReader(r.Data)); err == nil && len(g.Image) != 1 {
			t.Errorf("%s: %d frames", name, len(g.Image))
		}
		img := decode(t, r.Data)
		if b := img.Bounds(); b.Dx() != 45 || b.Dy() != 30 || !near(rgbAt(img, 20, 15), [4]uint8{255, 0, 0, 255}, 40) {
			t.Errorf("%s: %v %v, want the first frame, red, 45x30", name, b, rgbAt(img, 20, 15))
		}
	}

	r, err = p.Process(t.Context(), in, Options{Width: 45, Prefer: []Format{FormatAVIF, FormatWebP}})
	if err != nil || r.Format != FormatWebP || len(webpFrameDurations(t, r.Data)) == 0 {
		t.Errorf("auto (AVIF, WebP) for an animation: %v %v, want animated WebP", r.Format, err)
	}
	r, err = p.Process(t.Context(), encodePNG(t, quadrants(8, 8)), Options{Prefer: []Format{FormatAVIF, FormatWebP}})
	if err != nil || r.Format != FormatAVIF {
		t.Errorf("auto (AVIF, WebP) for a still: %v %v, want AVIF", r.Format, err)
	}
}

// The steps of one image apply to every frame: a crop and a quarter turn.
func TestAnimationSteps(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := animatedGIF(t, 4, 80, 40, rgbPalette, []int{5})
	r, err := p.Process(t.Context(), in, Options{Crop: &Region{0, 0, 40, 40}, Rotate: 90, Pad: [4]int{2, 2, 2, 2}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := gif.DecodeAll(bytes.NewReader(r.Data))
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Image) != 4 || out.Config.Width != 44 || out.Config.Height != 44 {
		t.Fatalf("%d frames of %dx%d, want 4 of 44x44", len(out.Image), out.Config.Width, out.Config.Height)
	}
}

// Animations that stay animated are bounded in frames and in pixels
// before decoding; the first frame alone is not.
func TestAnimationLimits(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.MaxFrames, c.MaxAnimationPixels = 10, 1_000_000 })
	long := animatedGIF(t, 11, 16, 16, rgbPalette, []int{1})
	if _, err := p.Process(t.Context(), long, Options{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("11 frames over 10: err = %v, want ErrTooLarge", err)
	}
	if _, err := p.Process(t.Context(), long, Options{Still: true}); err != nil {
		t.Errorf("11 frames, animated=false: %v", err)
	}
	if _, err := p.Process(t.Context(), long, Options{Format: FormatPNG}); err != nil {
		t.Errorf("11 frames to PNG (a still): %v", err)
	}
	big := animatedGIF(t, 5, 500, 500, rgbPalette, []int{1}) // 1.25 M pixels in all
	if _, err := p.Process(t.Context(), big, Options{Width: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("5 frames of 500x500 over 1 M pixels: err = %v, want ErrTooLarge", err)
	}
	if n, err := frameCount(FormatGIF, long); n != 11 || err != nil {
		t.Errorf("frameCount = %d, %v; want 11, nil", n, err)
	}
}

// An animation cut in a frame after its first is refused while it would
// stay animated (libvips' GIF loader shows the cut frame as the screen the
// frames before left, without an error), and served as a still, whose one
// frame is whole.
func TestAnimationCutInAFrame(t *testing.T) {
	p := newTestProcessor(t, nil)
	whole := animatedGIF(t, 3, 16, 16, rgbPalette, []int{10})
	cut := whole[:len(whole)-8] // inside the third frame's data
	if n, err := frameCount(FormatGIF, whole); n != 3 || err != nil {
		t.Errorf("whole: frameCount = %d, %v; want 3, nil", n, err)
	}
	if n, err := frameCount(FormatGIF, cut); n != 3 || !errors.Is(err, ErrUndecodable) {
		t.Errorf("cut: frameCount = %d, %v; want 3, ErrUndecodable", n, err)
	}
	for _, o := range []Options{{}, {Format: FormatWebP}} {
		if _, err := p.Process(t.Context(), cut, o); !errors.Is(err, ErrUndecodable) {
			t.Errorf("cut, to %v: err = %v, want ErrUndecodable", o.Format, err)
		}
	}
	for _, o := range []Options{{Still: true}, {Format: FormatPNG}} {
		if _, err := p.Process(t.Context(), cut, o); err != nil {
			t.Errorf("cut, as a still (%v): %v", o.Format, err)
		}
	}
}

// withWebPExif returns the animated WebP b with an EXIF chunk (its VP8X
// flag set) appended.
func withWebPExif(b, exif []byte) []byte {
	b = append([]byte(nil), b...)
	b[20] |= 0x08
	b = binary.LittleEndian.AppendUint32(append(b, "EXIF"...), uint32(len(exif)))
	b = append(b, exif...)
	if len(exif)%2 == 1 {
		b = append(b, 0)
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)-8))
	return b
}

// An animated WebP carrying an EXIF orientation comes out upright, of the
// promised size, for every orientation and random combinations of the
// steps, and its first frame is the still made of the same options
// (animated=false). Frames twice as wide as they are tall, turned by a
// quarter, were scaled by libvips as two pages each: a 500.
func TestAnimationOrientationProperty(t *testing.T) {
	p := newTestProcessor(t, nil)
	const sw, sh = 80, 40
	pal := color.Palette{color.RGBA{220, 30, 30, 255}, color.RGBA{30, 200, 30, 255}, color.RGBA{30, 30, 220, 255}, color.RGBA{240, 240, 40, 255}}
	anim := &gif.GIF{}
	for i := 0; i < 3; i++ {
		fr := image.NewPaletted(image.Rect(0, 0, sw, sh), pal)
		for y := 0; y < sh; y++ {
			for x := 0; x < sw; x++ {
				fr.SetColorIndex(x, y, uint8(2*(2*y/sh)+2*x/sw)) // quadrants
			}
		}
		for y := 4; y < 14; y++ { // a yellow square moving right
			for x := 4 + 24*i; x < 14+24*i; x++ {
				fr.SetColorIndex(x, y, 3)
			}
		}
		anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 10*(i+1))
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	webpAnim, err := p.Process(t.Context(), b.Bytes(), Options{Format: FormatWebP, Quality: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(webpFrameDurations(t, webpAnim.Data)); n != 3 {
		t.Fatalf("the WebP made of 3 frames has %d", n)
	}
	r := rand.New(rand.NewPCG(41, 43))
	firstFrame := func(data []byte) image.Image {
		res, err := p.Process(t.Context(), data, Options{Still: true, Format: FormatPNG})
		if err != nil {
			t.Fatal(err)
		}
		return decode(t, res.Data)
	}
	checked := 0
	for o := 1; o <= 8; o++ {
		in := withWebPExif(webpAnim.Data, imagetest.Exif(o))
		uw, uh := upright(sw, sh, o)
		for range 5 {
			opt := randomOptions(r, uw, uh, []Format{FormatGIF, FormatWebP})
			opt.Blur, opt.Sharpen = 0, 0
			if opt.Gravity == GravitySmart {
				opt.Gravity = GravityCenter // its own test: TestAnimationSmartCrop
			}
			w, h, ok := promisedSteps(uw, uh, opt)
			what := fmt.Sprintf("orientation %d, %s", o, opt.Canonical())
			res, err := p.Process(t.Context(), in, opt)
			if !ok {
				if !errors.Is(err, ErrBadOption) {
					t.Errorf("%s: %v, want ErrBadOption", what, err)
				}
				continue
			}
			if int64(w)*int64(h)*3 > p.cfg.MaxAnimationPixels || (w > uw || h > uh) && max(w, h) > p.cfg.MaxDimension {
				if !errors.Is(err, ErrTooLarge) {
					t.Errorf("%s: promised %dx%d is over the limits: %v", what, w, h, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", what, err)
				continue
			}
			if res.Width != w || res.Height != h {
				t.Errorf("%s: %dx%d, promised %dx%d", what, res.Width, res.Height, w, h)
				continue
			}
			still := opt
			still.Still = true
			want, err := p.Process(t.Context(), in, still)
			if err != nil {
				t.Fatalf("%s, animated=false: %v", what, err)
			}
			if d := meanAbsDiff(firstFrame(res.Data), firstFrame(want.Data)); d > 20 { // lossy noise in a few hundred pixels: 13; turned wrong: 36 to 137
				t.Errorf("%s: the first frame differs from the still by %.1f a sample", what, d)
			}
			checked++
		}
	}
	t.Logf("%d animations checked", checked)
}

// gifScreens decodes an animated GIF into the screens a viewer shows, one
// per frame: each frame drawn over what the ones before left, as their
// disposal says.
func gifScreens(t *testing.T, b []byte) []*image.RGBA {
	t.Helper()
	g, err := gif.DecodeAll(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	bounds := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	screen := image.NewRGBA(bounds)
	var out []*image.RGBA
	for i, fr := range g.Image {
		before := image.NewRGBA(bounds)
		draw.Draw(before, bounds, screen, image.Point{}, draw.Src)
		draw.Draw(screen, fr.Bounds(), fr, fr.Bounds().Min, draw.Over)
		shown := image.NewRGBA(bounds)
		draw.Draw(shown, bounds, screen, image.Point{}, draw.Src)
		out = append(out, shown)
		switch g.Disposal[i] {
		case gif.DisposalBackground:
			draw.Draw(screen, fr.Bounds(), image.Transparent, image.Point{}, draw.Src)
		case gif.DisposalPrevious:
			screen = before
		}
	}
	return out
}

// gravity=smart cuts every frame of an animation at one place, the place
// libvips' attention search chooses in the first frame (as animated=false
// does): over a still background, a square moving across random frames
// of random animations and covers, the background shows in every frame of
// the output as it does in the first. Searched frame by frame, the cut
// followed the square, and the background jumped from frame to frame.
func TestAnimationSmartCrop(t *testing.T) {
	p := newTestProcessor(t, nil)
	r := rand.New(rand.NewPCG(47, 53))
	pal := color.Palette{}
	for i := 0; i < 200; i++ {
		pal = append(pal, color.RGBA{uint8(i), uint8(i), uint8(i), 255})
	}
	pal = append(pal, color.RGBA{255, 0, 0, 255})
	for round := range 6 {
		w, h, n := 120+r.IntN(200), 40+r.IntN(40), 3+r.IntN(4)
		anim := &gif.GIF{}
		for i := 0; i < n; i++ {
			fr := image.NewPaletted(image.Rect(0, 0, w, h), pal)
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					fr.SetColorIndex(x, y, uint8(x*199/(w-1))) // a still ramp
				}
			}
			sx, sy := r.IntN(w-12), 10+r.IntN(h-22) // a red square, never in the top rows
			for y := sy; y < sy+12; y++ {
				for x := sx; x < sx+12; x++ {
					fr.SetColorIndex(x, y, 200)
				}
			}
			anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 10)
		}
		var b bytes.Buffer
		if err := gif.EncodeAll(&b, anim); err != nil {
			t.Fatal(err)
		}
		box := 20 + r.IntN(h-20)
		o := Options{Width: box, Height: box, Fit: FitCover, Gravity: GravitySmart, Format: FormatGIF}
		res, err := p.Process(t.Context(), b.Bytes(), o)
		if err != nil {
			t.Fatal(err)
		}
		screens := gifScreens(t, res.Data)
		if len(screens) != n {
			t.Fatalf("round %d: %d frames, want %d", round, len(screens), n)
		}
		for i, sc := range screens[1:] {
			for x := 0; x < box; x++ {
				if a, b := rgbAt(screens[0], x, 1), rgbAt(sc, x, 1); !near(a, b, 24) {
					t.Errorf("round %d (%dx%d, %s): frame %d's background at x=%d is %v, the first's %v: cut elsewhere",
						round, w, h, o.Canonical(), i+1, x, b, a)
					break
				}
			}
		}
		o.Still = true
		still, err := p.Process(t.Context(), b.Bytes(), o)
		if err != nil {
			t.Fatal(err)
		}
		if d := meanAbsDiff(screens[0], decode(t, still.Data)); d > 8 {
			t.Errorf("round %d: the first frame differs from animated=false's by %.1f a sample", round, d)
		}
	}
}

// trim cuts the border that every frame of an animation has, not the first
// frame's alone: over random animations of a square moving on a uniform
// ground, the output is the box every square fits in, and every frame
// shows its whole square. Trimmed as its first frame was, the animation
// was cut to the first square, and the others left the picture.
func TestAnimationTrim(t *testing.T) {
	p := newTestProcessor(t, nil)
	r := rand.New(rand.NewPCG(59, 61))
	pal := color.Palette{color.RGBA{250, 250, 250, 255}, color.RGBA{20, 20, 20, 255}}
	for round := range 8 {
		w, h, n, side := 60+r.IntN(100), 40+r.IntN(60), 2+r.IntN(4), 4+r.IntN(8)
		anim := &gif.GIF{}
		box := image.Rectangle{}
		for i := 0; i < n; i++ {
			fr := image.NewPaletted(image.Rect(0, 0, w, h), pal)
			sq := image.Rect(0, 0, side, side).Add(image.Pt(1+r.IntN(w-side-1), 1+r.IntN(h-side-1)))
			draw.Draw(fr, sq, image.NewUniform(pal[1]), image.Point{}, draw.Src)
			box = box.Union(sq)
			anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 10)
		}
		var b bytes.Buffer
		if err := gif.EncodeAll(&b, anim); err != nil {
			t.Fatal(err)
		}
		th := 10.0
		res, err := p.Process(t.Context(), b.Bytes(), Options{Trim: &th, Format: FormatGIF})
		if err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("round %d: %d squares of %d in %dx%d", round, n, side, w, h)
		if res.Width != box.Dx() || res.Height != box.Dy() {
			t.Errorf("%s: trimmed to %dx%d, want %v, the box of every square", what, res.Width, res.Height, box)
			continue
		}
		for i, sc := range gifScreens(t, res.Data) {
			dark := 0
			for y := 0; y < res.Height; y++ {
				for x := 0; x < res.Width; x++ {
					if rgbAt(sc, x, y)[0] < 128 {
						dark++
					}
				}
			}
			if dark != side*side {
				t.Errorf("%s: frame %d shows %d pixels of its square, want %d", what, i, dark, side*side)
			}
		}
	}
}

// gifDescriptor returns the index of frame k's image descriptor (from 0)
// in the GIF b.
func gifDescriptor(t *testing.T, b []byte, k int) int {
	t.Helper()
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (int(b[10]&7) + 1)
	}
	for n := 0; i < len(b); {
		switch b[i] {
		case 0x21:
			j, err := skipSubBlocks(b, i+2)
			if err != nil {
				t.Fatal(err)
			}
			i = j
		case 0x2C:
			if n == k {
				return i
			}
			n++
			j := i + 10
			if b[i+9]&0x80 != 0 {
				j += 3 << (int(b[i+9]&7) + 1)
			}
			j, err := skipSubBlocks(b, j+1)
			if err != nil {
				t.Fatal(err)
			}
			i = j
		default:
			t.Fatalf("no frame %d", k)
		}
	}
	t.Fatalf("no frame %d", k)
	return 0
}

// An animation with a frame libvips cannot decode (an LZW code size of 12,
// over the 11 GIF's codes can have) is refused while it would stay
// animated, whichever frame it is, and served as a still (its first frame,
// whole) with animated=false. libvips' GIF loader stopped at the frame
// without an error, and the animation came out shorter: one frame where
// the file has five, a still GIF in place of an animation.
func TestAnimationUndecodableFrame(t *testing.T) {
	p := newTestProcessor(t, nil)
	const n = 5
	whole := animatedGIF(t, n, 40, 30, rgbPalette, []int{10, 20})
	for k := 1; k < n; k++ {
		in := bytes.Clone(whole)
		at := gifDescriptor(t, in, k) + 10 // the LZW minimum code size, after any local palette
		if flags := in[at-1]; flags&0x80 != 0 {
			at += 3 << (int(flags&7) + 1)
		}
		in[at] = 12
		if c, err := frameCount(FormatGIF, in); c != n || err != nil {
			t.Fatalf("frame %d broken: frameCount = %d, %v; want %d, nil (its blocks are whole)", k, c, err, n)
		}
		for _, o := range []Options{{}, {Format: FormatWebP}, {Width: 20, Format: FormatGIF}} {
			if r, err := p.Process(t.Context(), in, o); !errors.Is(err, ErrUndecodable) {
				frames := 0
				if r != nil {
					if g, err := gif.DecodeAll(bytes.NewReader(r.Data)); err == nil {
						frames = len(g.Image)
					}
				}
				t.Errorf("frame %d of %d broken, %s: %v (%d frames), want ErrUndecodable", k+1, n, o.Canonical(), err, frames)
			}
		}
		for _, o := range []Options{{Still: true}, {Format: FormatPNG}} {
			r, err := p.Process(t.Context(), in, o)
			if err != nil {
				t.Errorf("frame %d broken, as a still (%s): %v", k+1, o.Canonical(), err)
				continue
			}
			if c := rgbAt(decode(t, r.Data), 20, 15); !near(c, [4]uint8{255, 0, 0, 255}, 40) {
				t.Errorf("frame %d broken, as a still (%s): %v, want the first frame, red", k+1, o.Canonical(), c)
			}
		}
	}
}

// manyFramesWebP is an animated WebP of n frames of one pixel each, made of
// the one-pixel WebP still.
func manyFramesWebP(t testing.TB, still []byte, n int) []byte {
	t.Helper()
	var img []byte // the still's image chunk (VP8 or VP8L), whole
	for i := 12; i+8 <= len(still); {
		size := int(binary.LittleEndian.Uint32(still[i+4:]))
		if c := string(still[i : i+4]); c == "VP8 " || c == "VP8L" {
			img = still[i : i+8+size+size&1]
		}
		i += 8 + size + size&1
	}
	if img == nil {
		t.Fatalf("no image chunk in %q", still[:min(len(still), 40)])
	}
	chunk := func(fourcc string, data []byte) []byte {
		c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
		c = append(c, data...)
		if len(data)%2 == 1 {
			c = append(c, 0)
		}
		return c
	}
	// At 0,0, 1x1 (stored minus one), 1 ms, no blending.
	frame := chunk("ANMF", append([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0x02}, img...))
	body := bytes.NewBufferString("WEBP")
	body.Write(chunk("VP8X", []byte{0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0}))
	body.Write(chunk("ANIM", []byte{0, 0, 0, 0, 0, 0}))
	body.Write(bytes.Repeat(frame, n))
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(body.Len()))...), body.Bytes()...)
}

// An animated WebP of very many frames is refused before a slot is taken,
// whatever the output: libvips reads every frame's delay in its header,
// through libwebp's demuxer, which finds each frame by walking the list
// from the first, so the header alone takes time quadratic in the frames
// (40,000 one-pixel frames, 1.8 MB: 4.7 s; 150,000 in 6.9 MB held a slot
// until PROCESS_TIMEOUT and were answered 503, to be retried), even for a
// still output, which MAX_FRAMES does not bound.
func TestWebPFramesBoundedForStills(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = 5 * time.Second })
	px := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	px.Pix = []byte{200, 0, 0, 255}
	still, err := p.Process(t.Context(), encodePNG(t, px), Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	bomb := manyFramesWebP(t, still.Data, 80_000)
	if n, err := frameCount(FormatWebP, bomb); n != 80_000 || err != nil {
		t.Fatalf("frameCount = %d, %v", n, err)
	}
	for name, o := range map[string]Options{"animated=false": {Still: true}, "jpeg": {Format: FormatJPEG, Width: 10},
		"png": {Format: FormatPNG}, "animated": {}} {
		start := time.Now()
		_, err := p.Process(t.Context(), bomb, o)
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("80,000 frames, %s: %v after %s, want ErrTooLarge", name, err, time.Since(start).Round(time.Millisecond))
		}
	}
	// An animation of a length real ones have is still served as a still.
	r, err := p.Process(t.Context(), manyFramesWebP(t, still.Data, maxWebPFrames), Options{Still: true, Format: FormatPNG})
	if err != nil || r.Width != 1 {
		t.Fatalf("%d frames as a still: %v", maxWebPFrames, err)
	}
}

// withWebPDurations returns the animated WebP b with its frames' durations
// (ms) set to d, in turn.
func withWebPDurations(t *testing.T, b []byte, d []int) []byte {
	t.Helper()
	b = append([]byte(nil), b...)
	k := 0
	eachANMF(t, b, func(p []byte) {
		v := d[k%len(d)]
		p[12], p[13], p[14] = byte(v), byte(v>>8), byte(v>>16)
		k++
	})
	return b
}

// webpLoopCount reads the loop count of an animated WebP's ANIM chunk (0:
// forever), or -1 when it has none.
func webpLoopCount(t *testing.T, b []byte) int {
	t.Helper()
	n := -1
	err := eachWebPChunk(b, len(b), func(fourcc, payload []byte, _, _ int) {
		if string(fourcc) == "ANIM" && len(payload) >= 6 && n < 0 {
			n = int(binary.LittleEndian.Uint16(payload[4:]))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The timing of an animation survives every way between GIF and WebP: the
// loop count (a GIF's counts the plays after the first, a WebP's every
// play, 0 forever in both, and a GIF without one plays once), each frame's
// delay, and a WebP frame longer than the 655.35 s a GIF delay can hold
// comes out as long as a GIF can show it. libvips' GIF saver wrote such a
// delay modulo 65,536 hundredths: a frame of 655.36 s came out with no
// delay, which browsers show for 0.1 s, and one of 1,000 s lasted 344.64 s.
// A frame just over 10 ms becomes 20 ms, not 10 ms, which browsers slow to
// 100 ms.
func TestAnimationTiming(t *testing.T) {
	p := newTestProcessor(t, nil)
	for _, loop := range []int{-1, 0, 1, 3} {
		in := &gif.GIF{LoopCount: loop}
		for i, d := range []int{2, 5, 10, 70} {
			fr := image.NewPaletted(image.Rect(0, 0, 12, 8), rgbPalette)
			for j := range fr.Pix {
				fr.Pix[j] = uint8(i % 3)
			}
			in.Image, in.Delay = append(in.Image, fr), append(in.Delay, d)
		}
		var b bytes.Buffer
		if err := gif.EncodeAll(&b, in); err != nil {
			t.Fatal(err)
		}
		g, err := p.Process(t.Context(), b.Bytes(), Options{Width: 6})
		if err != nil {
			t.Fatal(err)
		}
		w, err := p.Process(t.Context(), b.Bytes(), Options{Width: 6, Format: FormatWebP})
		if err != nil {
			t.Fatal(err)
		}
		back, err := p.Process(t.Context(), w.Data, Options{Format: FormatGIF})
		if err != nil {
			t.Fatal(err)
		}
		wantWebP := loop + 1 // the plays: 0 (forever) stays 0
		switch loop {
		case -1: // no loop extension: one play
			wantWebP = 1
		case 0:
			wantWebP = 0
		}
		if n := webpLoopCount(t, w.Data); n != wantWebP {
			t.Errorf("GIF loop count %d: the WebP's is %d, want %d", loop, n, wantWebP)
		}
		if d := webpFrameDurations(t, w.Data); fmt.Sprint(d) != "[20 50 100 700]" {
			t.Errorf("GIF loop count %d: WebP durations %v, want [20 50 100 700]", loop, d)
		}
		for name, data := range map[string][]byte{"GIF": g.Data, "GIF from the WebP": back.Data} {
			out, err := gif.DecodeAll(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if out.LoopCount != loop || fmt.Sprint(out.Delay) != "[2 5 10 70]" {
				t.Errorf("GIF loop count %d: %s loop count %d, delays %v, want %d, [2 5 10 70]", loop, name, out.LoopCount, out.Delay, loop)
			}
		}
	}

	webp, err := p.Process(t.Context(), animatedGIF(t, 5, 12, 8, rgbPalette, []int{10}), Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	long := withWebPDurations(t, webp.Data, []int{655_350, 655_355, 655_360, 1_000_000, 16_777_215})
	g, err := p.Process(t.Context(), long, Options{Format: FormatGIF})
	if err != nil {
		t.Fatal(err)
	}
	out, err := gif.DecodeAll(bytes.NewReader(g.Data))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.Delay) != "[65535 65535 65535 65535 65535]" {
		t.Errorf("WebP frames of 655.35 s and more: GIF delays %v, want 65535 each", out.Delay)
	}
	w, err := p.Process(t.Context(), long, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	if d := webpFrameDurations(t, w.Data); fmt.Sprint(d) != "[655350 655355 655360 1000000 16777215]" {
		t.Errorf("WebP frames of 655.35 s and more: WebP durations %v, want them kept", d)
	}

	// Browsers show a frame of 10 ms or less for 100 ms. A WebP frame of
	// 11 to 14 ms is shown for its time, and its GIF frame for 20 ms, the
	// nearest a GIF has: rounded to 1 hundredth, it was shown for 100 ms.
	short := withWebPDurations(t, webp.Data, []int{5, 10, 11, 14, 15})
	if g, err = p.Process(t.Context(), short, Options{Format: FormatGIF}); err != nil {
		t.Fatal(err)
	}
	if out, err = gif.DecodeAll(bytes.NewReader(g.Data)); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(out.Delay) != "[0 1 2 2 2]" {
		t.Errorf("WebP frames of 5, 10, 11, 14 and 15 ms: GIF delays %v, want [0 1 2 2 2]", out.Delay)
	}
}
