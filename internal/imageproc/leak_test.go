package imageproc

import (
	"bytes"
	"math"
	"runtime"
	"testing"

	"github.com/h2non/bimg"

	"github.com/resizer/resizer/internal/imagetest"
)

// cGrowth runs fn after a long warm-up (libvips and glibc fill per-thread
// caches at first), then in three rounds of n runs, and returns the least
// growth of the C heap per run that a round saw. A leak grows the heap in
// every round; a cache or arena that fills once, late, shows in one round
// only, and a single window took it for a leak of a few hundred bytes a
// run. A leak of a C string per EXIF tag is thousands.
func cGrowth(t *testing.T, n int, fn func()) float64 {
	t.Helper()
	if mallocInUse() < 0 {
		t.Skip("no mallinfo2 here (not glibc)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < 100; i++ {
		fn()
	}
	least := math.Inf(1)
	for round := 0; round < 3; round++ {
		before := mallocInUse()
		for i := 0; i < n; i++ {
			fn()
		}
		g := float64(mallocInUse()-before) / float64(n)
		t.Logf("round %d: %.0f bytes a run", round, g)
		least = min(least, g)
	}
	return least
}

// unbounded are limits that no test image reaches, for tests of libvips'
// own behaviour.
var unbounded = limits{MaxPixels: 1 << 40, MaxOutputPixels: 1 << 40, MaxDimension: 8192, MaxFrames: 1 << 20, MaxAnimationPixels: 1 << 40}

// cInput is a cleaned file in C memory, as a worker reads it from its
// pipe; the caller frees it.
func cInput(c cleaned) cbuf {
	in := newCbuf(c.size)
	n := 0
	for _, p := range c.parts {
		n += copy(in.bytes()[n:], p)
	}
	return in
}

// inProcess runs a worker's render on this very thread, for tests that
// measure libvips' own behaviour (a worker's C heap, its loader blocks);
// the outputs' bytes are freed, the rest of their description stays.
func inProcess(t testing.TB, b []byte, opts ...Options) ([]rendered, error) {
	t.Helper()
	return renderHere(t, b, false, opts)
}

// renderHere is a worker's job for b, made as the processor makes it and
// rendered on this thread; with keep, the outputs' bytes are copied to Go
// memory before libvips' are freed.
func renderHere(t testing.TB, b []byte, keep bool, opts []Options) ([]rendered, error) {
	t.Helper()
	f := Sniff(b)
	st, _, err := readHeader(f, b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := clean(f, b)
	if err != nil {
		t.Fatal(err)
	}
	in := cInput(c)
	defer in.free()
	j := job{Header: Header{Format: f, Width: st.w, Height: st.h, Orientation: c.orientation}, Outputs: opts,
		Limits: unbounded, Rights: jobRights(opts, f, c.rights, b)}
	_, outs, err := render(in, j)
	for i, o := range outs {
		if keep {
			outs[i].data = bytes.Join(o.parts, nil)
		}
		freeC(o.data)
	}
	return outs, err
}

// The C heap does not grow with the number of images processed. (bimg's
// Metadata and its EXIF-driven auto-rotation leak a few KB an image; the
// service uses neither. A soak found the leak: RSS up by 58 MB over 26,000
// requests.) A worker's work is measured in this process, on the measuring
// thread itself: a goroutine per call would add Go's thread churn (each new
// thread's malloc cache) to the count.
func TestNoCLeakPerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	if err := vipsInit(DefaultInputFormats, 0); err != nil {
		t.Fatal(err)
	}
	jpg := withOrientation(encodeJPEG(t, quadrants(300, 200)), 6)
	pngb := encodePNG(t, quadrants(300, 200))
	cases := map[string]func(){
		"resize rotated jpeg": func() { inProcess(t, jpg, Options{Width: 100}) },
		"resize png to webp": func() {
			inProcess(t, pngb, Options{Width: 120, Height: 50, Fit: FitCover, Format: FormatWebP})
		},
		"variants": func() {
			inProcess(t, jpg, Options{Width: 100}, Options{Width: 50, Height: 50, Fit: FitCover}, Options{Width: 30})
		},
	}
	// max_bytes (a search, and one that fails) and keep (the profile and
	// the rights written into the file).
	photo := imagetest.JPEG(encodeJPEG(t, quadrants(300, 200)), 6, imagetest.JPEGICC(readTestdata(t, "p3.jpg")))
	fine, err := inProcessKeep(t, photo, Options{Width: 150, Format: FormatWebP, Quality: 100})
	if err != nil {
		t.Fatal(err)
	}
	cases["max_bytes search"] = func() {
		inProcessKeep(t, photo, Options{Width: 150, Format: FormatWebP, Quality: 100, MaxBytes: len(fine[0].data) - 1})
	}
	cases["max_bytes unmet"] = func() { inProcessKeep(t, photo, Options{Width: 150, Format: FormatJPEG, MaxBytes: 10}) }
	cases["keep"] = func() {
		inProcessKeep(t, photo, Options{Width: 100, Keep: KeepICC}, Options{Width: 80, Format: FormatAVIF, Keep: KeepCopyright},
			Options{Width: 60, Format: FormatPNG})
	}
	// An animation, every frame made: turned by its EXIF orientation,
	// trimmed over all its frames, cut where the attention search puts
	// it in the first.
	animGIF := animatedGIF(t, 4, 60, 30, rgbPalette, []int{10, 20})
	animWebP, err := inProcessKeep(t, animGIF, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	turned := withWebPExif(animWebP[0].data, imagetest.Exif(6))
	trim := 10.0
	cases["animation"] = func() {
		inProcess(t, turned, Options{Width: 20, Format: FormatGIF}, Options{Width: 20, Height: 20, Fit: FitCover, Gravity: GravitySmart},
			Options{Trim: &trim, Format: FormatGIF, Pad: [4]int{1, 2, 3, 4}})
	}
	for name, fn := range cases {
		g := cGrowth(t, 150, fn)
		t.Logf("%s: %.0f bytes an image", name, g)
		if g > 800 {
			t.Errorf("%s: the C heap grows by %.0f bytes an image", name, g)
		}
	}
	// The test can see a leak: bimg.Metadata has one.
	if g := cGrowth(t, 150, func() { bimg.Metadata(jpg) }); g < 1500 {
		t.Errorf("bimg.Metadata grew the C heap by only %.0f bytes a call: the measure is blind", g)
	}
}

// No libvips operation is ever cached, so two requests can never share
// the images of an operation with equal arguments.
func TestOperationCacheOff(t *testing.T) {
	if err := vipsInit(DefaultInputFormats, 0); err != nil { // as a worker starts
		t.Fatal(err)
	}
	for _, op := range []string{"jpegload_buffer", "pngload_buffer", "webpload_buffer", "tiffload_buffer",
		"reduce", "shrink", "resize", "embed", "extract_area", "smartcrop", "colourspace", "icc_transform", "flatten",
		"rot", "flip", "affine", "jpegsave_buffer", "pngsave_buffer", "webpsave_buffer", "heifsave_buffer"} {
		if operationCached(op) {
			t.Errorf("%s is cacheable", op)
		}
	}
}
