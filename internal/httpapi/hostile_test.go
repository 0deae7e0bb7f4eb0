package httpapi

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
)

var generateHostile = flag.Bool("generate-hostile", false, "rewrite testdata/hostile from its generators")

const hostileDir = "../../testdata/hostile"

// The hostile corpus: every file is named <expected status>-<what>.<ext>.
// go test ./internal/httpapi -run TestHostileCorpus -generate-hostile
// rewrites it from the generators below.
func hostileCorpus(t *testing.T) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	noise := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	noisy := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range noisy.Pix {
		noisy.Pix[i] = byte(rng.Uint32())
	}
	enc := func(f func(*bytes.Buffer) error) []byte {
		var b bytes.Buffer
		if err := f(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	jpg := enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, noisy, nil) })
	pngb := enc(func(b *bytes.Buffer) error { return png.Encode(b, noisy) })
	gifb := enc(func(b *bytes.Buffer) error { return gif.Encode(b, noisy, nil) })
	proc, err := imageproc.New(testProcConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	webp, err := proc.Process(t.Context(), pngb, imageproc.Options{Format: imageproc.FormatWebP, Quality: 90})
	if err != nil {
		t.Fatal(err)
	}
	photo := testdata(t, "ladybird.jpg")
	progressive, err := proc.Process(t.Context(), photo, imageproc.Options{Format: imageproc.FormatJPEG, Progressive: true, Quality: 90})
	if err != nil {
		t.Fatal(err)
	}
	// A plain photo-like JPEG of Go's making: the corpus must not change
	// when the service's own encoding does.
	gradient := image.NewRGBA(image.Rect(0, 0, 320, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 320; x++ {
			gradient.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 200), 128, 255})
		}
	}
	small := enc(func(b *bytes.Buffer) error { return jpeg.Encode(b, gradient, &jpeg.Options{Quality: 85}) })
	u16 := func(v int) []byte { return []byte{byte(v >> 8), byte(v)} }
	le16 := func(v int) []byte { return []byte{byte(v), byte(v >> 8)} }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	// A JPEG frame header (SOF0) claiming w x h, three components.
	sof := func(w, h int) []byte {
		return cat([]byte{0xFF, 0xC0}, u16(17), []byte{8}, u16(h), u16(w), []byte{3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1})
	}
	// PNG chunks with correct CRCs.
	chunk := func(typ string, data []byte) []byte {
		return cat(binary.BigEndian.AppendUint32(nil, uint32(len(data))), []byte(typ), data,
			binary.BigEndian.AppendUint32(nil, crc32png(append([]byte(typ), data...))))
	}
	// idat is the data of a PNG's first IDAT chunk (Go writes one).
	idat := func(png []byte) []byte {
		i := bytes.Index(png, []byte("IDAT"))
		return png[i+4 : i+4+int(binary.BigEndian.Uint32(png[i-4:]))]
	}
	ihdr := func(w, h int, depth, colour byte) []byte {
		return chunk("IHDR", cat(binary.BigEndian.AppendUint32(nil, uint32(w)), binary.BigEndian.AppendUint32(nil, uint32(h)),
			[]byte{depth, colour, 0, 0, 0}))
	}
	box := func(typ string, body ...[]byte) []byte {
		b := cat(body...)
		return cat(binary.BigEndian.AppendUint32(nil, uint32(8+len(b))), []byte(typ), b)
	}
	fullBox := func(typ string, body ...[]byte) []byte { return box(typ, append([][]byte{{0, 0, 0, 0}}, body...)...) }

	// rawGIF is a GIF of a screen sw x sh, red and blue, with the blocks
	// ext after its palette and a frame at each of frames ({x, y, w, h}),
	// each a clear code and an end: libnsgif fills what the data leaves.
	rawGIF := func(sw, sh int, ext []byte, frames ...[4]int) []byte {
		b := cat([]byte("GIF89a"), le16(sw), le16(sh), []byte{0x80, 0, 0, 200, 0, 0, 0, 0, 200}, ext)
		for _, f := range frames {
			b = cat(b, []byte{0x21, 0xF9, 4, 0, 10, 0, 0, 0, 0x2C}, le16(f[0]), le16(f[1]), le16(f[2]), le16(f[3]),
				[]byte{0, 2, 2, 0x44, 0x01, 0})
		}
		return append(b, 0x3B)
	}
	netscape := func(sub ...byte) []byte { return cat([]byte{0x21, 0xFF, 11}, []byte("NETSCAPE2.0"), sub) }

	// Many frames, each a different colour.
	anim := &gif.GIF{}
	pal := color.Palette{color.RGBA{200, 0, 0, 255}, color.RGBA{0, 0, 200, 255}}
	for i := 0; i < 3000; i++ {
		fr := image.NewPaletted(image.Rect(0, 0, 16, 16), pal)
		for j := range fr.Pix {
			fr.Pix[j] = uint8(i % 2)
		}
		anim.Image, anim.Delay = append(anim.Image, fr), append(anim.Delay, 1)
	}
	rgb16 := image.NewRGBA64(image.Rect(0, 0, 40, 30))
	grey := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			rgb16.Set(x, y, color.RGBA64{uint16(x * 1600), uint16(y * 2100), 40000, 65535})
			grey.Set(x, y, color.NRGBA{uint8(x * 6), uint8(x * 6), uint8(x * 6), uint8(y * 8)})
		}
	}
	greyAlpha := enc(func(b *bytes.Buffer) error {
		ga := image.NewNRGBA(grey.Rect)
		copy(ga.Pix, grey.Pix)
		return png.Encode(b, ga)
	})
	// Huge EXIF: a real EXIF segment, then fifteen more APP1 segments of
	// 64 KB each.
	var app1s [][]byte
	for i := 0; i < 15; i++ {
		app1s = append(app1s, cat([]byte{0xFF, 0xE1}, u16(65535), []byte("Exif\x00\x00"), noise(65533-6)))
	}
	hugeExif := cat(small[:2], bytes.Join(app1s, nil), small[2:])

	// The bombs the hardening found (docs/reliability.md), each at the
	// smallest size that still crosses the limit it met.
	//
	// A progressive JPEG of 2,000 empty scans (DC refinement, no coded
	// data): libjpeg spent 33 s on them in a photograph; the scans are
	// counted in Go, over MAX_JPEG_SCANS.
	smallProgressive, err := proc.Process(t.Context(), small, imageproc.Options{Format: imageproc.FormatJPEG, Progressive: true, Quality: 85})
	if err != nil {
		t.Fatal(err)
	}
	eoi := bytes.LastIndex(smallProgressive.Data, []byte{0xFF, 0xD9})
	emptyScan := []byte{0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0, 0x10}
	manyScans := cat(smallProgressive.Data[:eoi], bytes.Repeat(emptyScan, 2000), []byte{0xFF, 0xD9})
	// A PNG of four zTXt chunks, each inflating to 51 MiB, over the 50 MiB
	// libpng inflates of one chunk before it gives up (twenty inflating to
	// 5 GiB held both slots 70 s): text chunks are removed in Go, before
	// libpng.
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	for range 51 {
		zw.Write(make([]byte, 1<<20))
	}
	zw.Close()
	var texts [][]byte
	for range 4 {
		texts = append(texts, chunk("zTXt", cat([]byte("Comment\x00\x00"), z.Bytes())))
	}
	textBomb := cat(pngb[:33], bytes.Join(texts, nil), pngb[33:])
	// Strips: every step of the resize meets a side of 1.
	strip := func(w, h int) []byte {
		img := image.NewGray(image.Rect(0, 0, w, h))
		for i := range img.Pix {
			img.Pix[i] = byte(i)
		}
		return enc(func(b *bytes.Buffer) error { return png.Encode(b, img) })
	}
	// A WebP whose EXIF chunk (orientation 6) is one byte over the 1 MiB
	// libvips accepts ("exif too large": the image was refused); the EXIF
	// is removed in Go, its orientation read first.
	// An animation cut in its last frame: the first frame, all that the
	// header check reads, is whole, but an output that stays animated
	// decodes every frame, and libvips' GIF loader shows the cut one as
	// whatever the frame before left on the screen, without an error.
	frameNoise := rand.New(rand.NewPCG(3, 4)) // its own: the other files keep their bytes
	noisyFrames := &gif.GIF{}
	for range 3 {
		fr := image.NewPaletted(image.Rect(0, 0, 32, 32), pal)
		for j := range fr.Pix {
			fr.Pix[j] = uint8(frameNoise.Uint32() & 1)
		}
		noisyFrames.Image, noisyFrames.Delay = append(noisyFrames.Image, fr), append(noisyFrames.Delay, 10)
	}
	threeFrames := enc(func(b *bytes.Buffer) error { return gif.EncodeAll(b, noisyFrames) })
	noisyFrames.Image, noisyFrames.Delay = noisyFrames.Image[:2], noisyFrames.Delay[:2]
	twoFrames := enc(func(b *bytes.Buffer) error { return gif.EncodeAll(b, noisyFrames) })
	twoFrames = twoFrames[:len(twoFrames)-1] // without its trailer: where the third frame starts
	if !bytes.HasPrefix(threeFrames, twoFrames) {
		t.Fatal("the two-frame GIF is not the start of the three-frame one")
	}
	cutAnimation := threeFrames[:len(twoFrames)+(len(threeFrames)-len(twoFrames))/2]
	// The same animation whole, but its third frame's LZW code size is
	// 12, over the 11 GIF's codes can have: libvips' loader stopped there
	// without an error, and the animation came out two frames long.
	badFrame := bytes.Clone(threeFrames)
	at := len(twoFrames) + 8 // past the frame's graphic control extension, at its descriptor
	if badFrame[len(twoFrames)] != 0x21 || badFrame[at] != 0x2C {
		t.Fatal("the third frame does not start with a graphic control extension and a descriptor")
	}
	if flags := badFrame[at+9]; flags&0x80 != 0 {
		at += 3 << (int(flags&7) + 1) // its local palette
	}
	badFrame[at+10] = 12
	// An animated WebP of two 64x64 frames side by side on a 128x64
	// canvas, with an EXIF orientation of 6: each frame, turned upright,
	// is 64x128, twice the height of the animation's pages, and libvips
	// scaled it as two pages (a 500: "made 64x256 where 64x128 was
	// planned").
	anmf := func(x int) []byte {
		u24 := func(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }
		return cat(u24(x/2), u24(0), u24(63), u24(63), u24(100), []byte{0x02}, webp.Data[30:]) // no blend; ALPH, VP8
	}
	if string(webp.Data[12:16]) != "VP8X" || string(webp.Data[30:34]) != "ALPH" {
		t.Fatalf("the WebP made of a PNG with alpha does not start with VP8X and ALPH: %q", webp.Data[:34])
	}
	webpChunk := func(fourcc string, data []byte) []byte {
		c := cat([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data))), data)
		if len(data)%2 == 1 {
			c = append(c, 0)
		}
		return c
	}
	turnedBody := cat(webpChunk("VP8X", cat([]byte{0x02 | 0x08 | 0x10, 0, 0, 0}, []byte{127, 0, 0}, []byte{63, 0, 0})),
		webpChunk("ANIM", []byte{0, 0, 0, 0, 0, 0}), webpChunk("ANMF", anmf(0)), webpChunk("ANMF", anmf(64)),
		webpChunk("EXIF", imagetest.Exif(6)))
	turnedAnimation := cat([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(turnedBody))), []byte("WEBP"), turnedBody)
	webpExif := imagetest.WebPWithExif(webp.Data, 64, 64, cat(imagetest.Exif(6), make([]byte, 1<<20+1-len(imagetest.Exif(6)))))

	return map[string][]byte{
		"400-empty.jpg":               nil,
		"422-truncated.jpg":           photo[:len(photo)/2],
		"422-truncated.png":           pngb[:len(pngb)*2/3],
		"422-truncated.webp":          webp.Data[:len(webp.Data)/2],
		"422-truncated.gif":           gifb[:len(gifb)/2],
		"415-wrong-magic.png":         cat([]byte{0x88}, pngb[1:]),
		"415-text-named.jpg":          []byte("Dear customer, your invoice is attached.\n"),
		"422-header-then-garbage.jpg": cat([]byte{0xFF, 0xD8}, sof(100, 100), noise(4000)),
		// Truncated behind a fake end marker: byte checks for IEND or FF D9
		// pass; libvips, told to fail on truncation, refuses them.
		"422-truncated-fake-eoi.jpg": cat(photo[:len(photo)/2], []byte{0xFF, 0xFE, 0, 6, 'e', 'n', 0xFF, 0xD9}),
		"422-truncated-bare-eoi.jpg": cat(photo[:len(photo)/2], []byte{0xFF, 0xD9}),
		// The same behind a harmless first warning (a JFIF revision libjpeg
		// does not know), which libvips passes on instead of the cut.
		"422-truncated-behind-a-warning.jpg": jfifRevision(cat(photo[:len(photo)/2], []byte{0xFF, 0xD9}), 2),
		"422-truncated-progressive-eoi.jpg":  cat(progressive.Data[:len(progressive.Data)/3], []byte{0xFF, 0xD9}),
		"422-truncated-idat-fake-iend.png":   cat(pngb[:33], chunk("IDAT", idat(pngb)[:len(idat(pngb))/2]), chunk("tEXt", []byte("Comment\x00IEND"))),
		"422-cut-in-idat-then-fake-iend.png": cat(pngb[:33+8+len(idat(pngb))/2], chunk("tEXt", []byte("Comment\x00IEND"))),
		"422-header-then-garbage.png":        cat(pngb[:33], noise(4000)),
		// Files whose compressed data is garbage: libvips, told to fail on
		// truncation, refuses the PNG, whose deflate stream breaks; libjpeg
		// meets a marker in the JPEG's garbage before the scan's end, warns
		// that its data ended early, and the service refuses it as cut.
		"422-corrupt-pixels.png":      cat(pngb[:8], ihdr(64, 64, 8, 2), chunk("IDAT", noise(3000)), chunk("IEND", nil)),
		"422-corrupt-pixels.jpg":      cat(jpg[:len(jpg)/3], noise(3000), []byte{0xFF, 0xD9}),
		"413-flood.jpg":               cat([]byte{0xFF, 0xD8}, sof(60000, 60000), []byte{0xFF, 0xD9}),
		"413-flood.png":               cat(pngb[:8], ihdr(20000, 20000, 8, 0), chunk("IDAT", noise(100)), chunk("IEND", nil)),
		"413-flood-16bit.png":         cat(pngb[:8], ihdr(100000, 100000, 16, 6), chunk("IEND", nil)),
		"413-flood.webp":              riff("VP8X", cat([]byte{0, 0, 0, 0}, []byte{0xFF, 0x3F, 0}, []byte{0xFF, 0x3F, 0})),
		"413-flood-screen.gif":        cat([]byte("GIF89a"), le16(65535), le16(65535), gifb[10:]),
		"413-flood.avif":              testdata(t, "heif/bomb-8192-ispe100.avif"),
		"422-meta-without-items.avif": cat(box("ftyp", []byte("avif"), []byte{0, 0, 0, 0}, []byte("mif1avif")), fullBox("meta", box("iprp", box("ipco", fullBox("ispe", binary.BigEndian.AppendUint32(nil, 40000), binary.BigEndian.AppendUint32(nil, 40000)))))),
		"413-flood-real.png":          testdata(t, "flood.png"),
		"200-huge-exif.jpg":           hugeExif,
		"200-polyglot.jpg":            cat(small, []byte("<html><body><script>alert(document.cookie)</script></body></html>")),
		// A Display P3 profile that hides EXIF (GPS, Artist, MakerNote)
		// between its last tag and its declared end, and past that end:
		// keep=icc copied it whole into every output.
		"200-icc-hiding-exif.jpg":             imagetest.JPEG(small, 1, imagetest.ICCHiding(imagetest.JPEGICC(testdata(t, "p3.jpg")))),
		"413-thousands-of-frames.gif":         enc(func(b *bytes.Buffer) error { return gif.EncodeAll(b, anim) }),
		"200-16-bit.png":                      enc(func(b *bytes.Buffer) error { return png.Encode(b, rgb16) }),
		"200-grey-alpha.png":                  greyAlpha,
		"200-cmyk-without-profile.jpg":        testdata(t, "cmyk-noprofile.jpg"),
		"413-2000-empty-scans.jpg":            manyScans,
		"200-text-bomb.png":                   textBomb,
		"200-strip-10000x1.png":               strip(10000, 1),
		"200-strip-1x10000.png":               strip(1, 10000),
		"200-exif-over-1mib.webp":             webpExif,
		"422-animation-cut-in-last-frame.gif": cutAnimation,
		"200-animation-turned-by-exif.webp":   turnedAnimation,
		"422-animation-undecodable-frame.gif": badFrame,
		// Animations whose later frames lie outside their 10x10 screen (far
		// off it, or 65535x65535 over it), and one whose loop extension is
		// garbage (its sub-block neither 3 bytes nor of ID 1): libvips keeps
		// the screen, and plays the last animation once.
		"200-animation-frame-far-off-screen.gif":   rawGIF(10, 10, nil, [4]int{0, 0, 10, 10}, [4]int{60000, 60000, 1, 1}),
		"200-animation-frame-over-screen.gif":      rawGIF(10, 10, nil, [4]int{0, 0, 10, 10}, [4]int{0, 0, 65535, 65535}),
		"200-animation-loop-extension-garbage.gif": rawGIF(10, 10, netscape(9, 0xFF, 5, 0, 1, 2, 3, 4, 5, 6, 0), [4]int{0, 0, 10, 10}, [4]int{2, 2, 4, 4}),
		"415-external-entity.svg": []byte(`<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">
<text>&xxe;</text><image xlink:href="http://127.0.0.1:1/track.png" width="10" height="10"/></svg>`),
		"415-document.pdf": []byte("%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"),
		"415-layers.psd":   cat([]byte("8BPS\x00\x01\x00\x00\x00\x00\x00\x00\x00\x03"), u16(0), []byte{0, 0, 0, 64, 0, 0, 0, 64, 0, 8, 0, 3}, noise(64)),
		"415-bitmap.bmp":   cat([]byte("BM"), noise(64)),
		"415-scan.tiff":    cat([]byte("II*\x00\x08\x00\x00\x00"), noise(64)),
		"415-icon.ico":     cat([]byte{0, 0, 1, 0, 1, 0, 16, 16}, noise(64)),
		"415-video.mp4":    cat(box("ftyp", []byte("isom"), []byte{0, 0, 2, 0}), noise(64)),
	}
}

func riff(chunkType string, data []byte) []byte {
	b := append([]byte(chunkType), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(b)))...), append([]byte("WEBP"), b...)...)
}

// jfifRevision returns a copy of the JPEG b with the major revision of its
// JFIF segment set to major.
func jfifRevision(b []byte, major byte) []byte {
	b = bytes.Clone(b)
	if i := bytes.Index(b, []byte("JFIF\x00")); i >= 0 && i+5 < len(b) {
		b[i+5] = major
	}
	return b
}

// crc32png is the CRC of PNG chunks (IEEE).
func crc32png(b []byte) uint32 {
	c := ^uint32(0)
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
	}
	return ^c
}

// rss is this process's resident memory, in bytes.
func rss(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Every file of the corpus gets its status and a problem document when
// refused, nothing is ever a 500, the server keeps serving, and memory
// stays bounded. Each file served carries none of its metadata, and, asked
// to keep the profile or the rights, nothing but those.
func TestHostileCorpus(t *testing.T) {
	corpus := hostileCorpus(t)
	if *generateHostile {
		old, _ := filepath.Glob(filepath.Join(hostileDir, "[0-9][0-9][0-9]-*"))
		for _, f := range old { // the corpus, not its README
			os.Remove(f)
		}
		for name, b := range corpus {
			if err := os.WriteFile(filepath.Join(hostileDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := os.ReadDir(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes = 8 << 20 })
	before := rss(t)
	seen := 0
	kept := map[string]map[string][]byte{"icc": {}, "copyright": {}}
	for round := 0; round < 3; round++ { // three rounds: memory must not grow with repetition
		for _, f := range files {
			name := f.Name()
			want, err := strconv.Atoi(strings.SplitN(name, "-", 2)[0])
			if err != nil {
				continue // README.md
			}
			body, err := os.ReadFile(filepath.Join(hostileDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if round == 0 && !bytes.Equal(body, corpus[name]) && corpus[name] != nil {
				t.Errorf("%s differs from its generator: run with -generate-hostile", name)
			}
			seen++
			resp, out := s.do(t, "POST", "/resize?width=100", body, nil)
			if resp.StatusCode != want {
				t.Errorf("%s: status %d, want %d: %.200s", name, resp.StatusCode, want, out)
				continue
			}
			if want != 200 {
				var p api.Problem
				if err := json.Unmarshal(out, &p); err != nil || p.Status != want || resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s: not a problem document: %.200s", name, out)
				}
				// One line a client can show: what the decoder said, not
				// every warning it printed on the way.
				if p.Detail == "" || strings.ContainsAny(p.Detail, "\r\n") || len(p.Detail) > maxDetail+len("…") {
					t.Errorf("%s: detail is not one short line: %q", name, p.Detail)
				}
				continue
			}
			checkCleanImage(t, name, out)
			if round == 0 {
				for keep, outs := range kept {
					if resp, out := s.do(t, "POST", "/resize?width=100&keep="+keep, body, nil); resp.StatusCode == 200 {
						outs[name] = out
					} else {
						t.Errorf("%s, keep=%s: status %d: %.200s", name, keep, resp.StatusCode, out)
					}
				}
			}
		}
	}
	imagetest.CheckCleanBut(t, kept["icc"], "ICC-header:*", "ICC_Profile:*")
	imagetest.CheckCleanBut(t, kept["copyright"], "IFD0:Artist", "IFD0:Copyright")
	if missing := len(corpus)*3 - seen; missing != 0 {
		t.Errorf("%d corpus files missing on disk: run with -generate-hostile", missing/3)
	}
	after := rss(t)
	t.Logf("%d requests; RSS %d MiB before, %d MiB after", seen, before>>20, after>>20)
	if after-before > 300<<20 {
		t.Errorf("RSS grew by %d MiB over the corpus", (after-before)>>20)
	}
	if resp, _ := s.do(t, "POST", "/resize?width=10", testJPEG(t, 20, 20), nil); resp.StatusCode != 200 {
		t.Fatal("the server stopped serving")
	}
	if strings.Contains(s.logs.String(), `"status":500`) {
		t.Fatal("a 500 in the log")
	}
}

// checkCleanImage: a 200 answer is one whole image of the asked width and
// nothing after it (a polyglot's HTML does not survive), with the headers
// that stop a browser from reading it as anything else.
func checkCleanImage(t *testing.T, name string, out []byte) {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(out))
	if err != nil || cfg.Width < 1 || cfg.Width > 100 {
		t.Errorf("%s: output %s %dx%d %v", name, format, cfg.Width, cfg.Height, err)
		return
	}
	if format == "jpeg" && !bytes.HasSuffix(out, []byte{0xFF, 0xD9}) {
		t.Errorf("%s: bytes after the JPEG's end", name)
	}
	for _, bad := range []string{"<html", "<script", "Exif"} {
		if bytes.Contains(out, []byte(bad)) {
			t.Errorf("%s: output contains %q", name, bad)
		}
	}
}

func TestHostileRequests(t *testing.T) {
	s := newTestServer(t, nil)
	img := testJPEG(t, 40, 30)
	for _, q := range []string{
		"width=99999999999999999999999", "width=-1", "height=-99999", "width=1e9", "quality=NaN",
		"width=10&width=10", "format=webp&format=png", "fit=cover&fit=cover", "width=0x10", "width=%00",
		"gravity=" + strings.Repeat("x", 10000), "background=%23" + strings.Repeat("f", 1000),
	} {
		resp, body := s.do(t, "POST", "/resize?"+q, img, nil)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "bad-option") {
			t.Errorf("%.60s: %d %.100s", q, resp.StatusCode, body)
		}
	}
	// A multipart body of many parts.
	var b bytes.Buffer
	b.WriteString("--x\r\n")
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "Content-Disposition: form-data; name=\"f%d\"\r\n\r\nv\r\n--x\r\n", i)
	}
	resp, body := s.do(t, "POST", "/resize", b.Bytes(), http.Header{"Content-Type": {"multipart/form-data; boundary=x"}})
	if resp.StatusCode != 400 {
		t.Errorf("many parts: %d %s", resp.StatusCode, body)
	}
}

// A body that never ends is cut off by READ_TIMEOUT with 408, and the
// server goes on serving others meanwhile.
func TestSlowLoris(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.ReadTimeout = time.Second })
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /resize HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\xFF\xD8\xFF")
	start := time.Now()
	if resp, _ := s.do(t, "GET", "/healthz", nil, nil); resp.StatusCode != 200 {
		t.Fatal("others not served during a slow upload")
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	answer, _ := io.ReadAll(conn) // answered and closed
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a stalled body held its connection for %v", d)
	}
	if !bytes.HasPrefix(answer, []byte("HTTP/1.1 408 ")) || !bytes.Contains(answer, []byte("READ_TIMEOUT")) {
		t.Fatalf("answer %q, want a 408 naming READ_TIMEOUT", answer)
	}
}

// With SVG enabled, a document's external images are never fetched, and a
// document with a DTD of its own (where entities live) is not even
// recognised as SVG: it never reaches the XML parser.
func TestSVGNeverFetches(t *testing.T) {
	var hits atomic.Int32
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer tracker.Close()
	s := newTestServer(t, func(_ *Config, p *imageproc.Config) {
		p.Formats = []imageproc.Format{imageproc.FormatSVG, imageproc.FormatJPEG}
	})
	defer newTestServer(t, nil) // the next tests get the default loader set back
	hrefs := fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="50">
<rect width="100" height="50" fill="blue"/>
<image xlink:href="%[1]s/image.png" width="10" height="10"/><image href="%[1]s/image2.png" width="10" height="10"/>
<use xlink:href="%[1]s/sprite.svg#a"/><image href="file:///etc/hostname" width="5" height="5"/></svg>`, tracker.URL)
	resp, body := s.do(t, "POST", "/resize?width=50&format=png", []byte(hrefs), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("svg with external references: %d %s", resp.StatusCode, body)
	}
	entities := fmt.Sprintf(`<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "%[1]s/entity"><!ENTITY local SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><text y="20">&xxe;&local;</text></svg>`, tracker.URL)
	if resp, body := s.do(t, "POST", "/resize?width=50&format=png", []byte(entities), nil); resp.StatusCode != 415 {
		t.Fatalf("svg with a DTD: %d %s", resp.StatusCode, body)
	}
	// A DOCTYPE naming an outer DTD, with no inner subset: taken as an
	// SVG, drawn, and the DTD never fetched.
	for _, doctype := range []string{`SYSTEM "%[1]s/outer.dtd"`, `PUBLIC "-//W3C//DTD SVG 1.1//EN" "%[1]s/public.dtd"`} {
		outer := fmt.Sprintf(`<?xml version="1.0"?>
<!DOCTYPE svg `+doctype+`>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><rect width="100" height="50" fill="red"/></svg>`, tracker.URL)
		if resp, body := s.do(t, "POST", "/resize?width=50&format=png", []byte(outer), nil); resp.StatusCode != 200 {
			t.Fatalf("svg naming an outer DTD: %d %s", resp.StatusCode, body)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := hits.Load(); n != 0 {
		t.Fatalf("the SVGs made %d requests", n)
	}
}
