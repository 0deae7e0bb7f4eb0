package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
)

// jpegCase is a generated JPEG-shaped file and what cleaning it must give.
type jpegCase struct {
	file, want         []byte
	scans, orientation int
	eoiEnd             int // the offset just after EOI (or the refused marker): every shorter prefix is truncated
}

// genJPEG builds a random file of the segments the cleaner keeps and
// drops, nscans scans with stuffed bytes and restart markers in their
// data, fill bytes before markers, stray bytes between segments after the
// first scan, and bytes after EOI, or instead of EOI a marker libjpeg
// refuses and junk; it records what cleaning must give. The generator
// knows what each piece is; the cleaner has to find out.
func genJPEG(r *rand.Rand, nscans int) jpegCase {
	c := jpegCase{orientation: 1}
	sawExif, lastWasScan := false, false
	put := func(piece []byte, keep bool) {
		c.file = append(c.file, piece...)
		if keep {
			c.want = append(c.want, piece...)
		}
	}
	fill := func() []byte { return bytes.Repeat([]byte{0xFF}, r.IntN(3)*r.IntN(3)) }
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	segment := func(m byte, payload []byte) []byte {
		s := append(fill(), 0xFF, m)
		s = binary.BigEndian.AppendUint16(s, uint16(len(payload)+2))
		return append(s, payload...)
	}
	payload := func(prefix string) []byte {
		return append(append([]byte(prefix), "PlantedComment"[:r.IntN(15)]...), noise(r.IntN(24))...)
	}
	// one random segment other than SOF, SOS and EOI; after the first scan
	// also DNL and stray bytes.
	other := func(afterScan bool) {
		wasScan := lastWasScan
		lastWasScan = false
		switch k := r.IntN(19); k {
		case 0:
			put(segment(jpegAPP0, payload("JFIF\x00")), true)
		case 1:
			put(segment(jpegAPP0, payload("JFXX\x00")), true)
		case 2:
			put(segment(jpegAPP0, payload("AVI1")), false)
		case 3:
			v := r.IntN(11)
			tiff := makeTIFF(binary.BigEndian, r.IntN(4), 1, []tiffEntry{orientationEntry(uint32(v))}, 0)
			if !sawExif {
				sawExif = true
				if v >= 1 && v <= 8 {
					c.orientation = v
				}
			}
			put(segment(jpegAPP1, append([]byte("Exif\x00\x00"), tiff...)), false)
		case 4:
			put(segment(jpegAPP1, payload("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>PlantedXMPCreator")), false)
		case 5:
			put(segment(jpegAPP2, payload("ICC_PROFILE\x00")), true)
		case 6:
			put(segment(jpegAPP2, payload([]string{"MPF\x00", "FPXR\x00", "ICC_PROFILX"}[r.IntN(3)])), false)
		case 7:
			put(segment(byte(0xE3+r.IntN(11)), payload("8BIM PlantedIPTCByline")), false) // APP3..APP13
		case 8:
			put(segment(jpegAPPE, payload("Adobe")), true)
		case 9:
			put(segment(jpegAPPE, payload("Adobf")), false) // not "Adobe", whatever the noise
		case 10:
			put(segment(jpegAPPF, payload("")), false)
		case 11:
			put(segment(jpegCOM, payload("PlantedComment")), false)
		case 12:
			put(segment(jpegDQT, payload("")), true)
		case 13:
			put(segment(jpegDHT, payload("")), true)
		case 14:
			put(segment(jpegDAC, payload("")), true)
		case 15:
			put(segment(jpegDRI, noise(2)), true)
		case 16:
			// Outside a scan a restart marker is dropped; right after
			// a scan's data it is taken as part of the scan (libjpeg
			// skips it either way).
			m := []byte{jpegTEM, 0xD0, 0xD3, 0xD7}[r.IntN(4)]
			lastWasScan = wasScan && m != jpegTEM
			put(append(fill(), 0xFF, m), lastWasScan)
		case 17, 18:
			if !afterScan {
				put(segment(jpegDQT, payload("")), true)
				return
			}
			if k == 17 {
				put(segment(jpegDNL, noise(2)), true)
				return
			}
			// Stray bytes after a segment: no 0xFF but in 0xFF 0x00,
			// 0xFF 0xFF 0x00 or a restart marker.
			put(segment(jpegDHT, payload("")), true)
			var s []byte
			for range 1 + r.IntN(12) {
				switch r.IntN(8) {
				case 0:
					s = append(s, 0xFF, 0x00)
				case 1:
					s = append(s, 0xFF, 0xFF, 0x00)
				case 2:
					s = append(s, 0xFF, byte(0xD0+r.IntN(8)))
				default:
					s = append(s, byte(r.UintN(255)))
				}
			}
			put(s, false)
		}
	}
	scan := func() {
		put(segment(jpegSOS, noise(6+r.IntN(8))), true)
		data := noise(r.IntN(3) * r.IntN(200)) // often empty
		var d []byte
		for _, x := range data {
			d = append(d, x)
			if x == 0xFF {
				switch r.IntN(4) {
				case 0:
					d = append(d, byte(0xD0+r.IntN(8)))
				case 1:
					d = append(d, 0xFF, 0x00)
				default:
					d = append(d, 0x00)
				}
			}
		}
		put(d, true)
		c.scans++
		lastWasScan = true
	}

	put([]byte{0xFF, jpegSOI}, true)
	for range r.IntN(8) {
		other(false)
	}
	sofs := []byte{0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
	put(segment(sofs[r.IntN(len(sofs))], noise(6+r.IntN(12))), true)
	for s := range nscans {
		for range r.IntN(3) {
			other(s > 0)
		}
		scan()
	}
	for range r.IntN(3) {
		other(true)
	}
	if r.IntN(6) == 0 {
		// A marker libjpeg refuses, maybe inside the last scan's data,
		// ends the cleaned file with a fresh EOI; what follows is junk.
		bad := [][]byte{{0xFF, 0x03}, {0xFF, 0xF0}, {0xFF, 0xDE}, {0xFF, 0xC8}, {0xFF, jpegSOI}, {0xFF, jpegDQT, 0, 0}, {0xFF, jpegDQT, 0, 1}}
		put(append(fill(), bad[r.IntN(len(bad))]...), false)
		c.eoiEnd = len(c.file)
		c.want = append(c.want, 0xFF, jpegEOI)
		put(noise(r.IntN(64)), false)
		return c
	}
	put(append(fill(), 0xFF, jpegEOI), true)
	c.eoiEnd = len(c.file)
	if r.IntN(3) == 0 {
		put(noise(r.IntN(64)), false)
	}
	if r.IntN(5) == 0 {
		put([]byte("\xFF\xD8\xFF\xE1 a second picture, or <html>PlantedComment</html>"), false)
	}
	return c
}

// TestCleanJPEGModel cleans generated files and checks the result against
// what the generator knows: the kept bytes exactly, the scans, the first
// EXIF segment's orientation. A prefix shorter than EOI must be refused,
// and cleaning a cleaned file must give it back as one slice.
func TestCleanJPEGModel(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 5000 {
		tc := genJPEG(r, 1+r.IntN(5))
		c, err := cleanJPEG(tc.file)
		if err != nil {
			t.Fatalf("case %d: %v\n% x", i, err, tc.file)
		}
		checkCleaned(t, tc.file, c, 1)
		if got := bytes.Join(c.parts, nil); !bytes.Equal(got, tc.want) {
			t.Fatalf("case %d: %s", i, diffBytes(got, tc.want, tc.file))
		}
		if c.scans != tc.scans || c.orientation != tc.orientation {
			t.Fatalf("case %d: scans %d orientation %d, want %d %d", i, c.scans, c.orientation, tc.scans, tc.orientation)
		}
		if n := r.IntN(tc.eoiEnd); true {
			if _, err := cleanJPEG(tc.file[:n]); !errors.Is(err, ErrUndecodable) {
				t.Fatalf("case %d: prefix of %d bytes, before EOI at %d: err = %v", i, n, tc.eoiEnd, err)
			}
		}
		again, err := cleanJPEG(tc.want)
		if err != nil || len(again.parts) != 1 || !bytes.Equal(again.parts[0], tc.want) || again.scans != tc.scans || again.orientation != 1 {
			t.Fatalf("case %d: cleaning again gave %d parts, scans %d, orientation %d, %v", i, len(again.parts), again.scans, again.orientation, err)
		}
	}
}

func TestCleanJPEGHostile(t *testing.T) {
	soi := []byte{0xFF, 0xD8}
	seg := func(m byte, n int) []byte { // a segment with an n-byte payload
		s := binary.BigEndian.AppendUint16([]byte{0xFF, m}, uint16(n+2))
		return append(s, make([]byte, n)...)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	sof, sos, eoi := seg(0xC0, 9), seg(jpegSOS, 8), []byte{0xFF, 0xD9}
	minimal := cat(soi, sof, sos, []byte{1, 2, 3}, eoi)
	closed := func(parts ...[]byte) []byte { return append(cat(parts...), 0xFF, jpegEOI) }
	tests := []struct {
		name  string
		b     []byte
		ok    bool
		scans int
		want  []byte // when not nil, the cleaned file
	}{
		{"empty", nil, false, 0, nil},
		{"not a JPEG", []byte("GIF89a"), false, 0, nil},
		{"SOI only", soi, false, 0, nil},
		{"minimal", minimal, true, 1, nil},
		{"segment length 0xFFFF past the end", cat(soi, []byte{0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x'}), false, 0, nil},
		{"segment length 0", cat(soi, []byte{0xFF, 0xE1, 0, 0}, sof, sos, eoi), false, 0, nil},
		{"segment length 1", cat(soi, []byte{0xFF, 0xDB, 0, 1}, sof, sos, eoi), false, 0, nil},
		{"length cut in half", cat(soi, []byte{0xFF, 0xDB, 0}), false, 0, nil},
		{"stray byte before the first scan", cat(soi, []byte{0}, sof, sos, eoi), false, 0, nil},
		{"0xFF 0x00 before the first scan", cat(soi, []byte{0xFF, 0}, sof, sos, eoi), false, 0, nil},
		{"second SOI", cat(soi, soi, sof, sos, eoi), false, 0, nil},
		{"scan before frame", cat(soi, sos, sof, eoi), false, 0, nil},
		{"EOI before any scan", cat(soi, sof, eoi), false, 0, nil},
		{"DHP (hierarchical)", cat(soi, seg(0xDE, 4), sof, sos, eoi), false, 0, nil},
		{"JPG0 extension", cat(soi, seg(0xF0, 4), sof, sos, eoi), false, 0, nil},
		{"JPG0 extension after the scan", cat(soi, sof, sos, seg(0xF0, 4), eoi), true, 1, closed(soi, sof, sos)},
		{"unknown marker in the scan data", cat(soi, sof, sos, []byte{1, 2, 0xFF, 0x03, 0xFF, 0xE1, 0xFF, 0xFF}, eoi), true, 1, closed(soi, sof, sos, []byte{1, 2})},
		{"second SOI after the scan", cat(soi, sof, sos, soi, sof, sos, eoi), true, 1, closed(soi, sof, sos)},
		{"DQT of length 0 after the scan", cat(soi, sof, sos, []byte{0xFF, 0xDB, 0, 0}, eoi), true, 1, closed(soi, sof, sos)},
		{"DQT of length 0xFFFF after the scan", cat(soi, sof, sos, []byte{0xFF, 0xDB, 0xFF, 0xFF}, eoi), false, 0, nil},
		{"reserved 0x02", cat(soi, seg(0x02, 4), sof, sos, eoi), false, 0, nil},
		{"no EOI after the scan", cat(soi, sof, sos, []byte{1, 2, 3}), false, 0, nil},
		{"scan data ends in 0xFF", cat(soi, sof, sos, []byte{1, 0xFF}), false, 0, nil},
		{"scan data ends in fill bytes", cat(soi, sof, sos, []byte{1, 0xFF, 0xFF, 0xFF}), false, 0, nil},
		{"a megabyte of fill bytes", cat(soi, bytes.Repeat([]byte{0xFF}, 1<<20), sof[1:], sos, eoi), true, 1, nil},
		{"a megabyte of fill bytes, then nothing", cat(soi, bytes.Repeat([]byte{0xFF}, 1<<20)), false, 0, nil},
		{"a megabyte of stuffed bytes", cat(soi, sof, sos, bytes.Repeat([]byte{0xFF, 0}, 1<<19), eoi), true, 1, nil},
		{"a megabyte of restart markers", cat(soi, sof, sos, bytes.Repeat([]byte{0xFF, 0xD5}, 1<<19), eoi), true, 1, nil},
		{"a megabyte of stray bytes after a scan", cat(soi, sof, sos, seg(jpegDHT, 4), bytes.Repeat([]byte{0xFF, 0}, 1<<19), eoi), true, 1, nil},
		{"2000 empty scans", cat(soi, sof, bytes.Repeat(sos, 2000), eoi), true, 2000, nil},
		{"EOI inside an EXIF segment is not the end", cat(soi, []byte{0xFF, 0xE1, 0, 6, 0xFF, 0xD9, 0xFF, 0xD9}, sof, sos, eoi), true, 1, nil},
	}
	for _, tt := range tests {
		c, err := cleanWithin(t, cleanJPEG, tt.b)
		if tt.ok != (err == nil) {
			t.Errorf("%s: err = %v, want ok %v", tt.name, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Errorf("%s: %v does not wrap ErrUndecodable", tt.name, err)
			}
			continue
		}
		checkCleaned(t, tt.b, c, 1)
		if c.scans != tt.scans {
			t.Errorf("%s: %d scans, want %d", tt.name, c.scans, tt.scans)
		}
		if got := bytes.Join(c.parts, nil); tt.want != nil && !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %s", tt.name, diffBytes(got, tt.want, tt.b))
		}
	}
}

// TestCleanJPEGManyParts checks the bound on the gather list: a file of
// thousands of segments, kept and dropped in turn, comes out in at most
// maxParts parts that still hold exactly the kept bytes.
func TestCleanJPEGManyParts(t *testing.T) {
	dqt := []byte{0xFF, jpegDQT, 0, 3, 7}
	com := []byte{0xFF, jpegCOM, 0, 3, 'x'}
	b, want := []byte{0xFF, 0xD8}, []byte{0xFF, 0xD8}
	for range 5000 {
		b = append(append(b, dqt...), com...)
		want = append(want, dqt...)
	}
	tail := []byte{0xFF, 0xC0, 0, 3, 0, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9}
	b, want = append(b, tail...), append(want, tail...)
	c, err := cleanJPEG(b)
	if err != nil {
		t.Fatal(err)
	}
	checkCleaned(t, b, c, 1)
	if len(c.parts) != maxParts || !bytes.Equal(bytes.Join(c.parts, nil), want) {
		t.Fatalf("%d parts, %d bytes; want %d parts, %d bytes", len(c.parts), c.size, maxParts, len(want))
	}
}

// jpegFiles makes the JPEGs the tool tests use: Go's baseline encoding of
// a test picture, libvips' progressive encoding of it, and the testdata
// photographs with an ICC profile (P3) and in CMYK (Adobe segment).
func jpegFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testPicture(96, 64), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	src := writeTestFile(t, dir, "src.png", encodeTestPNG(t, testPicture(96, 64)))
	prog := filepath.Join(dir, "prog.jpg")
	runTool(t, "vips", "copy", src, prog+"[interlace,strip]")
	files := map[string][]byte{"baseline": buf.Bytes(), "progressive": readTestFile(t, prog)}
	for _, name := range []string{"p3.jpg", "cmyk.jpg"} {
		files[strings.TrimSuffix(name, ".jpg")] = readTestFile(t, filepath.Join("..", "..", "testdata", name))
	}
	return files
}

// TestCleanJPEGMetadata plants EXIF (with GPS, artist, maker note and
// each orientation 1..8), XMP, IPTC and a comment with exiftool, then
// checks that the cleaned file has none of them, as exiftool and the bytes
// tell, keeps its ICC profile and Adobe segment, decodes to the same
// pixels with image/jpeg and with libvips, has the same scans, and gave
// the planted orientation.
func TestCleanJPEGMetadata(t *testing.T) {
	dir := t.TempDir()
	files := jpegFiles(t, dir)
	planted := map[string]int{}
	for name, b := range files {
		for o := 1; o <= 8; o++ {
			planted[writeTestFile(t, dir, fmt.Sprintf("%s-%d.jpg", name, o), b)] = o
		}
	}
	plantMetadata(t, planted)
	var paths []string
	for path, o := range planted {
		in := readTestFile(t, path)
		// a second picture and a polyglot payload after EOI
		in = append(in, "\xFF\xD8\xFF\xE0<html>PlantedComment</html>"...)
		c, err := cleanJPEG(in)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		checkCleaned(t, in, c, 1)
		if c.orientation != o {
			t.Errorf("%s: orientation %d, want %d", path, c.orientation, o)
		}
		if d := djpegScans(t, path); c.scans != d {
			t.Errorf("%s: %d scans, djpeg counts %d", path, c.scans, d)
		}
		out := bytes.Join(c.parts, nil)
		samePixels(t, decodeImage(t, in), decodeImage(t, out))
		paths = append(paths, path, writeTestFile(t, dir, "clean-"+filepath.Base(path), out))
	}
	tags := exifTags(t, paths...)
	for k := 0; k < len(paths); k += 2 {
		in, out := paths[k], paths[k+1]
		checkStripped(t, tags[in], tags[out], readTestFile(t, out), plantedStrings)
		for _, g := range []string{"ICC-header:ColorSpaceData", "Adobe:ColorTransform"} {
			if (tags[in][g] == nil) != (tags[out][g] == nil) {
				t.Errorf("%s: %s was %v, is %v", out, g, tags[in][g], tags[out][g])
			}
		}
		if planted[in] == 1 {
			// libvips, failing on any warning, reads the same pixels
			runTool(t, "vips", "copy", in+"[fail]", filepath.Join(dir, "in.v"))
			runTool(t, "vips", "copy", out+"[fail]", filepath.Join(dir, "out.v"))
			if !bytes.Equal(vipsPixels(t, filepath.Join(dir, "in.v")), vipsPixels(t, filepath.Join(dir, "out.v"))) {
				t.Errorf("%s: libvips decodes different pixels", out)
			}
		}
	}
}

func TestCleanJPEGNothingToRemove(t *testing.T) {
	dir := t.TempDir()
	for name, b := range jpegFiles(t, dir) {
		if name == "p3" || name == "cmyk" {
			continue // these carry EXIF
		}
		c, err := cleanJPEG(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.parts) != 1 || !bytes.Equal(c.parts[0], b) || &c.parts[0][0] != &b[0] || c.size != len(b) {
			t.Errorf("%s: %d parts of %d bytes, want the input as one slice", name, len(c.parts), c.size)
		}
	}
}

// TestCleanJPEGScans counts the scans of a baseline, a progressive and a
// crafted file of thousands of empty scans, and checks the first two
// against libjpeg's own count.
func TestCleanJPEGScans(t *testing.T) {
	dir := t.TempDir()
	files := jpegFiles(t, dir)
	for _, tt := range []struct {
		name  string
		scans int
	}{{"baseline", 1}, {"progressive", 10}} {
		c, err := cleanJPEG(files[tt.name])
		if err != nil {
			t.Fatal(err)
		}
		djpeg := djpegScans(t, writeTestFile(t, dir, tt.name+".jpg", files[tt.name]))
		if c.scans != tt.scans || djpeg != tt.scans {
			t.Errorf("%s: %d scans, djpeg %d, want %d", tt.name, c.scans, djpeg, tt.scans)
		}
	}

	// After the last scan of the progressive file, insert empty scans:
	// copies of its last SOS segment with no data.
	prog := files["progressive"]
	last := bytes.LastIndex(prog, []byte{0xFF, jpegSOS})
	sos := prog[last : last+2+int(binary.BigEndian.Uint16(prog[last+2:]))]
	eoi := len(prog) - 2
	for _, n := range []int{1, 100, 2000, 50000} {
		b := append(append(bytes.Clone(prog[:eoi]), bytes.Repeat(sos, n)...), prog[eoi:]...)
		c, err := cleanJPEG(b)
		if err != nil {
			t.Fatal(err)
		}
		if c.scans != 10+n || len(c.parts) != 1 {
			t.Errorf("%d empty scans added: %d scans in %d parts, want %d in 1", n, c.scans, len(c.parts), 10+n)
		}
		if n == 100 {
			if d := djpegScans(t, writeTestFile(t, dir, "empty.jpg", b)); d != 10+n {
				t.Errorf("djpeg counts %d scans, want %d", d, 10+n)
			}
		}
	}
}

func TestCleanJPEGTruncations(t *testing.T) {
	dir := t.TempDir()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testPicture(16, 16), &jpeg.Options{Quality: 50}); err != nil {
		t.Fatal(err)
	}
	path := writeTestFile(t, dir, "small.jpg", buf.Bytes())
	plantMetadata(t, map[string]int{path: 6})
	checkTruncations(t, cleanJPEG, readTestFile(t, path), 1)
}

// bigJPEG encodes a noisy picture at quality 100: about 7 MB of
// entropy-coded data, the size of a large phone photograph.
func bigJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 2400, 1600))
	r := rand.New(rand.NewPCG(5, 6))
	for i := range img.Pix {
		img.Pix[i] = byte(r.UintN(256))
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkCleanJPEG cleans a 7 MB photograph-like file, and the worst
// case for the scan walk: 7 MB of entropy-coded data that is all stuffed
// 0xFF bytes, a stop for bytes.IndexByte every two bytes.
func BenchmarkCleanJPEG(b *testing.B) {
	photo := bigJPEG(b)
	sos := bytes.Index(photo, []byte{0xFF, jpegSOS})
	stuffed := append(bytes.Clone(photo[:sos+14]), bytes.Repeat([]byte{0xFF, 0x00}, len(photo)/2)...)
	stuffed = append(stuffed, 0xFF, jpegEOI)
	for _, bm := range []struct {
		name string
		in   []byte
	}{{"photo", photo}, {"stuffed", stuffed}} {
		b.Run(bm.name, func(b *testing.B) {
			b.SetBytes(int64(len(bm.in)))
			b.ReportAllocs()
			for b.Loop() {
				c, err := cleanJPEG(bm.in)
				if err != nil || c.scans != 1 || c.size != len(bm.in) {
					b.Fatal(c.scans, c.size, err)
				}
			}
		})
	}
}

// FuzzCleanJPEG checks that any bytes are refused with ErrUndecodable or
// cleaned within the invariants; that a cleaned file cleans to itself;
// and that a file image/jpeg decodes still decodes, to the same pixels.
func FuzzCleanJPEG(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 8 {
		f.Add(genJPEG(r, 1+r.IntN(3)).file)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testPicture(16, 8), nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cleanJPEG(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		checkCleaned(t, b, c, 1)
		out := bytes.Join(c.parts, nil)
		again, err := cleanJPEG(out)
		if err != nil || len(again.parts) != 1 || again.scans != c.scans {
			t.Fatalf("cleaning the cleaned file: %d parts, %d scans (want %d), %v", len(again.parts), again.scans, c.scans, err)
		}
		if !smallImage(b) {
			return // decoding a picture of a gigapixel would only slow the fuzzer
		}
		if want, err := jpeg.Decode(bytes.NewReader(b)); err == nil {
			got, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("the input decodes, the cleaned file does not: %v", err)
			}
			samePixels(t, want, got)
		}
	})
}
