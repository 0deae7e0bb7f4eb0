package imageproc

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// tiffEntry is one IFD entry of a test EXIF block. value fills the 4-byte
// value field: left-justified as a SHORT when typ is 3 and count is at
// most 2, as a LONG otherwise.
type tiffEntry struct {
	tag, typ uint16
	count    uint32
	value    uint32
}

// tiffOrder is binary.LittleEndian or binary.BigEndian.
type tiffOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// makeTIFF builds a TIFF-structured EXIF block: the header, pad bytes,
// then IFD0 declaring count entries and holding entries, then a next-IFD
// offset of next.
func makeTIFF(order tiffOrder, pad int, count int, entries []tiffEntry, next uint32) []byte {
	b := []byte("MM")
	if order == binary.LittleEndian {
		b = []byte("II")
	}
	b = order.AppendUint16(b, 42)
	b = order.AppendUint32(b, uint32(8+pad))
	b = append(b, make([]byte, pad)...)
	b = order.AppendUint16(b, uint16(count))
	for _, e := range entries {
		b = order.AppendUint16(b, e.tag)
		b = order.AppendUint16(b, e.typ)
		b = order.AppendUint32(b, e.count)
		if e.typ == 3 && e.count <= 2 {
			b = order.AppendUint16(b, uint16(e.value))
			b = append(b, 0, 0)
		} else {
			b = order.AppendUint32(b, e.value)
		}
	}
	return order.AppendUint32(b, next)
}

func orientationEntry(v uint32) tiffEntry { return tiffEntry{0x0112, 3, 1, v} }

func TestExifOrientationHostile(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	other := tiffEntry{0x010F, 2, 4, 0x41636D65} // Make "Acme"
	withPrefix := func(b []byte) []byte { return append([]byte("Exif\x00\x00"), b...) }
	setU32 := func(b []byte, at int, v uint32, order binary.ByteOrder) []byte {
		order.PutUint32(b[at:], v)
		return b
	}
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"empty", nil, 1},
		{"prefix only", []byte("Exif\x00\x00"), 1},
		{"header only", []byte("II*\x00\x08\x00\x00\x00"), 1},
		{"little-endian", makeTIFF(le, 0, 2, []tiffEntry{other, orientationEntry(6)}, 0), 6},
		{"big-endian", makeTIFF(be, 0, 2, []tiffEntry{other, orientationEntry(8)}, 0), 8},
		{"with Exif prefix", withPrefix(makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(3)}, 0)), 3},
		{"prefix twice", withPrefix(withPrefix(makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(3)}, 0))), 1},
		{"IFD0 after pad bytes", makeTIFF(le, 37, 1, []tiffEntry{orientationEntry(5)}, 0), 5},
		{"bad byte order mark", append([]byte("IM"), makeTIFF(le, 0, 1, []tiffEntry{orientationEntry(6)}, 0)[2:]...), 1},
		{"BigTIFF magic", setU32(makeTIFF(le, 0, 1, []tiffEntry{orientationEntry(6)}, 0), 0, 0x49492B00, be), 1},
		{"IFD0 offset 0xFFFFFFFF", setU32(makeTIFF(le, 0, 1, []tiffEntry{orientationEntry(6)}, 0), 4, 0xFFFFFFFF, le), 1},
		{"IFD0 offset inside the header", setU32(makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(6)}, 0), 4, 4, be), 1},
		{"IFD0 offset at the last byte", setU32(makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(6)}, 0), 4, 25, be), 1},
		{"huge count, orientation in reach", makeTIFF(be, 0, 65535, []tiffEntry{orientationEntry(7)}, 0), 7},
		{"huge count, no orientation", makeTIFF(be, 0, 65535, []tiffEntry{other, other}, 0), 1},
		{"count hides the orientation", makeTIFF(le, 0, 1, []tiffEntry{other, orientationEntry(6)}, 0), 1},
		{"IFD0 links to itself", makeTIFF(le, 0, 1, []tiffEntry{other}, 8), 1},
		{"IFD0 links to itself after the orientation", makeTIFF(le, 0, 1, []tiffEntry{orientationEntry(2)}, 8), 2},
		{"orientation 0", makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(0)}, 0), 1},
		{"orientation 9", makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(9)}, 0), 1},
		{"orientation 0xFFFF", makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(0xFFFF)}, 0), 1},
		{"orientation as LONG", makeTIFF(be, 0, 1, []tiffEntry{{0x0112, 4, 1, 6}}, 0), 1},
		{"orientation count 2", makeTIFF(be, 0, 1, []tiffEntry{{0x0112, 3, 2, 6}}, 0), 1},
		{"orientation count 0", makeTIFF(be, 0, 1, []tiffEntry{{0x0112, 3, 0, 6}}, 0), 1},
		{"the first orientation entry decides", makeTIFF(le, 0, 2, []tiffEntry{orientationEntry(9), orientationEntry(6)}, 0), 1},
		{"the first orientation entry decides, valid", makeTIFF(le, 0, 2, []tiffEntry{orientationEntry(4), orientationEntry(6)}, 0), 4},
		{"entry cut short", makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(6)}, 0)[:8+2+11], 1},
		{"entry exactly in reach", makeTIFF(be, 0, 1, []tiffEntry{orientationEntry(6)}, 0)[:8+2+12], 6},
	}
	for _, tt := range tests {
		if got := exifOrientation(tt.b); got != tt.want {
			t.Errorf("%s: exifOrientation = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestExifOrientationProperty checks the rule on random IFDs, in both byte
// orders, with and without the prefix, cut at random lengths: the result is
// the value of the first orientation entry among those the declared count
// allows and the block holds whole, when that entry is a SHORT of count 1
// with a value in 1..8; otherwise 1.
func TestExifOrientationProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tags := []uint16{0x0100, 0x0101, 0x010F, 0x0110, 0x0112, 0x0112, 0x8769, 0x8825}
	seen := map[int]int{}
	for range 20000 {
		order := tiffOrder(binary.BigEndian)
		if r.IntN(2) == 0 {
			order = binary.LittleEndian
		}
		entries := make([]tiffEntry, r.IntN(8))
		for k := range entries {
			e := tiffEntry{tags[r.IntN(len(tags))], 3, 1, uint32(r.IntN(11))}
			if r.IntN(8) == 0 {
				e.typ = []uint16{1, 4, 7, 9}[r.IntN(4)]
			}
			if r.IntN(8) == 0 {
				e.count = uint32(r.IntN(3))
			}
			entries[k] = e
		}
		count := len(entries)
		if r.IntN(4) == 0 {
			count = r.IntN(len(entries) + 3)
		}
		pad := r.IntN(3) * r.IntN(20)
		b := makeTIFF(order, pad, count, entries, 0)
		prefix := 0
		if r.IntN(2) == 0 {
			b = append([]byte("Exif\x00\x00"), b...)
			prefix = 6
		}
		if r.IntN(3) == 0 {
			b = b[:r.IntN(len(b)+1)]
		}

		want := 1
		first := prefix + 8 + pad + 2 // the first entry's offset
		if len(b) >= first {
			for k, e := range entries {
				if k >= count || first+12*k+12 > len(b) {
					break
				}
				if e.tag != 0x0112 {
					continue
				}
				if e.typ == 3 && e.count == 1 && e.value >= 1 && e.value <= 8 {
					want = int(e.value)
				}
				break
			}
		}
		if got := exifOrientation(b); got != want {
			t.Fatalf("exifOrientation(% x) = %d, want %d", b, got, want)
		}
		seen[want]++
	}
	for v := 1; v <= 8; v++ {
		if seen[v] == 0 {
			t.Errorf("the generator never made orientation %d", v)
		}
	}
}

// FuzzExifOrientation checks that any bytes give a value in 1..8, that the
// "Exif\0\0" prefix changes nothing, and that bytes appended to a block
// never change an orientation found in it.
func FuzzExifOrientation(f *testing.F) {
	f.Add(makeTIFF(binary.LittleEndian, 0, 1, []tiffEntry{orientationEntry(6)}, 0))
	f.Add(makeTIFF(binary.BigEndian, 3, 2, []tiffEntry{{0x010F, 2, 4, 0}, orientationEntry(8)}, 8))
	f.Add([]byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\xff\xff"))
	f.Add([]byte("II*\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := exifOrientation(b)
		if got < 1 || got > 8 {
			t.Fatalf("orientation %d", got)
		}
		if !bytes.HasPrefix(b, exifPrefix) {
			if p := exifOrientation(append([]byte("Exif\x00\x00"), b...)); p != got {
				t.Fatalf("with the prefix %d, without %d", p, got)
			}
		}
		if got != 1 {
			if more := exifOrientation(append(bytes.Clone(b), make([]byte, 64)...)); more != got {
				t.Fatalf("appending bytes changed %d into %d", got, more)
			}
		}
	})
}
