package imageproc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// FuzzHeifItems feeds arbitrary bytes to heifItems, seeded with real files
// (libvips' AVIFs and HEICs, the ispe bombs) and with rebuilt variants of
// them in the layouts libvips does not write. Whatever the bytes, it must
// not panic, must finish quickly (the walk is linear in the input and every
// count is capped), must give the same answer twice, and what it returns
// must be consistent: at most one primary item, rotations that are
// multiples of 90, and a size for every coded item.
func FuzzHeifItems(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "heif", "*.*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	avif := readTestdata(f, "heif/alpha-333x77.avif")
	for _, edit := range []func(*heifSpec){
		func(s *heifSpec) { s.ilocVersion, s.baseSize, s.idxSize, s.extents = 2, 8, 4, 3 },
		func(s *heifSpec) {
			s.ilocVersion = 1
			for i := range s.items {
				s.items[i].idat = true
			}
		},
		func(s *heifSpec) {
			s.pitmVersion, s.infeVersion, s.ipmaVersion, s.ipmaWide, s.irefVersion = 1, 3, 1, true, 1
		},
		func(s *heifSpec) {
			s.items[0].props = append(s.items[0].props, irotProp(90), imirProp(1))
			s.items = append(s.items, specItem{id: 60, typ: "grid", data: gridData(1, 1, 333, 77, false)})
		},
	} {
		s := specFrom(f, avif)
		edit(&s)
		f.Add(heifBuild(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Now()
		items, err := heifItems(b)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%d bytes took %v", len(b), d)
		}
		again, err2 := heifItems(b)
		if (err == nil) != (err2 == nil) || !slices.Equal(items, again) {
			t.Fatalf("two answers: %v %v / %v %v", items, err, again, err2)
		}
		if err != nil {
			if items != nil {
				t.Fatalf("items with an error: %v", err)
			}
			return
		}
		if len(items) > maxHeifItems {
			t.Fatalf("%d items", len(items))
		}
		primaries := 0
		for _, it := range items {
			if it.primary {
				primaries++
			}
			if it.rotation%90 != 0 || it.rotation < 0 || it.rotation >= 360 {
				t.Fatalf("rotation %d", it.rotation)
			}
			if (it.typ == "av01" || it.typ == "hvc1") && (it.codedW < 1 || it.codedH < 1) {
				t.Fatalf("coded item without a size: %+v", it)
			}
			if it.codedW < 0 || it.codedH < 0 || it.ispeW < 0 || it.ispeH < 0 {
				t.Fatalf("negative size: %+v", it)
			}
		}
		if primaries > 1 {
			t.Fatalf("%d primary items", primaries)
		}
	})
}
