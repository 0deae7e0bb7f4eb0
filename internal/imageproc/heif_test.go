package imageproc

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"slices"
	"testing"

	"github.com/h2non/bimg"
)

// heifSizes are the sizes the real-file tests encode: tiny ones, odd ones,
// ones that are not a multiple of 8 (where an HEVC encoder pads the picture
// and crops it back with the SPS's conformance window), and long thin ones.
var heifSizes = [][2]int{
	{1, 1}, {2, 2}, {3, 5}, {5, 3}, {7, 9}, {8, 8}, {9, 7}, {15, 17}, {16, 16},
	{31, 33}, {64, 64}, {77, 333}, {333, 77}, {100, 101}, {129, 257}, {257, 129},
	{640, 480}, {513, 3}, {1, 200}, {200, 1},
}

// encodeHeif writes a w×h image through libvips as AVIF (AV1) or HEIC
// (HEVC), with an alpha channel when alpha is set.
func encodeHeif(t testing.TB, w, h int, typ bimg.ImageType, alpha bool) ([]byte, error) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if alpha {
				a = uint8(x * 255 / w)
			}
			img.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 5), uint8(x ^ y), a})
		}
	}
	return bimg.NewImage(encodePNG(t, img)).Process(bimg.Options{Type: typ, Quality: 40, Speed: 8})
}

// vipsSizes returns the size libvips reads from b's header and the size of
// the pixels it decodes. It goes through bimg rather than the package's
// own libvips calls, which are being rewritten.
func vipsSizes(t testing.TB, b []byte) (header, decoded [2]int) {
	t.Helper()
	size, err := bimg.NewImage(b).Size()
	if err != nil {
		t.Fatalf("libvips header: %v", err)
	}
	png, err := bimg.NewImage(b).Convert(bimg.PNG)
	if err != nil {
		t.Fatalf("libvips decode: %v", err)
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	return [2]int{size.Width, size.Height}, [2]int{cfg.Width, cfg.Height}
}

func primaryItem(t testing.TB, items []heifItem) heifItem {
	t.Helper()
	for _, it := range items {
		if it.primary {
			return it
		}
	}
	t.Fatalf("no primary item in %+v", items)
	return heifItem{}
}

// TestHeifItemsVipsFiles encodes images of many sizes, with and without
// alpha, as AVIF and HEIC through libvips and checks that the primary
// item's coded size is the size encoded, which is also the size libvips
// decodes; and that every coded item's codec header agrees with its ispe.
func TestHeifItemsVipsFiles(t *testing.T) {
	newTestProcessor(t, nil) // libvips set up as the service sets it up
	for _, typ := range []bimg.ImageType{bimg.AVIF, bimg.HEIF} {
		for _, alpha := range []bool{false, true} {
			for _, size := range heifSizes {
				w, h := size[0], size[1]
				name := fmt.Sprintf("%s/%dx%d/alpha=%v", bimg.ImageTypeName(typ), w, h, alpha)
				t.Run(name, func(t *testing.T) {
					b, err := encodeHeif(t, w, h, typ, alpha)
					if err != nil {
						t.Skipf("libvips cannot encode this: %v", err)
					}
					items, err := heifItems(b)
					if err != nil {
						t.Fatal(err)
					}
					p := primaryItem(t, items)
					if p.codedW != w || p.codedH != h {
						t.Errorf("primary %q coded %dx%d, encoded %dx%d", p.typ, p.codedW, p.codedH, w, h)
					}
					header, decoded := vipsSizes(t, b)
					if decoded != [2]int{p.codedW, p.codedH} || header != decoded {
						t.Errorf("libvips: header %v, decoded %v; heifItems: %dx%d", header, decoded, p.codedW, p.codedH)
					}
					if p.alpha != alpha {
						t.Errorf("primary alpha = %v, want %v", p.alpha, alpha)
					}
					coded := 0
					for _, it := range items {
						if it.typ != "av01" && it.typ != "hvc1" {
							continue
						}
						coded++
						if it.codedW != it.ispeW || it.codedH != it.ispeH {
							t.Errorf("item %d %q: coded %dx%d, ispe %dx%d", it.id, it.typ, it.codedW, it.codedH, it.ispeW, it.ispeH)
						}
					}
					if want := map[bool]int{false: 1, true: 2}[alpha]; coded != want {
						t.Errorf("%d coded items, want %d: %+v", coded, want, items)
					}
				})
			}
		}
	}
}

// TestHeifItemsBomb reads files libvips wrote at 8192x8192 whose ispe
// properties were then rewritten to 100x100 (testdata/heif): libvips'
// header says 100x100 and it decodes 8192x8192 before it notices;
// heifItems must read 8192x8192 from the AV1 sequence header and the SPS.
func TestHeifItemsBomb(t *testing.T) {
	for _, name := range []string{"bomb-8192-ispe100.avif", "bomb-8192-ispe100.heic"} {
		t.Run(name, func(t *testing.T) {
			b := readTestdata(t, "heif/"+name)
			items, err := heifItems(b)
			if err != nil {
				t.Fatal(err)
			}
			p := primaryItem(t, items)
			if p.ispeW != 100 || p.ispeH != 100 {
				t.Errorf("ispe %dx%d: the file should claim 100x100", p.ispeW, p.ispeH)
			}
			if p.codedW != 8192 || p.codedH != 8192 {
				t.Errorf("coded %dx%d, want 8192x8192", p.codedW, p.codedH)
			}
		})
	}
}

// TestHeifItemsContainerVariants rewrites files libvips wrote into the
// container layouts the specifications allow and libvips does not write,
// checks that libvips still decodes each one at its size (so the layout is
// one libheif accepts) and that heifItems reads the same items from it.
func TestHeifItemsContainerVariants(t *testing.T) {
	newTestProcessor(t, nil)
	variants := []struct {
		name string
		edit func(*heifSpec)
	}{
		{"as written", func(*heifSpec) {}},
		{"iloc v1 8-byte offsets and lengths, base offset", func(s *heifSpec) {
			s.ilocVersion, s.offSize, s.lenSize, s.baseSize = 1, 8, 8, 4
		}},
		{"iloc v2, 8-byte base, index, 3 extents", func(s *heifSpec) {
			s.ilocVersion, s.baseSize, s.idxSize, s.extents = 2, 8, 4, 3
		}},
		{"data in idat", func(s *heifSpec) {
			s.ilocVersion = 1
			for i := range s.items {
				s.items[i].idat = true
			}
		}},
		{"32-bit ids: pitm v1, infe v3, ipma v1 wide, iref v1", func(s *heifSpec) {
			s.pitmVersion, s.infeVersion, s.ipmaVersion, s.ipmaWide, s.irefVersion, s.ilocVersion = 1, 3, 1, true, 1, 2
		}},
		{"7 extents of the data in reverse order", func(s *heifSpec) { s.extents = 7 }},
	}
	for _, name := range []string{"alpha-333x77.avif", "alpha-333x77.heic"} {
		orig := readTestdata(t, "heif/"+name)
		want, err := heifItems(orig)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range variants {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				s := specFrom(t, orig)
				v.edit(&s)
				b := heifBuild(t, s)
				header, decoded := vipsSizes(t, b)
				if header != [2]int{333, 77} || decoded != header {
					t.Fatalf("libvips reads the rebuilt file as %v, decodes %v", header, decoded)
				}
				got, err := heifItems(b)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

// TestHeifItemsTransforms adds irot and imir properties to a file libvips
// wrote and checks what heifItems reports, and that libvips (through
// libheif) does apply the rotation: the property is real to the decoder.
func TestHeifItemsTransforms(t *testing.T) {
	newTestProcessor(t, nil)
	orig := readTestdata(t, "heif/alpha-333x77.avif")
	for _, tt := range []struct {
		props    []specProp
		rotation int
		mirror   bool
		size     [2]int // as libvips decodes it
	}{
		{nil, 0, false, [2]int{333, 77}},
		{[]specProp{irotProp(90)}, 90, false, [2]int{77, 333}},
		{[]specProp{irotProp(180)}, 180, false, [2]int{333, 77}},
		{[]specProp{irotProp(270), imirProp(1)}, 270, true, [2]int{77, 333}},
		{[]specProp{imirProp(0)}, 0, true, [2]int{333, 77}},
		{[]specProp{irotProp(90), irotProp(90)}, 180, false, [2]int{333, 77}}, // libheif applies both
		{[]specProp{irotProp(270), irotProp(180)}, 90, false, [2]int{77, 333}},
	} {
		t.Run(fmt.Sprintf("%d/%v/%d", tt.rotation, tt.mirror, len(tt.props)), func(t *testing.T) {
			s := specFrom(t, orig)
			for _, id := range []uint32{1, 2} { // the image and its alpha plane
				s = s.withProps(id, func(p []specProp) []specProp { return append(p, tt.props...) })
			}
			b := heifBuild(t, s)
			if _, decoded := vipsSizes(t, b); decoded != tt.size {
				t.Errorf("libvips decodes %v, want %v", decoded, tt.size)
			}
			items, err := heifItems(b)
			if err != nil {
				t.Fatal(err)
			}
			p := primaryItem(t, items)
			if p.rotation != tt.rotation || p.mirror != tt.mirror {
				t.Errorf("rotation %d mirror %v, want %d %v", p.rotation, p.mirror, tt.rotation, tt.mirror)
			}
			if p.codedW != 333 || p.codedH != 77 {
				t.Errorf("coded %dx%d: the transform is applied after decoding", p.codedW, p.codedH)
			}
		})
	}
}

// TestHeifItemsGrid builds grids around the HEVC tile of a file libvips
// wrote, with 16- and 32-bit output sizes, in idat and in mdat, and checks
// the grid's size against heifItems and libvips.
func TestHeifItemsGrid(t *testing.T) {
	newTestProcessor(t, nil)
	orig := specFrom(t, readTestdata(t, "heif/alpha-333x77.heic"))
	tile := orig.items[0] // hvc1, 334x78
	if tile.typ != "hvc1" {
		t.Fatalf("item 1 is %q", tile.typ)
	}
	for _, tt := range []struct {
		rows, cols int
		w, h       uint32
		wide, idat bool
	}{
		{1, 1, 300, 70, false, true},
		{2, 3, 1000, 150, false, false},
		{2, 2, 668, 156, true, true},
		{3, 1, 334, 200, true, false},
	} {
		t.Run(fmt.Sprintf("%dx%d/%dx%d/wide=%v/idat=%v", tt.rows, tt.cols, tt.w, tt.h, tt.wide, tt.idat), func(t *testing.T) {
			s := defaultSpec("heic")
			s.ilocVersion = 1
			s.primary = 100
			grid := specItem{id: 100, typ: "grid", data: gridData(tt.rows, tt.cols, tt.w, tt.h, tt.wide), idat: tt.idat,
				props: []specProp{ispeProp(tt.w, tt.h)}}
			ref := specRef{typ: "dimg", from: 100}
			s.items = []specItem{grid}
			for i := range tt.rows * tt.cols {
				it := tile
				it.id = uint32(1 + i)
				s.items = append(s.items, it)
				ref.to = append(ref.to, it.id)
			}
			s.refs = []specRef{ref}
			b := heifBuild(t, s)
			if header, decoded := vipsSizes(t, b); decoded != [2]int{int(tt.w), int(tt.h)} || header != decoded {
				t.Errorf("libvips: header %v, decoded %v", header, decoded)
			}
			items, err := heifItems(b)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) != 1+tt.rows*tt.cols {
				t.Fatalf("%d items", len(items))
			}
			p := primaryItem(t, items)
			if p.typ != "grid" || p.codedW != int(tt.w) || p.codedH != int(tt.h) {
				t.Errorf("primary %+v", p)
			}
			for _, it := range items[1:] {
				if it.codedW != 334 || it.codedH != 78 || it.primary {
					t.Errorf("tile %+v", it)
				}
			}
		})
	}
}

// TestHeifItemsTruncated cuts small real files at every byte: heifItems
// must never panic, and since libvips writes the image data last, every
// cut must be an error (a truncated file is never passed on).
func TestHeifItemsTruncated(t *testing.T) {
	for _, name := range []string{"alpha-333x77.avif", "alpha-333x77.heic", "bomb-8192-ispe100.avif"} {
		b := readTestdata(t, "heif/"+name)
		if _, err := heifItems(b); err != nil {
			t.Fatalf("%s: whole file: %v", name, err)
		}
		for cut := range len(b) {
			if items, err := heifItems(b[:cut:cut]); err == nil {
				t.Errorf("%s cut at %d of %d: no error, %+v", name, cut, len(b), items)
			}
		}
	}
}

// TestHeifItemsOverlay builds an overlay (iovl) of two HEVC tiles on a
// canvas larger than both: the canvas is what the decoder allocates, so
// heifItems reports it as the item's coded size, and libvips decodes it.
func TestHeifItemsOverlay(t *testing.T) {
	newTestProcessor(t, nil)
	tile := specFrom(t, readTestdata(t, "heif/alpha-333x77.heic")).items[0] // hvc1, 334x78
	for _, wide := range []bool{false, true} {
		t.Run(fmt.Sprintf("wide=%v", wide), func(t *testing.T) {
			const w, h = 700, 300
			data := []byte{0, 0}
			if wide {
				data[1] = 1
			}
			data = append(data, slices.Repeat(tu16(0xffff), 4)...) // canvas fill colour
			offsets := [][2]int{{10, 20}, {360, 200}}
			if wide {
				data = append(data, slices.Concat(tu32(w), tu32(h))...)
				for _, o := range offsets {
					data = append(data, slices.Concat(tu32(uint32(o[0])), tu32(uint32(o[1])))...)
				}
			} else {
				data = append(data, slices.Concat(tu16(w), tu16(h))...)
				for _, o := range offsets {
					data = append(data, slices.Concat(tu16(uint16(o[0])), tu16(uint16(o[1])))...)
				}
			}
			s := defaultSpec("heic")
			s.ilocVersion = 1
			s.primary = 10
			a, b := tile, tile
			a.id, b.id = 1, 2
			s.items = []specItem{{id: 10, typ: "iovl", data: data, idat: true, props: []specProp{ispeProp(w, h)}}, a, b}
			s.refs = []specRef{{typ: "dimg", from: 10, to: []uint32{1, 2}}}
			file := heifBuild(t, s)
			if header, decoded := vipsSizes(t, file); decoded != [2]int{w, h} || header != decoded {
				t.Errorf("libvips: header %v, decoded %v", header, decoded)
			}
			items, err := heifItems(file)
			if err != nil {
				t.Fatal(err)
			}
			if p := primaryItem(t, items); p.typ != "iovl" || p.codedW != w || p.codedH != h {
				t.Errorf("primary %+v", p)
			}
		})
	}
}
