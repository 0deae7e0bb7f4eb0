package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image/png"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// pngChunk returns a chunk; its CRC is random, since the cleaner must
// neither check nor recompute it.
func pngChunk(r *rand.Rand, typ string, payload []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	c = append(append(c, typ...), payload...)
	return binary.BigEndian.AppendUint32(c, r.Uint32())
}

// pngCase is a generated PNG-shaped file and what cleaning it must give.
type pngCase struct {
	file, want  []byte
	orientation int
	iendEnd     int // the offset just after IEND: every shorter prefix is truncated
}

// genPNG builds a random file: the signature, IHDR, then chunks the
// cleaner keeps (image data, palette, colour, animation, private) and
// drops (text, EXIF, time) in any order, IEND and sometimes bytes after
// it; it records what cleaning must give.
func genPNG(r *rand.Rand) pngCase {
	c := pngCase{orientation: 1}
	sawExif := false
	put := func(piece []byte, keep bool) {
		c.file = append(c.file, piece...)
		if keep {
			c.want = append(c.want, piece...)
		}
	}
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	}
	put(pngSignature, true)
	put(pngChunk(r, "IHDR", noise(13)), true)
	kept := []string{"IDAT", "PLTE", "tRNS", "iCCP", "sRGB", "gAMA", "pHYs", "acTL", "fcTL", "fdAT", "prVt", "IHDR", "cICP"}
	dropped := []string{"tEXt", "zTXt", "iTXt", "tIME"}
	for range r.IntN(12) {
		switch k := r.IntN(3); {
		case k == 0:
			put(pngChunk(r, kept[r.IntN(len(kept))], noise(r.IntN(40))), true)
		case k == 1:
			text := append([]byte("Comment\x00PlantedComment"), noise(r.IntN(20))...)
			put(pngChunk(r, dropped[r.IntN(len(dropped))], text), false)
		default:
			v := r.IntN(11)
			tiff := makeTIFF(binary.LittleEndian, r.IntN(3), 1, []tiffEntry{orientationEntry(uint32(v))}, 0)
			if r.IntN(4) == 0 {
				tiff = append([]byte("Exif\x00\x00"), tiff...)
			}
			if !sawExif {
				sawExif = true
				if v >= 1 && v <= 8 {
					c.orientation = v
				}
			}
			put(pngChunk(r, "eXIf", tiff), false)
		}
	}
	put(pngChunk(r, "IEND", nil), true)
	c.iendEnd = len(c.file)
	if r.IntN(3) == 0 {
		put(noise(r.IntN(40)), false)
	}
	if r.IntN(4) == 0 {
		put(pngChunk(r, "tEXt", []byte("after IEND\x00PlantedComment")), false)
	}
	return c
}

// TestCleanPNGModel cleans generated files and checks the result against
// what the generator knows: exactly the kept chunks, the first eXIf's
// orientation. A prefix shorter than IEND must be refused, and cleaning a
// cleaned file must give it back as one slice.
func TestCleanPNGModel(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := range 5000 {
		tc := genPNG(r)
		c, err := cleanPNG(tc.file)
		if err != nil {
			t.Fatalf("case %d: %v\n% x", i, err, tc.file)
		}
		checkCleaned(t, tc.file, c, 0)
		if got := bytes.Join(c.parts, nil); !bytes.Equal(got, tc.want) {
			t.Fatalf("case %d: %s", i, diffBytes(got, tc.want, tc.file))
		}
		if c.orientation != tc.orientation || c.scans != 0 {
			t.Fatalf("case %d: orientation %d scans %d, want %d 0", i, c.orientation, c.scans, tc.orientation)
		}
		if n := r.IntN(tc.iendEnd); true {
			if _, err := cleanPNG(tc.file[:n]); !errors.Is(err, ErrUndecodable) {
				t.Fatalf("case %d: prefix of %d bytes, before IEND's end at %d: err = %v", i, n, tc.iendEnd, err)
			}
		}
		again, err := cleanPNG(tc.want)
		if err != nil || len(again.parts) != 1 || !bytes.Equal(again.parts[0], tc.want) || again.orientation != 1 {
			t.Fatalf("case %d: cleaning again gave %d parts, orientation %d, %v", i, len(again.parts), again.orientation, err)
		}
	}
}

func TestCleanPNGHostile(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	ihdr, iend := pngChunk(r, "IHDR", make([]byte, 13)), pngChunk(r, "IEND", nil)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	withLength := func(typ string, n uint32) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), typ+"abcdefgh"...)
	}
	var many, manyWant []byte
	for range 3000 {
		many = append(many, pngChunk(r, "tEXt", []byte("a\x00b"))...)
		idat := pngChunk(r, "IDAT", []byte{1})
		many, manyWant = append(many, idat...), append(manyWant, idat...)
	}
	var bomb []byte
	for range 20 {
		bomb = append(bomb, pngChunk(r, "zTXt", append([]byte("Comment\x00\x00"), make([]byte, 1<<20)...))...)
	}
	tests := []struct {
		name string
		b    []byte
		want []byte // the cleaned file, or nil for an error
	}{
		{"empty", nil, nil},
		{"JPEG", []byte{0xFF, 0xD8, 0xFF}, nil},
		{"signature only", pngSignature, nil},
		{"no IEND", cat(pngSignature, ihdr), nil},
		{"IEND cut short", cat(pngSignature, ihdr, iend[:11]), nil},
		{"first chunk not IHDR", cat(pngSignature, pngChunk(r, "tEXt", nil), ihdr, iend), nil},
		{"length 0xFFFFFFFF", cat(pngSignature, ihdr, withLength("tEXt", 0xFFFFFFFF)), nil},
		{"length 2^31", cat(pngSignature, ihdr, withLength("IDAT", 1<<31)), nil},
		{"length 2^31-1 past the end", cat(pngSignature, ihdr, withLength("IDAT", 1<<31-1)), nil},
		{"length one past the end", cat(pngSignature, ihdr, withLength("IDAT", 9)), nil},
		{"minimal", cat(pngSignature, ihdr, iend), cat(pngSignature, ihdr, iend)},
		{"bytes after IEND", cat(pngSignature, ihdr, iend, []byte("<html>")), cat(pngSignature, ihdr, iend)},
		{"thousands of tiny chunks", cat(pngSignature, ihdr, many, iend), cat(pngSignature, ihdr, manyWant, iend)},
		{"twenty 1 MB zTXt chunks", cat(pngSignature, ihdr, bomb, iend), cat(pngSignature, ihdr, iend)},
	}
	for _, tt := range tests {
		c, err := cleanWithin(t, cleanPNG, tt.b)
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
		checkCleaned(t, tt.b, c, 0)
		if got := bytes.Join(c.parts, nil); !bytes.Equal(got, tt.want) {
			t.Errorf("%s: %s", tt.name, diffBytes(got, tt.want, tt.b))
		}
	}
}

// pngFiles makes the PNGs the tool tests use: Go's encoding of a test
// picture, libvips' interlaced (Adam7) encoding of it, and libvips'
// encoding of the P3 photograph, which carries its ICC profile in an iCCP
// chunk (and the photograph's EXIF in an eXIf chunk).
func pngFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	goPNG := encodeTestPNG(t, testPicture(96, 64))
	interlaced, p3 := filepath.Join(dir, "interlaced.png"), filepath.Join(dir, "p3.png")
	runTool(t, "vips", "copy", writeTestFile(t, dir, "go.png", goPNG), interlaced+"[interlace,strip]")
	runTool(t, "vips", "copy", filepath.Join("..", "..", "testdata", "p3.jpg"), p3)
	return map[string][]byte{
		"go":         goPNG,
		"interlaced": readTestFile(t, interlaced),
		"p3":         readTestFile(t, p3),
	}
}

// TestCleanPNGMetadata plants EXIF (GPS, artist, maker note, each
// orientation 1..8), XMP, IPTC, text and a modification time with
// exiftool, then checks that the cleaned file has none of them, as
// exiftool and the bytes tell, keeps its ICC profile, decodes to the same
// pixels with image/png and with libvips, and gave the planted orientation.
func TestCleanPNGMetadata(t *testing.T) {
	dir := t.TempDir()
	planted := map[string]int{}
	for name, b := range pngFiles(t, dir) {
		for o := 1; o <= 8; o++ {
			planted[writeTestFile(t, dir, fmt.Sprintf("%s-%d.png", name, o), b)] = o
		}
	}
	plantMetadata(t, planted)
	var paths []string
	for path, o := range planted {
		in := append(readTestFile(t, path), "<html>PlantedComment</html>"...)
		c, err := cleanPNG(in)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		checkCleaned(t, in, c, 0)
		if c.orientation != o {
			t.Errorf("%s: orientation %d, want %d", path, c.orientation, o)
		}
		out := bytes.Join(c.parts, nil)
		samePixels(t, decodeImage(t, in), decodeImage(t, out))
		paths = append(paths, path, writeTestFile(t, dir, "clean-"+filepath.Base(path), out))
	}
	tags := exifTags(t, paths...)
	for k := 0; k < len(paths); k += 2 {
		in, out := paths[k], paths[k+1]
		checkStripped(t, tags[in], tags[out], readTestFile(t, out), plantedStrings)
		for _, g := range []string{"PNG:ModifyDate", "PNG:Artist"} {
			if tags[in][g] == nil || tags[out][g] != nil {
				t.Errorf("%s: %s was %v, is %v", out, g, tags[in][g], tags[out][g])
			}
		}
		if g := "ICC-header:ColorSpaceData"; (tags[in][g] == nil) != (tags[out][g] == nil) {
			t.Errorf("%s: %s was %v, is %v", out, g, tags[in][g], tags[out][g])
		}
		if planted[in] == 1 {
			runTool(t, "vips", "copy", in+"[fail]", filepath.Join(dir, "in.v"))
			runTool(t, "vips", "copy", out+"[fail]", filepath.Join(dir, "out.v"))
			if !bytes.Equal(vipsPixels(t, filepath.Join(dir, "in.v")), vipsPixels(t, filepath.Join(dir, "out.v"))) {
				t.Errorf("%s: libvips decodes different pixels", out)
			}
		}
	}
}

func TestCleanPNGNothingToRemove(t *testing.T) {
	for name, b := range pngFiles(t, t.TempDir()) {
		if name == "p3" {
			continue // it carries EXIF
		}
		c, err := cleanPNG(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.parts) != 1 || &c.parts[0][0] != &b[0] || c.size != len(b) || c.orientation != 1 {
			t.Errorf("%s: %d parts of %d bytes, want the input as one slice", name, len(c.parts), c.size)
		}
	}
}

func TestCleanPNGTruncations(t *testing.T) {
	path := writeTestFile(t, t.TempDir(), "small.png", encodeTestPNG(t, testPicture(16, 16)))
	plantMetadata(t, map[string]int{path: 6})
	checkTruncations(t, cleanPNG, readTestFile(t, path), 0)
}

// FuzzCleanPNG checks that any bytes are refused with ErrUndecodable or
// cleaned within the invariants; that a cleaned file cleans to itself;
// and that a file image/png decodes still decodes, to the same pixels.
func FuzzCleanPNG(f *testing.F) {
	r := rand.New(rand.NewPCG(13, 14))
	for range 8 {
		f.Add(genPNG(r).file)
	}
	f.Add(encodeTestPNG(f, testPicture(16, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := cleanPNG(b)
		if err != nil {
			if !errors.Is(err, ErrUndecodable) {
				t.Fatalf("error %v does not wrap ErrUndecodable", err)
			}
			return
		}
		checkCleaned(t, b, c, 0)
		out := bytes.Join(c.parts, nil)
		if again, err := cleanPNG(out); err != nil || len(again.parts) != 1 {
			t.Fatalf("cleaning the cleaned file: %d parts, %v", len(again.parts), err)
		}
		if !smallImage(b) {
			return
		}
		if want, err := png.Decode(bytes.NewReader(b)); err == nil {
			got, err := png.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("the input decodes, the cleaned file does not: %v", err)
			}
			samePixels(t, want, got)
		}
	})
}
