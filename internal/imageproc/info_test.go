package imageproc

import (
	"errors"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
)

// The kinds of image whose answer depends on the small decode's own path:
// pages against frames (MAX_FRAMES bounds animations that stay animated,
// not a description), grey and 16-bit pixels made RGBA, no opaque pixel, a
// side that scales to one pixel. (The common kinds are checked over
// HTTP, in internal/httpapi.)
func TestInfoKinds(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = append(slices.Clone(DefaultInputFormats), FormatTIFF)
		c.MaxFrames = 4 // the GIF's 5 frames are over it, and still described: Info decodes one
	})
	dir := t.TempDir()
	gifPath := filepath.Join(dir, "anim.gif")
	if err := os.WriteFile(gifPath, animatedGIF(t, 4, 40, 30, rgbPalette, []int{10}), 0o644); err != nil {
		t.Fatal(err)
	}
	runTool(t, "gif2webp", "-quiet", gifPath, "-o", filepath.Join(dir, "anim.webp"))
	animWebP := readTestFile(t, filepath.Join(dir, "anim.webp"))

	grey := image.NewGray(image.Rect(0, 0, 60, 40))
	for i := range grey.Pix {
		grey.Pix[i] = 90
	}
	deep := image.NewNRGBA64(image.Rect(0, 0, 40, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 40; x++ {
			deep.SetNRGBA64(x, y, color.NRGBA64{0xF000, 0x2000, 0x1000, uint16(0xFFFF - y*1000)})
		}
	}
	clear := image.NewNRGBA(image.Rect(0, 0, 20, 20)) // every pixel transparent black

	tests := []struct {
		name          string
		b             []byte
		format        Format
		w, h          int
		alpha         bool
		frames, pages int
		dominant      string // "none"; "" not checked
	}{
		{"multi-page TIFF", manyPages(3), FormatTIFF, 1, 1, false, 1, 3, "808080"},
		{"animated WebP", animWebP, FormatWebP, 40, 30, false, 4, 1, "ff0000"},
		{"animated GIF", animatedGIF(t, 5, 40, 30, rgbPalette, []int{10}), FormatGIF, 40, 30, false, 5, 1, "ff0000"},
		{"grey JPEG", encodeJPEG(t, grey), FormatJPEG, 60, 40, false, 1, 1, "5a5a5a"},
		{"16-bit PNG with alpha", encodePNG(t, deep), FormatPNG, 40, 60, true, 1, 1, "f02010"},
		{"no opaque pixel", encodePNG(t, clear), FormatPNG, 20, 20, true, 1, 1, "none"},
		{"a side that scales to one pixel", encodeJPEG(t, quadrants(2000, 20)), FormatJPEG, 2000, 20, false, 1, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := p.Info(t.Context(), tt.b)
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != tt.format || info.Width != tt.w || info.Height != tt.h || info.Alpha != tt.alpha ||
				info.Frames != tt.frames || info.Pages != tt.pages || info.Orientation != 1 {
				t.Errorf("got %+v, want %s %dx%d alpha=%v frames=%d pages=%d orientation 1",
					info, tt.format, tt.w, tt.h, tt.alpha, tt.frames, tt.pages)
			}
			lx, ly := imagetest.ThumbHashTerms(info.ThumbHash)
			if (lx > ly) != (tt.w > tt.h) || (lx < ly) != (tt.w < tt.h) {
				t.Errorf("thumbhash of %d x %d terms for %dx%d", lx, ly, tt.w, tt.h)
			}
			if _, err := imagetest.DecodeThumbHash(info.ThumbHash); err != nil {
				t.Error(err)
			}
			got := "none"
			if info.Dominant != nil {
				got = info.Dominant.String()
			}
			if tt.dominant != "" && got != tt.dominant {
				t.Errorf("dominant %s, want %s", got, tt.dominant)
			}
		})
	}
}

// Info holds a slot and its work is bounded by the timeout like any image
// work: a TIFF of 200,000 pages, whose header alone takes seconds, keeps
// the one slot busy and is stopped when its time is up.
func TestInfoInsideTheSlot(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = []Format{FormatTIFF, FormatJPEG}
		c.Concurrency, c.QueueSize, c.QueueTimeout, c.Timeout = 1, 4, 50*time.Millisecond, time.Second
	})
	done := make(chan error, 1)
	go func() {
		_, err := p.Info(t.Context(), manyPages(200_000))
		done <- err
	}()
	waitBusy(t, p, 1)
	if _, err := p.Info(t.Context(), encodeJPEG(t, quadrants(8, 8))); !errors.Is(err, ErrBusy) {
		t.Errorf("while the TIFF is read: err = %v, want ErrBusy", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Errorf("200,000 pages: err = %v, want ErrTimeout", err)
	}
	if _, err := p.Info(t.Context(), encodeJPEG(t, quadrants(8, 8))); err != nil {
		t.Errorf("after the timeout: %v", err)
	}
}

// The small decode leaves nothing behind in a worker's C heap (its pixels
// are libvips' memory, freed once written to the pipe: a leak of them
// would be 2.6 KiB a sample here), measured as TestNoCLeakPerImage
// measures outputs.
func TestNoCLeakPerInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	if err := vipsInit(DefaultInputFormats, 0); err != nil {
		t.Fatal(err)
	}
	jpg := withOrientation(encodeJPEG(t, quadrants(300, 200)), 6)
	c, err := clean(FormatJPEG, jpg)
	if err != nil {
		t.Fatal(err)
	}
	in := cInput(c)
	defer in.free()
	j := job{Header: Header{Format: FormatJPEG, Width: 200, Height: 300, Orientation: 6}, Sample: sampleBox,
		Limits: unbounded}
	g := cGrowth(t, 150, func() {
		rep, _, frees := runJob(in, j)
		for _, f := range frees {
			freeC(f)
		}
		if rep.Err != nil || rep.Sample == nil || rep.Sample.Width != 21 || rep.Sample.Height != 32 {
			t.Fatalf("reply %+v", rep)
		}
	})
	t.Logf("%.0f bytes a sample", g)
	if g > 800 {
		t.Errorf("the C heap grows by %.0f bytes a sample", g)
	}
}
