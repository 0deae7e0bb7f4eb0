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
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// fitBytes, on made-up size curves, monotonic or not: what it returns
// fits, the quality above does not (or it is the highest asked), it never
// encodes more than maxEncodes times, and it fails exactly when quality 1
// does not fit.
func TestFitBytesProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	curves := map[string]func(q int) int{
		"linear": func(q int) int { return 1000 + 100*q },
		"convex": func(q int) int { return 500 + q*q*q/10 },
		"flat":   func(q int) int { return 4000 },
		"sawtooth": func(q int) int { // size goes down one step in three
			return 2000 + 50*q - 120*(q%3)
		},
	}
	noise := make([]int, 101)
	for q := range noise {
		noise[q] = 1000 + r.IntN(9000)
	}
	curves["random"] = func(q int) int { return noise[q] }
	most := 0
	for name, size := range curves {
		for _, hi := range []int{1, 2, 3, 50, 60, 80, 99, 100} {
			for range 200 {
				budget := 400 + r.IntN(12000)
				n := 0
				e, encodes, err := fitBytes(budget, hi, func(q int) (encoded, error) {
					n++
					if q < 1 || q > hi {
						t.Fatalf("%s: encoded at quality %d, outside 1..%d", name, q, hi)
					}
					return encoded{size: size(q), quality: q}, nil
				})
				most = max(most, n)
				what := fmt.Sprintf("%s, hi %d, budget %d", name, hi, budget)
				switch {
				case encodes != n || n > maxEncodes:
					t.Fatalf("%s: %d encodes (reported %d), at most %d", what, n, encodes, maxEncodes)
				case size(1) > budget && size(hi) > budget:
					if !errors.Is(err, ErrUnsatisfiable) {
						t.Fatalf("%s: %v, want ErrUnsatisfiable", what, err)
					}
				case err != nil:
					t.Fatalf("%s: %v", what, err)
				case e.size > budget || e.size != size(e.quality):
					t.Fatalf("%s: quality %d gives %d bytes, over the budget", what, e.quality, e.size)
				case e.quality < hi && size(e.quality+1) <= budget:
					t.Fatalf("%s: quality %d chosen, but %d fits too (%d bytes)", what, e.quality, e.quality+1, size(e.quality+1))
				}
			}
		}
	}
	t.Logf("at most %d encodes a search", most)
}

// renderOne makes one output in this process, as a worker does, and
// returns its bytes (copied out of C memory), the quality written and the
// number of encodes.
func renderOne(t *testing.T, b []byte, o Options) ([]byte, int, int, error) {
	t.Helper()
	outs, err := inProcessKeep(t, b, o)
	if err != nil {
		return nil, 0, 0, err
	}
	return outs[0].data, outs[0].quality, outs[0].encodes, nil
}

// inProcessKeep is inProcess that keeps the outputs: their bytes are
// copied to Go memory before libvips' are freed.
func inProcessKeep(t *testing.T, b []byte, opts ...Options) ([]rendered, error) {
	t.Helper()
	if err := vipsInit(AllFormats, 0); err != nil {
		t.Fatal(err)
	}
	return renderHere(t, b, true, opts)
}

// max_bytes over many budgets and every format, encoded for real: the
// output fits; one quality step up does not, or the quality is the one
// asked for (the default); the search takes at most maxEncodes encodes; a
// budget under what quality 1 gives is ErrUnsatisfiable. PNG and GIF fit
// as they are or fail. The size counts what keep=copyright writes.
func TestMaxBytesProperty(t *testing.T) {
	p := newTestProcessor(t, nil)
	photo, err := p.Process(t.Context(), readTestdata(t, "ladybird.jpg"), Options{Width: 400, Quality: 95})
	if err != nil {
		t.Fatal(err)
	}
	withRights := keepRightsJPEG(t, photo.Data)
	type tcase struct {
		name string
		src  []byte
		o    Options
	}
	var cases []tcase
	for _, f := range []Format{FormatJPEG, FormatWebP, FormatAVIF, FormatJXL, FormatPNG, FormatGIF} {
		cases = append(cases, tcase{f.String(), photo.Data, Options{Width: 300, Format: f}})
	}
	cases = append(cases,
		tcase{"jpeg quality=90", photo.Data, Options{Width: 300, Format: FormatJPEG, Quality: 90}},
		tcase{"webp keep=copyright", withRights, Options{Width: 300, Format: FormatWebP, Keep: KeepCopyright}},
		tcase{"avif keep=copyright", withRights, Options{Width: 300, Format: FormatAVIF, Keep: KeepCopyright}})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sizeAt := func(q int) int {
				o := c.o
				o.Quality = q
				b, _, _, err := renderOne(t, c.src, o)
				if err != nil {
					t.Fatal(err)
				}
				return len(b)
			}
			hi := c.o.Quality
			if hi == 0 {
				hi = c.o.Format.DefaultQuality()
			}
			top, low := sizeAt(hi), sizeAt(max(hi, 1)) // hi is 0 for PNG and GIF
			if hi > 0 {
				low = sizeAt(1)
			}
			budgets := []int{low, low - 1, top, top - 1}
			steps := 14 // from under quality 1's size to over the top's
			if hi == 0 || testing.Short() {
				steps = 4 // a GIF takes half a second to encode
			}
			for k := range steps {
				budgets = append(budgets, int(float64(low)*0.9*math.Pow(float64(top)*1.1/(float64(low)*0.9), float64(k)/float64(steps-1))))
			}
			most := 0
			for _, budget := range budgets {
				o := c.o
				o.MaxBytes = budget
				b, q, n, err := renderOne(t, c.src, o)
				if budget < low && (hi == 0 || budget < top) {
					if !errors.Is(err, ErrUnsatisfiable) {
						t.Errorf("budget %d under %d: %v, want ErrUnsatisfiable", budget, low, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("budget %d: %v", budget, err)
				}
				most = max(most, n)
				switch {
				case len(b) > budget:
					t.Errorf("budget %d: %d bytes at quality %d", budget, len(b), q)
				case n > maxEncodes:
					t.Errorf("budget %d: %d encodes", budget, n)
				case hi > 0 && q < hi && sizeAt(q+1) <= budget:
					t.Errorf("budget %d: quality %d chosen, but %d fits (%d bytes)", budget, q, q+1, sizeAt(q+1))
				case hi > 0 && sizeAt(q) != len(b):
					t.Errorf("budget %d: quality %d gives %d bytes alone, %d in the search", budget, q, sizeAt(q), len(b))
				}
			}
			t.Logf("%s: quality 1 %d bytes, quality %d %d bytes; at most %d encodes over %d budgets",
				c.name, low, hi, top, most, len(budgets))
		})
	}
}

// keepRightsJPEG returns a JPEG with an EXIF Artist and Copyright.
func keepRightsJPEG(t *testing.T, jpg []byte) []byte {
	t.Helper()
	block := exifRights{Artist: []byte("A. Photographer"), Copyright: []byte("(c) 2026 A. Photographer, all rights reserved")}.exifBlock()
	out, err := jpegWith(jpg, block, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// max_bytes through a Processor: variants each fit their own budget, or
// the job fails with ErrUnsatisfiable.
func TestMaxBytesVariants(t *testing.T) {
	p := newTestProcessor(t, nil)
	src := readTestdata(t, "ladybird.jpg")
	_, rs, err := p.Variants(t.Context(), src, []Options{
		{Width: 800, MaxBytes: 30_000}, {Width: 800, Format: FormatWebP, MaxBytes: 20_000},
		{Width: 800, Format: FormatAVIF, MaxBytes: 10_000}, {Width: 200, Format: FormatPNG, MaxBytes: 200_000},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{30_000, 20_000, 10_000, 200_000} {
		if len(rs[i].Data) > want {
			t.Errorf("%s: %d bytes, over max_bytes=%d", rs[i].Format, len(rs[i].Data), want)
		}
		t.Logf("%s %d px in max_bytes=%d: %d bytes", rs[i].Format, rs[i].Width, want, len(rs[i].Data))
	}
	for _, o := range []Options{{Width: 800, MaxBytes: 500}, {Width: 200, Format: FormatPNG, MaxBytes: 1000}} {
		_, err := p.Process(t.Context(), src, o)
		if !errors.Is(err, ErrUnsatisfiable) {
			t.Errorf("%+v: %v, want ErrUnsatisfiable", o, err)
		}
		// Sorted where it was found, not taken for the library's own
		// failure (which costs a second decode to tell apart).
		if err != nil && strings.Contains(err.Error(), "libvips") {
			t.Errorf("%+v: %q, sorted as a libvips failure", o, err)
		}
	}
}

// An animation that stays animated is searched as a whole: the animated
// WebP fits max_bytes with every frame, or the job fails with
// ErrUnsatisfiable; keep writes nothing into it but what it may (an
// animation's frames are in sRGB, so no profile), and a GIF, which has no
// quality, fits as it is or fails.
func TestMaxBytesAnimation(t *testing.T) {
	p := newTestProcessor(t, nil)
	in := texturedGIF(t, 8, 160, 120)
	full, err := p.Process(t.Context(), in, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	low, err := p.Process(t.Context(), in, Options{Format: FormatWebP, Quality: 1})
	if err != nil {
		t.Fatal(err)
	}
	budgets := []int{len(low.Data) - 1, len(low.Data), (len(low.Data) + len(full.Data)) / 2, len(full.Data), len(full.Data) * 2 / 3}
	for i, budget := range budgets {
		keep := []Keep{KeepNone, KeepCopyright, KeepICC}[i%3]
		r, err := p.Process(t.Context(), in, Options{Format: FormatWebP, MaxBytes: budget, Keep: keep})
		if budget < len(low.Data) {
			if !errors.Is(err, ErrUnsatisfiable) {
				t.Errorf("budget %d under quality 1's %d: %v", budget, len(low.Data), err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("budget %d, keep=%s: %v", budget, keep, err)
		}
		if len(r.Data) > budget || len(webpFrameDurations(t, r.Data)) != 8 {
			t.Errorf("budget %d, keep=%s: %d bytes, %d frames", budget, keep, len(r.Data), len(webpFrameDurations(t, r.Data)))
		}
		imagetest.CheckClean(t, map[string][]byte{fmt.Sprintf("webp, budget %d, keep=%s", budget, keep): r.Data})
	}
	g, err := p.Process(t.Context(), in, Options{Format: FormatGIF})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := p.Process(t.Context(), in, Options{Format: FormatGIF, MaxBytes: len(g.Data)}); err != nil || !bytes.Equal(r.Data, g.Data) {
		t.Errorf("gif in its own size: %v", err)
	}
	if _, err := p.Process(t.Context(), in, Options{Format: FormatGIF, MaxBytes: len(g.Data) - 1}); !errors.Is(err, ErrUnsatisfiable) {
		t.Errorf("gif one byte under its size: %v", err)
	}
	t.Logf("8-frame animated WebP: %d bytes at quality 80, %d at 1; GIF %d", len(full.Data), len(low.Data), len(g.Data))
}

// texturedGIF is an animation of n frames of w x h, each a different
// texture, so that its size depends on the quality.
func texturedGIF(t *testing.T, n, w, h int) []byte {
	t.Helper()
	var palette color.Palette
	for i := range 256 {
		palette = append(palette, color.RGBA{uint8(i), uint8(i * 7), uint8(255 - i), 255})
	}
	anim := &gif.GIF{}
	for k := range n {
		fr := image.NewPaletted(image.Rect(0, 0, w, h), palette)
		for y := range h {
			for x := range w {
				fr.SetColorIndex(x, y, uint8((x*(k+3)+y*y/(k+1)+x*y/7)%256))
			}
		}
		anim.Image = append(anim.Image, fr)
		anim.Delay = append(anim.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
