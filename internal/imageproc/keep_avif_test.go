package imageproc

import (
	"bytes"
	"image"
	"image/color"
	"slices"
	"testing"
)

// avifWith adds an Exif item and a profile to libheif's AVIF, with alpha
// (two items and an auxl reference) or without: the file still parses,
// every image item's data is the same bytes, the Exif item describes the
// primary image, and libvips decodes it with the profile.
func TestAVIFWith(t *testing.T) {
	p := newTestProcessor(t, nil)
	exif := exifRights{Artist: []byte("Ada"), Copyright: []byte("(c) Ada")}.exifBlock()
	icc := vipsSRGBLikeProfile(t)
	for _, alpha := range []bool{false, true} {
		img := image.NewNRGBA(image.Rect(0, 0, 333, 77))
		for y := range 77 {
			for x := range 333 {
				a := uint8(255)
				if alpha {
					a = uint8(x * 255 / 333)
				}
				img.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 5), uint8(x ^ y), a})
			}
		}
		r, err := p.Process(t.Context(), encodePNG(t, img), Options{Format: FormatAVIF}) // as the service writes AVIF
		if err != nil {
			t.Fatal(err)
		}
		src := r.Data
		for _, tc := range []struct {
			name      string
			exif, icc []byte
		}{{"exif", exif, nil}, {"icc", nil, icc}, {"both", exif, icc}} {
			out, err := avifWith(src, tc.exif, tc.icc)
			if err != nil {
				t.Fatalf("alpha %v, %s: %v", alpha, tc.name, err)
			}
			before, err := readHeifMeta(src)
			if err != nil {
				t.Fatal(err)
			}
			after, err := readHeifMeta(out)
			if err != nil {
				t.Fatalf("alpha %v, %s: the result does not parse: %v", alpha, tc.name, err)
			}
			for _, it := range before.items {
				a, _ := before.itemData(src, it.id)
				b, err := after.itemData(out, it.id)
				if err != nil || !bytes.Equal(bytes.Join(a, nil), bytes.Join(b, nil)) {
					t.Errorf("alpha %v, %s: item %d (%s) moved wrongly: %v", alpha, tc.name, it.id, it.typ, err)
				}
			}
			exifItems := 0
			for _, it := range after.items {
				if it.typ == "Exif" {
					exifItems++
					data, err := after.itemData(out, it.id)
					if err != nil || !bytes.Equal(bytes.Join(data, nil), append([]byte{0, 0, 0, 0}, exif...)) {
						t.Errorf("alpha %v, %s: Exif item data %q, %v", alpha, tc.name, data, err)
					}
				}
			}
			if want := btoi(tc.exif != nil); exifItems != want {
				t.Errorf("alpha %v, %s: %d Exif items, want %d", alpha, tc.name, exifItems, want)
			}
			r, err := p.Process(t.Context(), out, Options{Format: FormatPNG})
			if err != nil || r.Width != 333 || r.Height != 77 {
				t.Fatalf("alpha %v, %s: libvips decodes %v (%v)", alpha, tc.name, r, err)
			}
			if got := vipsProfile(t, out); (got != nil) != (tc.icc != nil) || tc.icc != nil && !bytes.Equal(got, icc) {
				t.Errorf("alpha %v, %s: libvips reads a profile of %d bytes, want %d", alpha, tc.name, len(got), len(tc.icc))
			}
		}
	}
}

// vipsSRGBLikeProfile is the Display P3 profile of p3.jpg.
func vipsSRGBLikeProfile(t *testing.T) []byte {
	t.Helper()
	b := readTestdata(t, "p3.jpg")
	for i := 2; i+4 <= len(b); {
		n := int(b[i+2])<<8 | int(b[i+3])
		if b[i+1] == jpegAPP2 && bytes.HasPrefix(b[i+4:], []byte("ICC_PROFILE\x00")) {
			return b[i+4+14 : i+2+n]
		}
		i += 2 + n
	}
	t.Fatal("p3.jpg has no profile")
	return nil
}

// FuzzWriteKept: whatever the bytes, the writers of kept metadata fail
// cleanly or give a file; an AVIF they accept still parses.
func FuzzWriteKept(f *testing.F) {
	p := newTestProcessor(f, nil)
	q := quadrants(16, 8)
	for _, fm := range []Format{FormatAVIF, FormatWebP, FormatJPEG, FormatPNG} {
		r, err := p.Process(f.Context(), encodePNG(f, q), Options{Format: fm})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(r.Data)
	}
	rights := exifRights{Artist: []byte("Ada")}
	exif := rights.exifBlock()
	icc := []byte("a profile")
	f.Fuzz(func(t *testing.T, b []byte) {
		in, heifErr := readHeifMeta(b)
		if out, err := avifWith(b, exif, icc); err == nil && heifErr == nil {
			if _, err := readHeifMeta(out); err != nil {
				t.Fatalf("avifWith made a file that does not parse: %v", err)
			}
			// The rights written are the ones read back, unless the
			// file had an Exif item already (which is read first).
			hadExif := slices.ContainsFunc(in.items, func(it heifInfo) bool { return it.typ == "Exif" })
			if got := heifRights(out); !hadExif && !bytes.Equal(got.Artist, rights.Artist) {
				t.Fatalf("avifWith wrote rights that read back as %q", got)
			}
		}
		webpWith(b, exif, icc, 16, 8)
		jpegWith(b, exif, icc)
		pngWith(b, exif, icc)
		jxlWith(b, exif)
	})
}
