package imageproc

import (
	"bytes"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"
)

// asciiTIFF builds an EXIF block whose IFD0 holds entries and, after it,
// data (the entries' out-of-line values point into it: valueAt gives the
// offset of data[0]).
func asciiTIFF(order tiffOrder, entries []tiffEntry, data []byte) []byte {
	b := makeTIFF(order, 0, len(entries), entries, 0)
	return append(b, data...)
}

// valueAt is where asciiTIFF puts data for n entries.
func valueAt(n int) uint32 { return uint32(8 + 2 + 12*n + 4) }

func TestExifRightsHostile(t *testing.T) {
	be, le := binary.BigEndian, binary.LittleEndian
	name := []byte("Ada Lovelace\x00")
	inline := func(s string) uint32 { // a value of up to 4 bytes, inline, big-endian
		var v [4]byte
		copy(v[:], s)
		return be.Uint32(v[:])
	}
	long := strings.Repeat("x", maxRightsLen)
	tests := []struct {
		name              string
		b                 []byte
		artist, copyright string
		orientationToo    int
	}{
		{"both, out of line", asciiTIFF(be, []tiffEntry{{0x013B, 2, 13, valueAt(2)}, {0x8298, 2, 13, valueAt(2)}}, name),
			"Ada Lovelace", "Ada Lovelace", 1},
		{"little-endian", asciiTIFF(le, []tiffEntry{{0x8298, 2, 13, valueAt(1)}}, name), "", "Ada Lovelace", 1},
		{"inline", makeTIFF(be, 0, 1, []tiffEntry{{0x013B, 2, 4, inline("Bo\x00\x00")}}, 0), "Bo", "", 1},
		{"with orientation", asciiTIFF(be, []tiffEntry{orientationEntry(6), {0x013B, 2, 13, valueAt(2)}}, name),
			"Ada Lovelace", "", 6},
		{"two strings in Copyright", asciiTIFF(be, []tiffEntry{{0x8298, 2, 10, valueAt(1)}}, []byte("Ph.\x00Ed.\x00\x00\x00")),
			"", "Ph.\x00Ed.", 1},
		{"not ASCII type", asciiTIFF(be, []tiffEntry{{0x013B, 7, 13, valueAt(1)}}, name), "", "", 1},
		{"offset past the end", asciiTIFF(be, []tiffEntry{{0x013B, 2, 13, valueAt(1) + 1}}, name), "", "", 1},
		{"offset 0xFFFFFFFF", asciiTIFF(be, []tiffEntry{{0x013B, 2, 13, 0xFFFFFFFF}}, name), "", "", 1},
		{"count 0xFFFFFFFF", asciiTIFF(be, []tiffEntry{{0x013B, 2, 0xFFFFFFFF, valueAt(1)}}, name), "", "", 1},
		{"only NULs", asciiTIFF(be, []tiffEntry{{0x013B, 2, 8, valueAt(1)}}, make([]byte, 8)), "", "", 1},
		{"at the limit", asciiTIFF(be, []tiffEntry{{0x013B, 2, maxRightsLen + 1, valueAt(1)}}, []byte(long+"\x00")),
			long, "", 1},
		{"over the limit is dropped, not cut", asciiTIFF(be, []tiffEntry{{0x013B, 2, maxRightsLen + 2, valueAt(1)}},
			[]byte(long+"y\x00")), "", "", 1},
		{"the first entry decides", asciiTIFF(be, []tiffEntry{{0x013B, 7, 13, valueAt(2)}, {0x013B, 2, 13, valueAt(2)}}, name),
			"", "", 1},
		{"count hides it", append(makeTIFF(be, 0, 0, []tiffEntry{{0x013B, 2, 13, valueAt(1)}}, 0), name...), "", "", 1},
		{"entry cut short", asciiTIFF(be, []tiffEntry{{0x013B, 2, 13, valueAt(1)}}, nil)[:8+2+11], "", "", 1},
		{"with the Exif prefix", append(slices.Clone(exifPrefix), asciiTIFF(be, []tiffEntry{{0x013B, 2, 13, valueAt(1)}}, name)...),
			"Ada Lovelace", "", 1},
	}
	for _, tt := range tests {
		o, r := exifFields(tt.b)
		if string(r.Artist) != tt.artist || string(r.Copyright) != tt.copyright || o != tt.orientationToo {
			t.Errorf("%s: orientation %d, Artist %q, Copyright %q; want %d, %q, %q", tt.name, o, r.Artist, r.Copyright,
				tt.orientationToo, tt.artist, tt.copyright)
		}
	}
}

// The block keep=copyright writes holds the rights and nothing else, and
// reads back as them.
func TestExifBlockRoundTrip(t *testing.T) {
	for _, r := range []exifRights{
		{Artist: []byte("A")}, {Copyright: []byte("ABCD")}, {Artist: []byte("ABCDE"), Copyright: []byte("(c) 2026 \xC3\xA9dition")},
		{Artist: []byte(strings.Repeat("a", maxRightsLen)), Copyright: []byte("Ph.\x00Ed.")},
	} {
		b := r.exifBlock()
		o, got := exifFields(b)
		if o != 1 || !bytes.Equal(got.Artist, r.Artist) || !bytes.Equal(got.Copyright, r.Copyright) {
			t.Errorf("%q: read back %q, orientation %d", r, got, o)
		}
		if n := int(binary.BigEndian.Uint16(b[8:])); n != btoi(r.Artist != nil)+btoi(r.Copyright != nil) {
			t.Errorf("%q: %d entries", r, n)
		}
	}
	if b := (exifRights{}).exifBlock(); b != nil {
		t.Errorf("no rights: a block of %d bytes", len(b))
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzExifFields: any bytes give an orientation in 1..8 and rights that
// are nil or 1..maxRightsLen bytes without a trailing NUL; the prefix
// changes nothing; and the block made of the rights reads back as them.
func FuzzExifFields(f *testing.F) {
	f.Add(asciiTIFF(binary.BigEndian, []tiffEntry{{0x013B, 2, 13, valueAt(2)}, {0x8298, 2, 13, valueAt(2)}}, []byte("Ada Lovelace\x00")))
	f.Add(asciiTIFF(binary.LittleEndian, []tiffEntry{orientationEntry(6), {0x8298, 2, 5, valueAt(2)}}, []byte("(c) x")))
	f.Add((exifRights{Artist: []byte("a"), Copyright: []byte("bcdef")}).exifBlock())
	f.Add([]byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x3b\x00\x02\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, r := exifFields(b)
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		for _, v := range [][]byte{r.Artist, r.Copyright} {
			if v != nil && (len(v) == 0 || len(v) > maxRightsLen || v[len(v)-1] == 0) {
				t.Fatalf("value %q", v)
			}
		}
		if !bytes.HasPrefix(b, exifPrefix) {
			if po, pr := exifFields(append(slices.Clone(exifPrefix), b...)); po != o || !bytes.Equal(pr.Artist, r.Artist) ||
				!bytes.Equal(pr.Copyright, r.Copyright) {
				t.Fatalf("the prefix changes the result")
			}
		}
		if ro, rr := exifFields(r.exifBlock()); ro != 1 || !bytes.Equal(rr.Artist, r.Artist) || !bytes.Equal(rr.Copyright, r.Copyright) {
			t.Fatalf("%q reads back as %q", r, rr)
		}
	})
}

// FuzzHeifRights: whatever the bytes of a HEIF or AVIF source, reading
// its Exif item's rights (done in Go, before any decoder judges the file)
// ends quickly and gives nil or bounded values.
func FuzzHeifRights(f *testing.F) {
	avif := readTestdata(f, "heif/alpha-333x77.avif")
	f.Add(avif)
	if b, err := avifWith(avif, exifRights{Artist: []byte("Ada"), Copyright: []byte("(c) Ada")}.exifBlock(), nil); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Now()
		r := heifRights(b)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("%d bytes took %v", len(b), d)
		}
		for _, v := range [][]byte{r.Artist, r.Copyright} {
			if v != nil && (len(v) == 0 || len(v) > maxRightsLen) {
				t.Fatalf("value of %d bytes", len(v))
			}
		}
	})
}

// The rights of an AVIF's Exif item are read, as keep=copyright needs them.
func TestHeifRights(t *testing.T) {
	p := newTestProcessor(t, nil)
	clean, err := p.Process(t.Context(), encodePNG(t, quadrants(64, 48)), Options{Format: FormatAVIF}) // no Exif item
	if err != nil {
		t.Fatal(err)
	}
	want := exifRights{Artist: []byte("Ada"), Copyright: []byte("(c) Ada")}
	b, err := avifWith(clean.Data, want.exifBlock(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := heifRights(b); !bytes.Equal(got.Artist, want.Artist) || !bytes.Equal(got.Copyright, want.Copyright) {
		t.Errorf("read %q, want %q", got, want)
	}
}
