package imageproc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcess feeds arbitrary bytes through the whole decode path. Whatever
// the bytes, Process must not panic or hang, and a failure must be one of
// the client-input errors: anything else would reach a user as a 500.
func FuzzProcess(f *testing.F) {
	q := quadrants(16, 8)
	f.Add(encodeJPEG(f, q))
	f.Add(withOrientation(encodeJPEG(f, q), 6))
	f.Add(encodePNG(f, q))
	f.Add(encodeGIF(f, q))
	p := newTestProcessor(f, nil)
	for _, fmt := range []Format{FormatWebP, FormatAVIF} {
		r, err := p.Process(f.Context(), encodePNG(f, q), Options{Format: fmt})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r.Data)
	}
	f.Add([]byte("GIF89a"))
	f.Add([]byte("\xFF\xD8\xFF"))
	// The hostile corpus (testdata/hostile) and the HEIF files, bombs
	// included (testdata/heif), seed the fuzzer too.
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "hostile", "*-*"))
	heif, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "heif", "*.*"))
	files = append(files, heif...)
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil && len(b) < 1<<20 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := p.Process(t.Context(), b, Options{Width: 8, Format: FormatPNG})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrUndecodable) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unclassified error for %d input bytes: %v", len(b), err)
			}
			return
		}
		if Sniff(r.Data) != FormatPNG || r.Width < 1 || r.Width > 8 {
			t.Fatalf("bad result %v %dx%d", Sniff(r.Data), r.Width, r.Height)
		}
	})
}
