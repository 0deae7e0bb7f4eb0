package imageproc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcess feeds arbitrary bytes through the whole decode path, and
// the image through one of the encoders and writers of kept metadata,
// chosen by sel. Whatever the bytes, Process must not panic or hang, and a
// failure must be one of the client-input errors: anything else would
// reach a user as a 500. An image made is in the format asked, at most 8
// pixels wide.
func FuzzProcess(f *testing.F) {
	q := quadrants(16, 8)
	var seeds [][]byte
	seeds = append(seeds, encodeJPEG(f, q), withOrientation(encodeJPEG(f, q), 6), encodePNG(f, q), encodeGIF(f, q))
	p := newTestProcessor(f, nil)
	for _, fmt := range []Format{FormatWebP, FormatAVIF} {
		r, err := p.Process(f.Context(), encodePNG(f, q), Options{Format: fmt})
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, r.Data)
	}
	seeds = append(seeds, []byte("GIF89a"), []byte("\xFF\xD8\xFF"))
	// The hostile corpus (testdata/hostile) and the HEIF files, bombs
	// included (testdata/heif), seed the fuzzer too.
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "hostile", "*-*"))
	heif, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "heif", "*.*"))
	files = append(files, heif...)
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 1<<20 {
			seeds = append(seeds, b)
		}
	}
	for i, b := range seeds {
		f.Add(b, uint8(i))
	}
	f.Fuzz(func(t *testing.T, b []byte, sel uint8) {
		o := processFuzzOptions(sel)
		r, err := p.Process(t.Context(), b, o)
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUndecodable) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error for %d input bytes, %+v: %v", len(b), o, err)
			}
			return
		}
		if Sniff(r.Data) != o.Format || r.Width < 1 || r.Width > 8 {
			t.Fatalf("bad result for %+v: %v %dx%d", o, Sniff(r.Data), r.Width, r.Height)
		}
	})
}

// processFuzzOptions picks FuzzProcess's options from sel: the output
// format (AVIF, the slowest encoder, one time in eight), whether an
// animation stays animated, what metadata is kept, and the fit.
func processFuzzOptions(sel uint8) Options {
	o := Options{Width: 8, Format: []Format{FormatPNG, FormatJPEG, FormatWebP, FormatGIF, FormatPNG, FormatJPEG, FormatWebP, FormatAVIF}[sel&7]}
	o.Still = sel&8 != 0
	o.Keep = []Keep{KeepNone, KeepCopyright, KeepICC, KeepNone}[sel>>4&3]
	if sel&64 != 0 {
		o.Height, o.Fit = 8, FitCover
	}
	return o
}
