package imageproc

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// The helpers the cleaners' tests share: the invariants every result must
// hold, the hostile-input drivers, pixel comparison; and the run over the
// service's hostile corpus. The real tools are in clean_tools_test.go.

// cleaner is the shape of cleanJPEG, cleanPNG and cleanWebP.
type cleaner func([]byte) (cleaned, error)

// maxFreshPart is the longest part a cleaner may write itself rather than
// slice from its input: a WebP RIFF header (12 bytes).
const maxFreshPart = 12

// checkCleaned fails unless c holds the invariants of every cleaner result
// for the input in: size is the parts' total and never more than len(in);
// the list is no longer than maxParts; every part is a slice of in, in
// order and not overlapping the one before, except at most fresh parts of
// up to maxFreshPart bytes that the cleaner wrote (rewritten headers) and
// the copied tail of a list that reached maxParts; orientation is in 1..8.
func checkCleaned(t testing.TB, in []byte, c cleaned, fresh int) {
	t.Helper()
	total := 0
	for _, p := range c.parts {
		total += len(p)
	}
	if total != c.size {
		t.Fatalf("size %d, but the parts hold %d bytes", c.size, total)
	}
	if c.size > len(in) {
		t.Fatalf("cleaned %d bytes into %d", len(in), c.size)
	}
	if len(c.parts) > maxParts {
		t.Fatalf("%d parts, more than %d", len(c.parts), maxParts)
	}
	if c.orientation < 1 || c.orientation > 8 {
		t.Fatalf("orientation %d", c.orientation)
	}
	next := 0 // the offset in in where the last sliced part ended
	for k, p := range c.parts {
		if len(p) == 0 {
			t.Fatalf("part %d is empty", k)
		}
		off, ok := offsetIn(in, p)
		switch {
		case ok && off >= next:
			next = off + len(p)
		case ok:
			t.Fatalf("part %d at input offset %d goes back before %d", k, off, next)
		case k == maxParts-1:
			// the copied tail of a long list
		case fresh > 0 && len(p) <= maxFreshPart:
			fresh--
		default:
			t.Fatalf("part %d (%d bytes) is neither a slice of the input nor an allowed rewritten header", k, len(p))
		}
	}
}

// offsetIn reports where p lies in b when p is a sub-slice of b's memory.
// Only the test needs this, to prove that the cleaners copy nothing.
func offsetIn(b, p []byte) (int, bool) {
	if len(b) == 0 || len(p) == 0 {
		return 0, false
	}
	d := uintptr(unsafe.Pointer(unsafe.SliceData(p))) - uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if d >= uintptr(len(b)) || uintptr(len(p)) > uintptr(len(b))-d {
		return 0, false
	}
	return int(d), true
}

// cleanWithin runs clean on b and fails if it panics or runs for more than
// a few seconds (a loop): hostile inputs must do neither.
func cleanWithin(t testing.TB, clean cleaner, b []byte) (cleaned, error) {
	t.Helper()
	type result struct {
		c     cleaned
		err   error
		panic any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panic = recover()
			done <- r
		}()
		r.c, r.err = clean(b)
	}()
	select {
	case r := <-done:
		if r.panic != nil {
			t.Fatalf("panic on %d input bytes: %v", len(b), r.panic)
		}
		return r.c, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("no result after 10 s for %d input bytes", len(b))
		return cleaned{}, nil
	}
}

// checkTruncations cleans every strict prefix of a complete file with no
// bytes after its end, and each copy of it with one byte overwritten by
// 0x00, 0xFF and its complement. A prefix must be refused as truncated
// with ErrUndecodable; a damaged copy may be refused or cleaned, but only
// within the invariants. Neither may panic or loop.
func checkTruncations(t *testing.T, clean cleaner, b []byte, fresh int) {
	t.Helper()
	if _, err := clean(b); err != nil {
		t.Fatalf("the whole file: %v", err)
	}
	for n := range len(b) {
		c, err := cleanWithin(t, clean, b[:n:n])
		if !errors.Is(err, ErrUndecodable) {
			t.Fatalf("prefix of %d of %d bytes: err = %v, want ErrUndecodable (%d parts, %d bytes)", n, len(b), err, len(c.parts), c.size)
		}
	}
	d := make([]byte, len(b))
	for i := range b {
		for _, v := range []byte{0x00, 0xFF, ^b[i]} {
			copy(d, b)
			d[i] = v
			c, err := cleanWithin(t, clean, d)
			if err != nil {
				if !errors.Is(err, ErrUndecodable) {
					t.Fatalf("byte %d set to 0x%02X: error %v does not wrap ErrUndecodable", i, v, err)
				}
				continue
			}
			checkCleaned(t, d, c, fresh)
		}
	}
}

// diffBytes describes where a cleaned file first differs from the one
// expected.
func diffBytes(got, want, in []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(i-16, 0)
	return fmt.Sprintf("%d bytes, want %d; first difference at %d:\ngot  % x\nwant % x\ninput (%d bytes) % x",
		len(got), len(want), i, got[from:min(i+32, len(got))], want[from:min(i+32, len(want))], len(in), in[:min(len(in), 4096)])
}

// samePixels fails unless two images have the same bounds and colours.
func samePixels(t testing.TB, want, got image.Image) {
	t.Helper()
	if want.Bounds() != got.Bounds() {
		t.Fatalf("bounds %v, want %v", got.Bounds(), want.Bounds())
	}
	r := want.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			wr, wg, wb, wa := want.At(x, y).RGBA()
			gr, gg, gb, ga := got.At(x, y).RGBA()
			if wr != gr || wg != gg || wb != gb || wa != ga {
				t.Fatalf("pixel (%d,%d) is %v, want %v", x, y, got.At(x, y), want.At(x, y))
			}
		}
	}
}

// decodeImage decodes b with the standard library's registered decoders
// (golang.org/x/image/webp for WebP).
func decodeImage(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return img
}

// smallImage reports whether b's header, as Go's decoders read it, is of
// a picture of at most a megapixel.
func smallImage(b []byte) bool {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	return err == nil && cfg.Width*cfg.Height <= 1<<20
}

// testPicture draws a w×h picture with detail in every block, so that
// encoders produce non-trivial entropy-coded data and any change of
// pixels shows.
func testPicture(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := img.PixOffset(x, y)
			img.Pix[i+0] = uint8(x * 255 / max(w-1, 1))
			img.Pix[i+1] = uint8(y * 255 / max(h-1, 1))
			img.Pix[i+2] = uint8((x*7 + y*13) ^ (x * y))
			img.Pix[i+3] = 255
		}
	}
	return img
}

// TestCleanHostileCorpus runs the cleaners over the service's corpus of
// hostile inputs (testdata/hostile, whose names start with the status the
// service must answer). A file the service refuses as undecodable (422) is
// refused by the cleaner, or cleaned into one that libvips, reading as the
// service does (fail_on=truncated), still refuses: cleaning hides no
// damage. A file the service shows (200) is cleaned into one that libvips
// decodes to the same pixels.
func TestCleanHostileCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "hostile", "*-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile corpus: %v", err)
	}
	cleaners := map[Format]cleaner{FormatJPEG: cleanJPEG, FormatPNG: cleanPNG, FormatWebP: cleanWebP}
	dir, seen := t.TempDir(), 0
	for _, path := range files {
		b := readTestFile(t, path)
		clean, ok := cleaners[Sniff(b)]
		if !ok {
			continue
		}
		seen++
		name := filepath.Base(path)
		c, err := cleanWithin(t, clean, b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) || strings.HasPrefix(name, "200-") {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		checkCleaned(t, b, c, 2)
		out := writeTestFile(t, dir, "clean-"+name, bytes.Join(c.parts, nil))
		switch {
		case strings.HasPrefix(name, "422-"):
			if err := vipsDecode(t, out, filepath.Join(dir, "out.v")); err == nil {
				t.Errorf("%s: libvips decodes it once it is cleaned", name)
			}
		case strings.HasPrefix(name, "200-"):
			for _, f := range [][2]string{{path, "in.v"}, {out, "out.v"}} {
				if err := vipsDecode(t, f[0], filepath.Join(dir, f[1])); err != nil {
					t.Fatalf("%s: %v", f[0], err)
				}
			}
			if !bytes.Equal(vipsPixels(t, filepath.Join(dir, "in.v")), vipsPixels(t, filepath.Join(dir, "out.v"))) {
				t.Errorf("%s: libvips decodes different pixels once it is cleaned", name)
			}
		}
	}
	if seen < 10 {
		t.Errorf("only %d JPEG, PNG and WebP files in the corpus", seen)
	}
}
