package imageproc

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// A whole profile comes back byte for byte, its ID (p3.jpg's is its MD5)
// kept; one hiding metadata around its tags and past its end comes back
// as the same profile with those bytes gone, its ID zeroed: the same
// tags, the same size as it declares, and not a byte of what was hidden.
func TestICCProfileOnly(t *testing.T) {
	icc := imagetest.JPEGICC(readTestdata(t, "p3.jpg"))
	if got := iccProfileOnly(icc); !bytes.Equal(got, icc) {
		t.Fatalf("p3.jpg's profile: %d bytes back, differing from its %d", len(got), len(icc))
	}
	if id := icc[iccIDAt:iccReservedAt]; !bytes.Equal(id, iccID(icc)) || bytes.Equal(id, make([]byte, 16)) {
		t.Fatalf("p3.jpg's profile ID %x is not its MD5 %x: the check below proves nothing", id, iccID(icc))
	}

	hiding := imagetest.ICCHiding(icc)
	declared := int(binary.BigEndian.Uint32(hiding))
	got := iccProfileOnly(hiding)
	if len(got) != declared {
		t.Fatalf("%d bytes, want the %d the header declares", len(got), declared)
	}
	for _, m := range imagetest.Markers {
		if bytes.Contains(got, []byte(m)) {
			t.Errorf("the profile still holds %q", m)
		}
	}
	if bytes.Contains(got, imagetest.GPSBytes()) {
		t.Error("the profile still holds the GPS position")
	}
	if !bytes.Equal(got[iccIDAt:iccReservedAt], make([]byte, 16)) {
		t.Errorf("profile ID %x, want zero (not computed)", got[iccIDAt:iccReservedAt])
	}
	// Everything but the size, the ID and the reserved bytes is icc's,
	// and the rest, where the EXIF was, is zero.
	want := slices.Concat(icc[4:iccIDAt], icc[iccHeaderLen:])
	if !bytes.Equal(slices.Concat(got[4:iccIDAt], got[iccHeaderLen:len(icc)]), want) {
		t.Error("the profile's header or tags changed")
	}
	if rest := got[len(icc):]; !bytes.Equal(rest, make([]byte, len(rest))) {
		t.Error("the bytes after the last tag are not zeroed")
	}

	// Tags that overlap or share data keep every byte any of them covers.
	p := make([]byte, 132+3*12+40)
	binary.BigEndian.PutUint32(p, uint32(len(p)))
	binary.BigEndian.PutUint32(p[128:], 3)
	for i, e := range [][2]uint32{{168, 20}, {178, 20}, {168, 4}} {
		binary.BigEndian.PutUint32(p[132+12*i+4:], e[0])
		binary.BigEndian.PutUint32(p[132+12*i+8:], e[1])
	}
	for i := 168; i < 198; i++ {
		p[i] = 0xAA
	}
	p[200] = 0xBB // in no tag
	copy(p[iccIDAt:], iccID(p))
	got = iccProfileOnly(p)
	if !bytes.Equal(got[168:198], bytes.Repeat([]byte{0xAA}, 30)) || got[200] != 0 {
		t.Errorf("overlapping tags: % x", got[160:])
	}

	// What cannot be followed is not a profile to keep.
	for name, b := range map[string][]byte{
		"empty":             nil,
		"header only":       icc[:128],
		"declared too long": binary.BigEndian.AppendUint32(nil, uint32(len(icc)+1)),
		"table past the end": func() []byte {
			b := slices.Clone(icc)
			binary.BigEndian.PutUint32(b[128:], uint32(len(b)))
			return b
		}(),
	} {
		if name == "declared too long" {
			b = append(b, icc[4:]...)
		}
		if got := iccProfileOnly(b); got != nil {
			t.Errorf("%s: %d bytes kept, want none", name, len(got))
		}
	}
}

// FuzzICCProfileOnly: whatever the bytes, iccProfileOnly does not panic,
// keeps at most the size the header declares, and what it keeps it keeps
// as it is when given it again (nothing left to zero, the ID settled).
func FuzzICCProfileOnly(f *testing.F) {
	icc := imagetest.JPEGICC(readTestdata(f, "p3.jpg"))
	f.Add(icc)
	f.Add(imagetest.ICCHiding(icc))
	f.Add(icc[:140])
	f.Fuzz(func(t *testing.T, b []byte) {
		got := iccProfileOnly(b)
		if got == nil {
			return
		}
		if len(got) != int(binary.BigEndian.Uint32(b)) {
			t.Fatalf("%d bytes kept, the header declares %d", len(got), binary.BigEndian.Uint32(b))
		}
		if again := iccProfileOnly(got); !bytes.Equal(again, got) {
			t.Fatal("not settled: a second pass changed the profile")
		}
	})
}
