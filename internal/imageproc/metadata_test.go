package imageproc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// No output, in any format, made alone or as one of several variants,
// keeps a byte of the input's metadata: EXIF (with GPS, Artist, MakerNote
// and a thumbnail), XMP, IPTC, the ICC profile, comments and text chunks,
// unknown chunks, or an orientation tag on pixels already turned upright.
// (libvips 8.14.1 writes EXIF and XMP into WebP whatever strip says.)
func TestNoMetadataSurvives(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	icc := imagetest.JPEGICC(readTestdata(t, "p3.jpg"))
	if len(icc) == 0 {
		t.Fatal("p3.jpg has no ICC profile")
	}
	stored := quadrants(300, 200) // stored sideways: orientation 6 shows it 200x300
	inputs := withMetadata(t, p, stored, 6, icc)
	jxlBase, err := p.Process(t.Context(), encodePNG(t, stored), Options{Format: FormatJXL})
	if err != nil {
		t.Fatal(err)
	}
	inputs["jxl"] = imagetest.JXL(jxlBase.Data, 6)
	// The inputs do carry what the outputs must not: the check can see it.
	for name, tags := range imagetest.Exiftool(t, inputs) {
		if tags["IFD0:Artist"] == nil || tags["GPS:GPSLatitude"] == nil || tags["XMP-dc:Creator"] == nil {
			t.Fatalf("%s input: exiftool does not find the planted metadata (%v): the test proves nothing", name, tags)
		}
	}
	outs := map[string][]byte{}
	for name, in := range inputs {
		var opts []Options
		for _, f := range append([]Format{FormatUnknown}, OutputFormats...) {
			opts = append(opts, Options{Width: 100, Format: f})
		}
		for _, o := range opts {
			r, err := p.Process(t.Context(), in, o)
			if err != nil {
				t.Fatalf("%s to %s: %v", name, o.Format, err)
			}
			what := fmt.Sprintf("%s to %s", name, r.Format)
			outs[what] = r.Data
			wantH := 150
			if name == "jxl" {
				wantH = 67 // JPEG XL's orientation is its codestream's; an Exif box's does not count
			}
			if r.Width != 100 || r.Height != wantH {
				t.Errorf("%s: %dx%d, want 100x%d (upright)", what, r.Width, r.Height, wantH)
			}
		}
		_, rs, err := p.Variants(t.Context(), in, opts)
		if err != nil {
			t.Fatalf("%s variants: %v", name, err)
		}
		for _, r := range rs {
			outs[fmt.Sprintf("%s variant in %s", name, r.Format)] = r.Data
		}
	}
	imagetest.CheckClean(t, outs)
}

// A WebP with 20 MiB of EXIF is served stripped; libvips refused it with
// "exif too large".
func TestHugeWebPExif(t *testing.T) {
	p := newTestProcessor(t, nil)
	base, err := p.Process(t.Context(), encodePNG(t, quadrants(300, 200)), Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	exif := append(imagetest.Exif(6), make([]byte, 20<<20)...)
	in := imagetest.WebPWithExif(base.Data, 300, 200, exif)
	r, err := p.Process(t.Context(), in, Options{Width: 100})
	if err != nil {
		t.Fatalf("WebP with 20 MiB of EXIF: %v", err)
	}
	if r.Width != 100 || r.Height != 150 {
		t.Errorf("%dx%d, want 100x150 (upright: the orientation is read from the huge block)", r.Width, r.Height)
	}
	imagetest.CheckClean(t, map[string][]byte{"webp from 20 MiB of EXIF": r.Data})
}

// The resolution an input declares (a PNG's pHYs, a JPEG's JFIF density)
// is not carried into the outputs: a made-up one (4294967295 x 1 pixels
// per metre holds 64 bits of the uploader's choosing) gives the same
// bytes, in every output format, as none at all.
func TestResolutionIsNotCarried(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	pix := quadrants(300, 200)
	png := encodePNG(t, pix)
	jpg := encodeJPEG(t, pix)
	phys := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 4294967295), 1)
	ihdrEnd := 8 + 8 + 13 + 4
	withPHYs := slices.Concat(png[:ihdrEnd], crcChunk("pHYs", append(phys, 1)), png[ihdrEnd:])
	jfif := []byte{0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 1, 0x02, 0x58, 0, 1, 0, 0} // 600 x 1 dpi
	withDensity := slices.Concat(jpg[:2], jfif, jpg[2:])
	for _, in := range []struct {
		name         string
		plain, dense []byte
	}{{"png", png, withPHYs}, {"jpeg", jpg, withDensity}} {
		for _, f := range OutputFormats {
			o := Options{Width: 120, Format: f}
			a, err := p.Process(t.Context(), in.plain, o)
			if err != nil {
				t.Fatalf("%s to %s: %v", in.name, f, err)
			}
			b, err := p.Process(t.Context(), in.dense, o)
			if err != nil {
				t.Fatalf("%s with a resolution to %s: %v", in.name, f, err)
			}
			if !bytes.Equal(a.Data, b.Data) {
				t.Errorf("%s to %s: the input's resolution changed the output (%d and %d bytes)", in.name, f, len(a.Data), len(b.Data))
			}
		}
	}
}
