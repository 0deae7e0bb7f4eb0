package imageproc

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestHeifItemsRefuses breaks one thing at a time in a file libvips wrote
// and checks that heifItems refuses it, saying why.
func TestHeifItemsRefuses(t *testing.T) {
	orig := readTestdata(t, "heif/alpha-333x77.avif")
	base := specFrom(t, orig)
	build := func(edit func(*heifSpec)) []byte {
		s := base
		s.items = slices.Clone(base.items)
		edit(&s)
		return heifBuild(t, s)
	}
	item := func(s *heifSpec, id uint32) *specItem {
		for i := range s.items {
			if s.items[i].id == id {
				return &s.items[i]
			}
		}
		t.Fatalf("no item %d", id)
		return nil
	}
	good := build(func(*heifSpec) {})
	replace := func(b []byte, old, new string) []byte {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("no %q", old)
		}
		return bytes.Replace(b, []byte(old), []byte(new), 1)
	}
	manyInfes := func(n int) []byte {
		var infes []byte
		for i := range n {
			infes = append(infes, tfull("infe", 2, 0, tu16(uint16(i+1)), tu16(0), []byte("Exif"), []byte{0})...)
		}
		return infes
	}
	// metaWith returns a file whose meta box holds the given boxes after a
	// pict handler.
	metaWith := func(boxes ...[]byte) []byte {
		hdlr := tfull("hdlr", 0, 0, tu32(0), []byte("pict"), make([]byte, 12), []byte{0})
		return slices.Concat(tbox("ftyp", []byte("avif"), tu32(0)), tfull("meta", 0, 0, append([][]byte{hdlr}, boxes...)...))
	}
	for _, tt := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"empty", nil, "no ftyp"},
		{"ftyp not first", slices.Concat(tbox("free"), good), "no ftyp"},
		{"no meta", tbox("ftyp", []byte("avif"), tu32(0)), "no meta box"},
		{"box past the end", append(slices.Clone(good), 0, 0, 1, 0, 'f', 'r', 'e', 'e'), "out of range"},
		{"handler not pict", replace(good, "pict", "vide"), `handler "vide"`},
		{"no iinf", replace(good, "iinf", "xxxx"), "no iinf"},
		{"no iloc", replace(good, "iloc", "xxxx"), "no iloc"},
		{"no ipco", replace(good, "ipco", "xxxx"), "no ipco"},
		{"primary not declared", build(func(s *heifSpec) { s.primary = 9 }), "primary item 9"},
		{"item declared twice", build(func(s *heifSpec) { s.items = append(s.items, s.items[0]) }), "declared twice"},
		{"control: the file rebuilt with 15-bit ipma indices", build(func(s *heifSpec) { s.ipmaWide = true; s.ipmaVersion = 1 }), ""},
		{"av01 without a location", build(func(s *heifSpec) { item(s, 1).data = nil; item(s, 1).props = item(s, 1).props[:1] }), "no location"},
		{"data in another file", build(func(s *heifSpec) { item(s, 1).dataRef = 1 }), "another file"},
		{"construction method 2", build(func(s *heifSpec) { s.ilocVersion = 1; item(s, 1).method = 2 }), "construction method 2"},
		{"construction method 1 without idat", build(func(s *heifSpec) { s.ilocVersion = 1; item(s, 1).method = 1 }), "no idat box"},
		{"iloc version 1 with an index", build(func(s *heifSpec) { s.ilocVersion, s.idxSize = 1, 4 }), "read differently by libheif"},
		{"iloc field size 2", build(func(s *heifSpec) { s.offSize = 2 }), "field size 2"},
		{"av01 data without a sequence header", build(func(s *heifSpec) { item(s, 2).data = []byte{0x12, 0} }), "no AV1 sequence header"},
		{"grid version 1", build(func(s *heifSpec) {
			s.ilocVersion = 1
			s.items = append(s.items, specItem{id: 50, typ: "grid", data: []byte{1, 0, 0, 0, 1, 0, 1, 0}, idat: true})
		}), "version 1"},
		{"grid data cut short", build(func(s *heifSpec) {
			s.items = append(s.items, specItem{id: 50, typ: "grid", data: []byte{0, 1, 0, 0, 1, 0, 1, 0}})
		}), "truncated data"},
		{"hvc1 without hvcC", build(func(s *heifSpec) { item(s, 1).typ = "hvc1" }), "no hvcC"},
		{"too many items", metaWith(tfull("iinf", 0, 0, tu16(maxHeifItems+1), manyInfes(maxHeifItems+1))), "more than 4096 items"},
		{"as many items as allowed", metaWith(tfull("iinf", 0, 0, tu16(maxHeifItems), manyInfes(maxHeifItems)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0))), ""},
		{"too many properties", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
			tbox("iprp", tbox("ipco", bytes.Repeat(tbox("free"), maxHeifProps+1)))), "more than 4096 properties"},
		{"too many extents", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(2),
			tu16(1), tu16(0), tu16(maxHeifExtents), bytes.Repeat(tu32(0), 2*maxHeifExtents),
			tu16(2), tu16(0), tu16(1), tu32(0), tu32(0))), "more than 16384 extents"},
		{"too many iloc items", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 2, 0, tu16(0x4400), tu32(maxHeifItems+1))), "more than 4096 items"},
		{"too many associations", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
			tbox("iprp", tbox("ipco", tbox("free")), tfull("ipma", 0, 0, tu32(300), bytes.Repeat(slices.Concat(tu16(1), []byte{255}, bytes.Repeat([]byte{1}, 255)), 300)))),
			"more than 65536 property associations"},
		{"ipma cut short", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
			tbox("iprp", tbox("ipco", tbox("free")), tfull("ipma", 0, 0, tu32(1), tu16(1), []byte{2, 1}))), "ipma: truncated"},
		{"ipma index past the end", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
			tbox("iprp", tbox("ipco", tbox("free")), tfull("ipma", 0, 0, tu32(1), tu16(1), []byte{1, 2}))), "property 2 of 1"},
		{"iref cut short", metaWith(tfull("iinf", 0, 0, tu16(0)), tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
			tfull("iref", 0, 0, tbox("auxl", tu16(1), tu16(3), tu16(1)))), "auxl: truncated"},
		{"infe cut short", metaWith(tfull("iinf", 0, 0, tu16(1), tfull("infe", 2, 0, tu16(1))), tfull("iloc", 0, 0, tu16(0x4400), tu16(0))), "infe: truncated"},
		{"box in meta past its end", metaWith(tu32(100), []byte("iloc")), "meta: box"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			items, err := heifItems(tt.b)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want %q (items %+v)", err, tt.err, items)
			}
			if items != nil {
				t.Errorf("items with an error: %+v", items)
			}
		})
	}
}

// TestItemDataExtents checks the bounds of iloc extents, including lengths
// of 0 ("to the end") and offsets that would overflow.
func TestItemDataExtents(t *testing.T) {
	file := []byte("0123456789")
	idat := []byte("abcdef")
	m := &heifMeta{idat: idat, locs: map[uint32]heifLoc{
		1:  {extents: []heifExtent{{2, 3}, {0, 1}}},
		2:  {base: 4, extents: []heifExtent{{1, 0}}},
		3:  {method: 1, extents: []heifExtent{{5, 1}, {0, 0}}},
		4:  {extents: []heifExtent{{8, 3}}},
		5:  {base: 11, extents: []heifExtent{{0, 0}}},
		6:  {base: 1 << 63, extents: []heifExtent{{1 << 63, 1}}},
		7:  {extents: []heifExtent{{10, 0}}},
		8:  {method: 1, extents: []heifExtent{{2, 1<<64 - 1}}},
		9:  {},
		10: {extents: []heifExtent{{5, 1<<64 - 4}}},
	}}
	for _, tt := range []struct {
		id   uint32
		want string
		err  string
	}{
		{1, "234|0", ""},
		{2, "56789", ""},
		{3, "f|abcdef", ""},
		{4, "", "beyond"},
		{5, "", "beyond"},
		{6, "", "beyond"},
		{7, "", ""}, // an empty extent at the very end
		{8, "", "beyond"},
		{9, "", "no extents"},
		{10, "", "beyond"},
		{11, "", "no location"},
	} {
		t.Run(fmt.Sprint(tt.id), func(t *testing.T) {
			parts, err := m.itemData(file, tt.id)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(bytes.Join(parts, []byte("|"))); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestByteStream reads across extents of every split, including empty
// ones, with head, byte and skip.
func TestByteStream(t *testing.T) {
	data := []byte("the quick brown fox jumps over the lazy dog")
	for n := 1; n <= len(data); n++ {
		parts := append([][]byte{{}}, split(data, n)...)
		parts = append(parts, []byte{})
		s := newByteStream(parts...)
		if got := string(s.head(10)); got != "the quick " {
			t.Fatalf("%d parts: head(10) = %q", n, got)
		}
		var got []byte
		for i := 0; s.left > 0; i++ {
			if i%3 == 0 {
				c, ok := s.byte()
				if !ok {
					t.Fatal("byte at the end")
				}
				got = append(got, c)
				continue
			}
			h := s.head(i % 7)
			if !s.skip(uint64(len(h))) {
				t.Fatal("skip failed")
			}
			got = append(got, h...)
		}
		if string(got) != string(data) || s.pos() != uint64(len(data)) {
			t.Fatalf("%d parts: read %q", n, got)
		}
		if _, ok := s.byte(); ok || s.skip(1) || s.head(3) != nil {
			t.Fatalf("%d parts: reads past the end", n)
		}
	}
	s := newByteStream([]byte("abc"), []byte("de"))
	if s.skip(6) || s.left != 0 {
		t.Error("skip past the end succeeded")
	}
}
