package imageproc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"slices"
	"testing"

	"github.com/h2non/bimg"

	"github.com/resizer/resizer/internal/imagetest"
)

// keepFormats are the outputs that can carry what keep keeps.
var keepFormats = []Format{FormatJPEG, FormatPNG, FormatWebP, FormatAVIF, FormatJXL}

// metadataInputs are a picture stored sideways (orientation 6 shows it
// 200x300) carrying every kind of metadata, the ICC profile of p3.jpg
// included, in each format that can carry EXIF; the AVIF and HEIC have
// their EXIF in an Exif item, as libvips writes it when not stripping.
func metadataInputs(t *testing.T, p *Processor) map[string][]byte {
	t.Helper()
	in := withMetadata(t, p, quadrants(300, 200), 6, imagetest.JPEGICC(readTestdata(t, "p3.jpg")))
	for name, typ := range map[string]bimg.ImageType{"avif": bimg.AVIF, "heic": bimg.HEIF} {
		b, err := bimg.NewImage(in["jpeg"]).Process(bimg.Options{Type: typ, Quality: 50, Speed: 8, NoAutoRotate: true})
		if err != nil {
			t.Fatalf("make the %s input: %v", name, err)
		}
		in[name] = b
	}
	for name, tags := range imagetest.Exiftool(t, in) {
		if tags["IFD0:Artist"] != imagetest.Markers[0] || tags["IFD0:Copyright"] != imagetest.Markers[3] || tags["GPS:GPSLatitude"] == nil {
			t.Fatalf("%s input: exiftool does not find the planted metadata (%v): the test proves nothing", name, tags)
		}
	}
	return in
}

// withMetadata is the picture stored as a JPEG, a PNG and a WebP, each
// carrying every kind of metadata imagetest plants: EXIF orientation o,
// the ICC profile icc, XMP, IPTC, comments.
func withMetadata(t *testing.T, p *Processor, stored *image.RGBA, o int, icc []byte) map[string][]byte {
	t.Helper()
	pngBase := encodePNG(t, stored)
	webpBase, err := p.Process(t.Context(), pngBase, Options{Format: FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	w, h := stored.Bounds().Dx(), stored.Bounds().Dy()
	return map[string][]byte{
		"jpeg": imagetest.JPEG(encodeJPEG(t, stored), o, icc),
		"png":  imagetest.PNG(pngBase, o, icc),
		"webp": imagetest.WebP(webpBase.Data, w, h, o, icc),
	}
}

// keep=copyright writes the source's Artist and Copyright, and nothing
// else, into JPEG, PNG, WebP, AVIF and JPEG XL outputs, from any source
// that has them; a GIF gets nothing. The pixels are upright and in sRGB.
func TestKeepCopyright(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	inputs := metadataInputs(t, p)
	kept, clean := map[string][]byte{}, map[string][]byte{}
	for name, in := range inputs {
		var opts []Options
		for _, f := range append(keepFormats, FormatGIF) {
			opts = append(opts, Options{Width: 100, Format: f, Keep: KeepCopyright})
		}
		_, rs, err := p.Variants(t.Context(), in, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, r := range rs {
			what := fmt.Sprintf("%s to %s", name, r.Format)
			wantH := 150
			if name == "avif" || name == "heic" {
				wantH = 67 // HEIF turns images with irot, not with EXIF
			}
			if r.Width != 100 || r.Height != wantH {
				t.Errorf("%s: %dx%d, want 100x%d (upright)", what, r.Width, r.Height, wantH)
			}
			if r.Format == FormatGIF {
				clean[what] = r.Data
			} else {
				kept[what] = r.Data
			}
		}
	}
	imagetest.CheckCleanBut(t, kept, "IFD0:Artist", "IFD0:Copyright")
	imagetest.CheckClean(t, clean)
	for name, tags := range imagetest.Exiftool(t, kept) {
		if tags["IFD0:Artist"] != imagetest.Markers[0] || tags["IFD0:Copyright"] != imagetest.Markers[3] {
			t.Errorf("%s: Artist %v, Copyright %v: want the source's", name, tags["IFD0:Artist"], tags["IFD0:Copyright"])
		}
		for k, v := range tags {
			if group := k[:bytes.IndexByte([]byte(k), ':')]; group == "IFD0" && k != "IFD0:Artist" && k != "IFD0:Copyright" ||
				group == "ExifIFD" || group == "IFD1" {
				t.Errorf("%s: exiftool finds %s = %v", name, k, v)
			}
		}
	}
	// A source without the two fields gets no EXIF block at all.
	r, err := p.Process(t.Context(), encodeJPEG(t, quadrants(300, 200)), Options{Width: 100, Keep: KeepCopyright})
	if err != nil {
		t.Fatal(err)
	}
	imagetest.CheckClean(t, map[string][]byte{"jpeg without rights, keep=copyright": r.Data})
}

// The block written is exactly the one exifBlock makes, in each format's
// place for it: an APP1 segment, an eXIf chunk, the WebP EXIF chunk the
// worker's cleaning keeps, an Exif item, an Exif box.
func TestKeepCopyrightExactBlock(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	in := imagetest.JPEG(encodeJPEG(t, quadrants(300, 200)), 1, nil)
	want := exifRights{Artist: []byte(imagetest.Markers[0]), Copyright: []byte(imagetest.Markers[3])}.exifBlock()
	for _, f := range keepFormats {
		r, err := p.Process(t.Context(), in, Options{Format: f, Keep: KeepCopyright})
		if err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		switch f {
		case FormatJPEG:
			for i := 2; i+4 <= len(r.Data) && r.Data[i] == 0xFF && r.Data[i+1] != jpegSOS; {
				n := int(binary.BigEndian.Uint16(r.Data[i+2:]))
				if r.Data[i+1] == jpegAPP1 {
					got = append(got, bytes.TrimPrefix(r.Data[i+4:i+2+n], exifPrefix))
				}
				i += 2 + n
			}
		case FormatPNG:
			for i := 8; i+12 <= len(r.Data); {
				n := int(binary.BigEndian.Uint32(r.Data[i:]))
				if string(r.Data[i+4:i+8]) == "eXIf" {
					got = append(got, r.Data[i+8:i+8+n])
				}
				i += 12 + n
			}
		case FormatWebP:
			err = eachWebPChunk(r.Data, len(r.Data), func(fourcc, payload []byte, _, _ int) {
				if string(fourcc) == "EXIF" || string(fourcc) == "XMP " {
					got = append(got, payload)
				}
			})
		case FormatAVIF:
			var m *heifMeta
			if m, err = readHeifMeta(r.Data); err == nil {
				for _, it := range m.items {
					if it.typ == "Exif" {
						parts, _ := m.itemData(r.Data, it.id)
						got = append(got, bytes.Join(parts, nil)[4:])
					}
				}
			}
		case FormatJXL:
			err = eachBox(r.Data, func(typ string, body []byte) bool {
				if typ == "Exif" {
					got = append(got, body[4:])
				}
				return true
			})
		}
		if err != nil || len(got) != 1 || !bytes.Equal(got[0], want) {
			t.Errorf("%s: EXIF blocks %q (%v), want exactly one, %q", f, got, err, want)
		}
	}
}

// keep=icc keeps p3.jpg's Display P3 profile in every format that carries
// one, its pixels not converted; keep=none's are converted to sRGB. A CMYK
// source is converted either way, and a GIF has nothing to carry it in.
func TestKeepICC(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	src := readTestdata(t, "p3.jpg") // 320x200
	srcTags := imagetest.Exiftool(t, map[string][]byte{"p3.jpg": src})["p3.jpg"]
	kept := map[string][]byte{}
	for _, f := range keepFormats {
		r, err := p.Process(t.Context(), src, Options{Format: f, Keep: KeepICC, Width: 160})
		if err != nil {
			t.Fatal(err)
		}
		kept[f.String()] = r.Data
	}
	imagetest.CheckCleanBut(t, kept, "ICC-header:*", "ICC_Profile:*")
	for name, tags := range imagetest.Exiftool(t, kept) {
		if name == "jxl" {
			continue // exiftool does not read the profile inside a JPEG XL codestream; libvips does, below
		}
		if tags["ICC-header:ProfileID"] != srcTags["ICC-header:ProfileID"] || tags["ICC_Profile:ProfileDescription"] != "sP3C" {
			t.Errorf("%s: profile %v %v, want p3.jpg's (%v)", name, tags["ICC-header:ProfileID"],
				tags["ICC_Profile:ProfileDescription"], srcTags["ICC-header:ProfileID"])
		}
	}
	// libvips reads the profile back: the very bytes, except from JPEG XL,
	// whose encoder stores a profile it recognises as a colour encoding and
	// whose decoder writes a profile of its own for it, with the same
	// primaries.
	icc := imagetest.JPEGICC(src)
	for name, b := range kept {
		got := vipsProfile(t, b)
		if name == "jxl" && got != nil && iccPrimaries(got) == iccPrimaries(icc) {
			continue
		}
		if !bytes.Equal(got, icc) {
			t.Errorf("%s: libvips reads a profile of %d bytes (primaries %v), want p3.jpg's %d (%v)",
				name, len(got), iccPrimaries(got), len(icc), iccPrimaries(icc))
		}
	}

	// The pixels: kept as they are in the file (Go's decoder knows nothing
	// of profiles), where keep=none converts them.
	raw := decode(t, src)
	asIs, err := p.Process(t.Context(), src, Options{Format: FormatPNG, Keep: KeepICC})
	if err != nil {
		t.Fatal(err)
	}
	converted, err := p.Process(t.Context(), src, Options{Format: FormatPNG})
	if err != nil {
		t.Fatal(err)
	}
	dKept, dNone := meanAbsDiff(raw, decode(t, asIs.Data)), meanAbsDiff(raw, decode(t, converted.Data))
	t.Logf("mean difference from the file's own pixels: keep=icc %.2f, keep=none %.2f", dKept, dNone)
	if dKept > 1.5 || dNone < 4*dKept+3 {
		t.Errorf("keep=icc differs from the file's pixels by %.2f, keep=none by %.2f: want the first near 0 and the second converted",
			dKept, dNone)
	}

	// CMYK becomes sRGB, profile or not: keep=icc writes what keep=none does.
	for _, name := range []string{"cmyk.jpg", "cmyk-noprofile.jpg"} {
		cmyk := readTestdata(t, name)
		a, err := p.Process(t.Context(), cmyk, Options{Width: 100, Keep: KeepICC})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Process(t.Context(), cmyk, Options{Width: 100})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a.Data, b.Data) {
			t.Errorf("%s: keep=icc wrote %d bytes, keep=none %d: want the same sRGB output", name, len(a.Data), len(b.Data))
		}
	}
	// A GIF cannot carry the profile: its pixels are converted.
	g1, err := p.Process(t.Context(), src, Options{Width: 100, Format: FormatGIF, Keep: KeepICC})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := p.Process(t.Context(), src, Options{Width: 100, Format: FormatGIF})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g1.Data, g2.Data) {
		t.Error("gif: keep=icc differs from keep=none")
	}
}

// keep=icc keeps no profile that is not whole: p3.jpg's profile cut to its
// first half (its header, saying RGB and the full size, intact), or to its
// header alone, is dropped as keep=none drops it, in every format, and
// the output is keep=none's. Kept, it left the pixels unconverted under a
// profile that libpng, exiftool and lcms refuse.
func TestKeepICCBrokenProfile(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	icc := imagetest.JPEGICC(readTestdata(t, "p3.jpg"))
	base := encodeJPEG(t, quadrants(64, 48))
	for name, broken := range map[string][]byte{"half": icc[:len(icc)/2], "header": icc[:128]} {
		src := imagetest.JPEG(base, 1, broken)
		outs := map[string][]byte{}
		for _, f := range keepFormats {
			kept, err := p.Process(t.Context(), src, Options{Format: f, Keep: KeepICC, Width: 32})
			if err != nil {
				t.Fatalf("%s, %s: %v", name, f, err)
			}
			none, err := p.Process(t.Context(), src, Options{Format: f, Width: 32})
			if err != nil {
				t.Fatalf("%s, %s: %v", name, f, err)
			}
			outs[name+"."+f.String()] = kept.Data
			// libjxl's decoder gives every JPEG XL a profile of its own
			// making: there the equality below says it.
			if got := vipsProfile(t, kept.Data); got != nil && f != FormatJXL {
				t.Errorf("%s, %s: a profile of %d bytes kept", name, f, len(got))
			}
			if !bytes.Equal(kept.Data, none.Data) {
				t.Errorf("%s, %s: keep=icc wrote %d bytes, keep=none %d: want the same", name, f, len(kept.Data), len(none.Data))
			}
		}
		imagetest.CheckClean(t, outs)
	}
}

// keep=icc keeps the profile and only the profile: a source whose profile
// hides the uploader's metadata (a marker in its ID and reserved bytes, an
// EXIF block with a GPS position between its tags and its declared end,
// and again past that end), in JPEG, PNG and WebP, gives in every format
// that carries a profile, alone, among variants, watermarked and under a
// max_bytes budget, the profile without a byte of it, still kept (the
// pixels not converted). The profile was copied as libvips read it, every
// byte of the APP2, iCCP or ICCP data, and all of it reached the outputs.
func TestKeepICCOnlyTheProfile(t *testing.T) {
	p, _ := markProcessor(t, map[string][]byte{"m.png": encodePNG(t, solid(20, 10, opaqueRed))}, withJXL)
	icc := imagetest.JPEGICC(readTestdata(t, "p3.jpg"))
	hiding := imagetest.ICCHiding(icc)
	want := iccProfileOnly(hiding)
	inputs := withMetadata(t, p, quadrants(120, 80), 1, hiding)
	for name, in := range inputs {
		// (libpng's reader, for a PNG, stops at the declared size.)
		if got := vipsProfile(t, in); !bytes.Contains(got, []byte(imagetest.Markers[10])) || !bytes.Contains(got, imagetest.GPSBytes()) {
			t.Fatalf("%s input: libvips reads a profile of %d bytes without the hidden metadata: the test proves nothing", name, len(got))
		}
	}
	outs := map[string][]byte{}
	for name, in := range inputs {
		var opts []Options
		for _, f := range keepFormats {
			opts = append(opts,
				Options{Width: 60, Format: f, Keep: KeepICC},
				Options{Width: 40, Format: f, Keep: KeepICC, Watermark: wm("m.png", GravityCenter, 0)},
				Options{Width: 50, Format: f, Keep: KeepICC, MaxBytes: 20000},
				Options{Width: 30, Format: f}, // a variant that converts, sharing the decode
			)
		}
		_, rs, err := p.Variants(t.Context(), in, opts)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		alone, err := p.Process(t.Context(), in, Options{Width: 60, Keep: KeepICC})
		if err != nil {
			t.Fatalf("%s alone: %v", name, err)
		}
		rs = append(rs, alone)
		opts = append(opts, Options{Width: 60, Keep: KeepICC})
		for i, r := range rs {
			what := fmt.Sprintf("%s to %s (%s)", name, r.Format, opts[i].Canonical())
			outs[what] = r.Data
			got := vipsProfile(t, r.Data)
			switch {
			case opts[i].Keep != KeepICC:
				if got != nil && r.Format != FormatJXL { // libjxl's decoder makes one for every file
					t.Errorf("%s: a profile of %d bytes, want none", what, len(got))
				}
			case r.Format == FormatJXL:
				// libjxl writes a profile of its own making (TestKeepICC)
				if got == nil || iccPrimaries(got) != iccPrimaries(icc) {
					t.Errorf("%s: primaries %v, want p3.jpg's", what, iccPrimaries(got))
				}
			case !bytes.Equal(got, want):
				t.Errorf("%s: a profile of %d bytes, want the %d of the profile alone", what, len(got), len(want))
			}
		}
	}
	imagetest.CheckCleanBut(t, outs, "ICC-header:*", "ICC_Profile:*")
}

// Outputs of one source that keep the profile and outputs that do not
// share a decode (in the profile's space, each output that does not keep
// it converted as its first step): each is what it is in a job of outputs
// that all keep the same, and the two kinds differ.
func TestKeepICCMixedVariants(t *testing.T) {
	p := newTestProcessor(t, nil)
	src := readTestdata(t, "p3.jpg")
	opts := []Options{
		{Width: 100, Format: FormatPNG, Keep: KeepICC}, {Width: 100, Format: FormatPNG},
		{Width: 50, Format: FormatPNG}, {Width: 50, Format: FormatPNG, Keep: KeepICC},
		{Width: 80, Format: FormatPNG, Keep: KeepCopyright},
	}
	_, mixed, err := p.Variants(t.Context(), src, opts)
	if err != nil {
		t.Fatal(err)
	}
	same := map[Keep][]*Result{}
	for _, k := range []Keep{KeepNone, KeepICC} {
		all := slices.Clone(opts)
		for i := range all {
			all[i].Keep = k
		}
		if _, same[k], err = p.Variants(t.Context(), src, all); err != nil {
			t.Fatal(err)
		}
	}
	for i, o := range opts {
		want := same[KeepNone][i]
		if o.Keep == KeepICC {
			want = same[KeepICC][i]
		}
		d := meanAbsDiff(decode(t, want.Data), decode(t, mixed[i].Data))
		t.Logf("%dpx keep=%s: %.2f from the same output in a job of one keep", o.Width, o.Keep, d)
		if d > 1 {
			t.Errorf("%dpx keep=%s: differs from the same output in a job of one keep by %.2f", o.Width, o.Keep, d)
		}
		if hasICC := vipsProfile(t, mixed[i].Data) != nil; hasICC != (o.Keep == KeepICC) {
			t.Errorf("%dpx keep=%s: profile embedded: %v", o.Width, o.Keep, hasICC)
		}
	}
	if d := meanAbsDiff(decode(t, mixed[0].Data), decode(t, mixed[1].Data)); d < 3 {
		t.Errorf("keep=icc and keep=none differ by only %.2f: the test proves nothing", d)
	}
}

// vipsProfile returns the RGB profile libvips reads in b, or nil. It runs
// libvips in this process, as a worker does.
func vipsProfile(t *testing.T, b []byte) []byte {
	t.Helper()
	if err := vipsInit(AllFormats, 0); err != nil {
		t.Fatal(err)
	}
	in := newCbuf(len(b))
	defer in.free()
	copy(in.bytes(), b)
	im, err := vipsLoad(in, "")
	if err != nil {
		t.Fatal(err)
	}
	defer im.free()
	return im.rgbProfile()
}

// iccPrimaries returns the red, green and blue colorant tags of an ICC
// profile (rXYZ, gXYZ, bXYZ), rounded to 1/1000, or zeros.
func iccPrimaries(icc []byte) (p [9]float64) {
	if len(icc) < 132 {
		return p
	}
	n := int(binary.BigEndian.Uint32(icc[128:]))
	for k := 0; k < n && 132+12*k+12 <= len(icc); k++ {
		e := icc[132+12*k:]
		i := map[string]int{"rXYZ": 0, "gXYZ": 3, "bXYZ": 6}[string(e[:4])]
		if string(e[:4]) != "rXYZ" && string(e[:4]) != "gXYZ" && string(e[:4]) != "bXYZ" {
			continue
		}
		off := int(binary.BigEndian.Uint32(e[4:]))
		if off+20 > len(icc) {
			continue
		}
		for j := range 3 {
			v := float64(int32(binary.BigEndian.Uint32(icc[off+8+4*j:]))) / 65536
			p[i+j] = math.Round(v*1000) / 1000
		}
	}
	return p
}
