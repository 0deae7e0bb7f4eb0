package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/webp"
)

// webpChunk returns a chunk with its pad byte, which is random: the
// cleaner must copy it, not make it.
func webpChunk(r *rand.Rand, fourcc string, payload []byte) []byte {
	c := binary.LittleEndian.AppendUint32([]byte(fourcc), uint32(len(payload)))
	c = append(c, payload...)
	if len(payload)%2 == 1 {
		c = append(c, byte(r.UintN(256)))
	}
	return c
}

// webpFile wraps chunks in a RIFF WEBP header.
func webpFile(chunks ...[]byte) []byte {
	body := bytes.Join(chunks, nil)
	b := binary.LittleEndian.AppendUint32([]byte("RIFF"), uint32(4+len(body)))
	return append(append(b, "WEBP"...), body...)
}

// webpCase is a generated WebP-shaped file and what cleaning it must give.
type webpCase struct {
	file, want  []byte
	orientation int
	riffEnd     int // the RIFF's end: every shorter prefix is truncated
	unchanged   bool
}

// genWebP builds a random file: a VP8X chunk with random flags (or a VP8
// or VP8L chunk), then chunks the cleaner keeps (image, alpha, animation,
// ICC) and drops (EXIF with and without the Exif prefix, XMP, unknown),
// odd sizes with their pad bytes, sometimes a last chunk without its pad,
// and bytes after the RIFF's end; it records what cleaning must give.
func genWebP(r *rand.Rand) webpCase {
	c := webpCase{orientation: 1}
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	var chunks, kept [][]byte
	dropped, rewrite := false, false
	sawExif, lastKept := false, true
	switch r.IntN(3) {
	case 0:
		flags := byte(r.UintN(256))
		vp8x := webpChunk(r, "VP8X", append([]byte{flags}, noise(9+2*r.IntN(2))...))
		chunks = append(chunks, vp8x)
		clean := bytes.Clone(vp8x)
		clean[8] &^= webpFlagEXIF | webpFlagXMP
		kept = append(kept, clean)
		rewrite = clean[8] != flags
	default:
		ch := webpChunk(r, []string{"VP8 ", "VP8L"}[r.IntN(2)], noise(r.IntN(30)))
		chunks, kept = append(chunks, ch), append(kept, ch)
	}
	keep := []string{"VP8 ", "VP8L", "ALPH", "ANIM", "ANMF", "ICCP"}
	drop := []string{"XMP ", "UNKN", "exif", "ICCp", "\x00\x00\x00\x00"}
	for range r.IntN(8) {
		switch r.IntN(3) {
		case 0:
			ch := webpChunk(r, keep[r.IntN(len(keep))], noise(r.IntN(30)))
			chunks, kept = append(chunks, ch), append(kept, ch)
			lastKept = true
		case 1:
			chunks = append(chunks, webpChunk(r, drop[r.IntN(len(drop))], append([]byte("PlantedXMPCreator"), noise(r.IntN(9))...)))
			dropped, lastKept = true, false
		default:
			v := r.IntN(11)
			tiff := makeTIFF(binary.BigEndian, r.IntN(3), 1, []tiffEntry{orientationEntry(uint32(v))}, 0)
			if r.IntN(2) == 0 {
				tiff = append([]byte("Exif\x00\x00"), tiff...)
			}
			if !sawExif {
				sawExif = true
				if v >= 1 && v <= 8 {
					c.orientation = v
				}
			}
			chunks = append(chunks, webpChunk(r, "EXIF", tiff))
			dropped, lastKept = true, false
		}
	}
	c.file = webpFile(chunks...)
	if last := chunks[len(chunks)-1]; binary.LittleEndian.Uint32(last[4:])%2 == 1 && r.IntN(2) == 0 {
		// the last chunk without its pad byte
		c.file = c.file[:len(c.file)-1]
		binary.LittleEndian.PutUint32(c.file[4:], uint32(len(c.file)-8))
		if lastKept {
			k := len(kept) - 1
			kept[k] = kept[k][:len(kept[k])-1]
		}
	}
	c.riffEnd = len(c.file)
	if dropped {
		c.want = webpFile(kept...)
	} else {
		c.want = append(bytes.Clone(c.file[:12]), bytes.Join(kept, nil)...)
	}
	c.unchanged = !dropped && !rewrite
	if r.IntN(3) == 0 {
		c.file = append(c.file, noise(r.IntN(40))...)
	}
	if r.IntN(4) == 0 {
		c.file = append(c.file, webpChunk(r, "XMP ", []byte("PlantedXMPCreator"))...)
	}
	return c
}

// TestCleanWebPModel cleans generated files and checks the result against
// what the generator knows: exactly the kept chunks under a RIFF header
// with the right size, the VP8X metadata flags cleared, the first EXIF
// chunk's orientation, the input as one slice when nothing changes. A
// prefix shorter than the RIFF must be refused, and cleaning a cleaned
// file must give it back as one slice.
func TestCleanWebPModel(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for i := range 5000 {
		tc := genWebP(r)
		c, err := cleanWebP(tc.file)
		if err != nil {
			t.Fatalf("case %d: %v\n% x", i, err, tc.file)
		}
		checkCleaned(t, tc.file, c, 2)
		if got := bytes.Join(c.parts, nil); !bytes.Equal(got, tc.want) {
			t.Fatalf("case %d: %s", i, diffBytes(got, tc.want, tc.file))
		}
		if c.orientation != tc.orientation || c.scans != 0 {
			t.Fatalf("case %d: orientation %d scans %d, want %d 0", i, c.orientation, c.scans, tc.orientation)
		}
		if tc.unchanged && (len(c.parts) != 1 || &c.parts[0][0] != &tc.file[0]) {
			t.Fatalf("case %d: nothing to change, but %d parts", i, len(c.parts))
		}
		if n := r.IntN(tc.riffEnd); true {
			if _, err := cleanWebP(tc.file[:n]); !errors.Is(err, ErrUndecodable) {
				t.Fatalf("case %d: prefix of %d bytes, before the RIFF's end at %d: err = %v", i, n, tc.riffEnd, err)
			}
		}
		again, err := cleanWebP(tc.want)
		if err != nil || len(again.parts) != 1 || !bytes.Equal(again.parts[0], tc.want) || again.orientation != 1 {
			t.Fatalf("case %d: cleaning again gave %d parts, orientation %d, %v", i, len(again.parts), again.orientation, err)
		}
	}
}

func TestCleanWebPHostile(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	vp8x := webpChunk(r, "VP8X", make([]byte, 10))
	vp8 := webpChunk(r, "VP8 ", make([]byte, 11))
	withSize := func(fourcc string, n uint32) []byte {
		return append(binary.LittleEndian.AppendUint32([]byte(fourcc), n), "abcdefgh"...)
	}
	setRIFF := func(b []byte, n uint32) []byte {
		binary.LittleEndian.PutUint32(b[4:], n)
		return b
	}
	exif := append([]byte("Exif\x00\x00"), makeTIFF(binary.LittleEndian, 0, 1, []tiffEntry{orientationEntry(6)}, 0)...)
	bigExif := append(bytes.Clone(exif), make([]byte, 20<<20)...)
	var many [][]byte
	for range 3000 {
		many = append(many, webpChunk(r, "UNKN", []byte{1}), webpChunk(r, "ALPH", []byte{2}))
	}
	var manyKept [][]byte
	for k := 1; k < len(many); k += 2 {
		manyKept = append(manyKept, many[k])
	}
	tests := []struct {
		name        string
		b           []byte
		want        []byte // the cleaned file, or nil for an error
		orientation int
	}{
		{"empty", nil, nil, 1},
		{"RIFF WAVE", webpFile(vp8)[:8], nil, 1},
		{"header only", setRIFF(webpFile(vp8)[:12], 4), nil, 1},
		{"RIFF size 0", setRIFF(webpFile(vp8), 0), nil, 1},
		{"RIFF size 0xFFFFFFFF", setRIFF(webpFile(vp8), 0xFFFFFFFF), nil, 1},
		{"RIFF size one past the end", setRIFF(webpFile(vp8), uint32(4+len(vp8)+1)), nil, 1},
		{"chunk size 0xFFFFFFFF", webpFile(vp8, withSize("EXIF", 0xFFFFFFFF)), nil, 1},
		{"chunk size one past the RIFF's end", webpFile(vp8, withSize("EXIF", 9)), nil, 1},
		{"chunk header cut short", webpFile(vp8, []byte("EXIF")), nil, 1},
		{"first chunk is ALPH", webpFile(webpChunk(r, "ALPH", nil), vp8), nil, 1},
		{"first chunk is EXIF", webpFile(webpChunk(r, "EXIF", exif), vp8), nil, 1},
		{"VP8X of 9 bytes", webpFile(webpChunk(r, "VP8X", make([]byte, 9)), vp8), nil, 1},
		{"VP8X of 0 bytes", webpFile(webpChunk(r, "VP8X", nil), vp8), nil, 1},
		{"minimal", webpFile(vp8), webpFile(vp8), 1},
		{"bytes after the RIFF", append(webpFile(vp8), "<html>"...), webpFile(vp8), 1},
		{"20 MiB of EXIF", webpFile(vp8x, vp8, webpChunk(r, "EXIF", bigExif)), webpFile(vp8x, vp8), 6},
		{"thousands of tiny chunks", webpFile(append([][]byte{vp8x}, many...)...), webpFile(append([][]byte{vp8x}, manyKept...)...), 1},
	}
	for _, tt := range tests {
		c, err := cleanWithin(t, cleanWebP, tt.b)
		if (err == nil) != (tt.want != nil) {
			t.Errorf("%s: err = %v", tt.name, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Errorf("%s: %v does not wrap ErrUndecodable", tt.name, err)
			}
			continue
		}
		checkCleaned(t, tt.b, c, 2)
		if got := bytes.Join(c.parts, nil); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %s", tt.name, diffBytes(got, tt.want, tt.b))
		}
		if c.orientation != tt.orientation {
			t.Errorf("%s: orientation %d, want %d", tt.name, c.orientation, tt.orientation)
		}
	}
}

// webpFiles makes the WebPs the tool tests use, none with metadata: cwebp's
// lossy (VP8), lossless (VP8L) and lossy-with-alpha (VP8X, ALPH) encodings
// of a test picture, and gif2webp's animation (VP8X, ANIM, ANMF) of a GIF.
func webpFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	opaque := writeTestFile(t, dir, "opaque.png", encodeTestPNG(t, testPicture(96, 64)))
	translucent := testPicture(96, 64)
	for i := 3; i < len(translucent.Pix); i += 4 {
		translucent.Pix[i] = uint8(i / 4 % 256)
	}
	alpha := writeTestFile(t, dir, "alpha.png", encodeTestPNG(t, translucent))
	anim := &gif.GIF{}
	for k := range 3 {
		frame := image.NewPaletted(image.Rect(0, 0, 40, 30), palette.Plan9)
		for y := range 30 {
			for x := range 40 {
				frame.Set(x, y, color.RGBA{uint8(x*6 + k*50), uint8(y * 8), uint8(k * 80), 255})
			}
		}
		anim.Image, anim.Delay = append(anim.Image, frame), append(anim.Delay, 10)
	}
	var gifBytes bytes.Buffer
	if err := gif.EncodeAll(&gifBytes, anim); err != nil {
		t.Fatal(err)
	}
	animGIF := writeTestFile(t, dir, "anim.gif", gifBytes.Bytes())

	files := map[string][]byte{}
	for name, args := range map[string][]string{
		"lossy":    {"cwebp", "-quiet", opaque},
		"lossless": {"cwebp", "-quiet", "-lossless", opaque},
		"alpha":    {"cwebp", "-quiet", alpha},
		"animated": {"gif2webp", "-quiet", animGIF},
	} {
		out := filepath.Join(dir, name+".webp")
		runTool(t, args[0], append(args[1:], "-o", out)...)
		files[name] = readTestFile(t, out)
	}
	return files
}

// TestCleanWebPMetadata plants EXIF (GPS, artist, maker note, each
// orientation 1..8) and XMP with exiftool into WebPs of every kind, and
// also has libvips (EXIF with the Exif prefix) and cwebp (without it) copy
// a planted JPEG's metadata into WebPs, as the service's own outputs did.
// It checks that the cleaned file has no metadata, as exiftool, webpmux
// and the bytes tell, decodes to the same pixels (golang.org/x/image/webp
// for still pictures, libvips for all), and gave the planted orientation.
func TestCleanWebPMetadata(t *testing.T) {
	dir := t.TempDir()
	planted := map[string]int{}
	for name, b := range webpFiles(t, dir) {
		for o := 1; o <= 8; o++ {
			planted[writeTestFile(t, dir, fmt.Sprintf("%s-%d.webp", name, o), b)] = o
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, testPicture(96, 64), nil); err != nil {
		t.Fatal(err)
	}
	jpegs := map[string]int{}
	for o := 1; o <= 8; o++ {
		jpegs[writeTestFile(t, dir, fmt.Sprintf("src-%d.jpg", o), buf.Bytes())] = o
	}
	plantMetadata(t, planted)
	plantMetadata(t, jpegs)
	for src, o := range jpegs {
		viaVips := filepath.Join(dir, fmt.Sprintf("vips-%d.webp", o))
		runTool(t, "vips", "copy", src, viaVips)
		viaCwebp := filepath.Join(dir, fmt.Sprintf("cwebp-%d.webp", o))
		runTool(t, "cwebp", "-quiet", "-metadata", "exif,xmp", src, "-o", viaCwebp)
		planted[viaVips], planted[viaCwebp] = o, o
	}

	var paths []string
	for path, o := range planted {
		in := append(readTestFile(t, path), "<html>PlantedComment</html>"...)
		c, err := cleanWebP(in)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		checkCleaned(t, in, c, 2)
		if c.orientation != o {
			t.Errorf("%s: orientation %d, want %d", path, c.orientation, o)
		}
		out := bytes.Join(c.parts, nil)
		if !strings.Contains(path, "animated") {
			samePixels(t, decodeWebP(t, in), decodeWebP(t, out))
		}
		outPath := writeTestFile(t, dir, "clean-"+filepath.Base(path), out)
		info, _ := runTool(t, "webpmux", "-info", outPath)
		if bytes.Contains(info, []byte("EXIF")) || bytes.Contains(info, []byte("XMP")) {
			t.Errorf("%s: webpmux still finds metadata:\n%s", outPath, info)
		}
		paths = append(paths, path, outPath)
	}
	tags := exifTags(t, paths...)
	for k := 0; k < len(paths); k += 2 {
		in, out := paths[k], paths[k+1]
		// WebP has no IPTC or comment; exiftool plants the rest.
		checkStripped(t, tags[in], tags[out], readTestFile(t, out), webpPlanted)
		if o := planted[in]; o == 1 || strings.Contains(in, "animated") && o == 2 {
			runTool(t, "vips", "copy", in+"[n=-1,fail]", filepath.Join(dir, "in.v"))
			runTool(t, "vips", "copy", out+"[n=-1,fail]", filepath.Join(dir, "out.v"))
			if !bytes.Equal(vipsPixels(t, filepath.Join(dir, "in.v")), vipsPixels(t, filepath.Join(dir, "out.v"))) {
				t.Errorf("%s: libvips decodes different pixels", out)
			}
		}
	}
}

// webpPlanted are the planted strings exiftool can write into a WebP,
// which has no place for IPTC or a comment.
var webpPlanted = []string{
	"PlantedArtist", "PlantedCopyright", "PlantedDescription", "PlantedModel",
	"PlantedMakerNote", "PlantedUserComment", "PlantedGPSArea", "PlantedXMPCreator",
}

func decodeWebP(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, err := webp.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("decode WebP: %v", err)
	}
	return img
}

func TestCleanWebPNothingToRemove(t *testing.T) {
	for name, b := range webpFiles(t, t.TempDir()) {
		c, err := cleanWebP(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.parts) != 1 || &c.parts[0][0] != &b[0] || c.size != len(b) || c.orientation != 1 {
			t.Errorf("%s: %d parts of %d bytes, want the input as one slice", name, len(c.parts), c.size)
		}
	}
}

func TestCleanWebPTruncations(t *testing.T) {
	dir := t.TempDir()
	path := writeTestFile(t, dir, "small.webp", webpFiles(t, dir)["alpha"])
	plantMetadata(t, map[string]int{path: 6})
	checkTruncations(t, cleanWebP, readTestFile(t, path), 2)
}

// FuzzCleanWebP checks that any bytes are refused with ErrUndecodable or
// cleaned within the invariants (at most two rewritten headers); that a
// cleaned file cleans to itself; and that a file golang.org/x/image/webp
// decodes still decodes, to the same pixels.
func FuzzCleanWebP(f *testing.F) {
	r := rand.New(rand.NewPCG(19, 20))
	for range 8 {
		f.Add(genWebP(r).file)
	}
	for _, b := range webpFiles(f, f.TempDir()) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cleanWebP(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		checkCleaned(t, b, c, 2)
		out := bytes.Join(c.parts, nil)
		if again, err := cleanWebP(out); err != nil || len(again.parts) != 1 {
			t.Fatalf("cleaning the cleaned file: %d parts, %v", len(again.parts), err)
		}
		if !smallImage(b) {
			return
		}
		if want, err := webp.Decode(bytes.NewReader(b)); err == nil {
			got, err := webp.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("the input decodes, the cleaned file does not: %v", err)
			}
			samePixels(t, want, got)
		}
	})
}
