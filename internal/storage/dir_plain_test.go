package storage

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Files put in the directory by hand (originals copied in before the
// service, which reconcile is to make the variants of) have no metadata:
// their ETag is the MD5 of their bytes, read as a stream. A HEAD or a
// listing never holds such a file in memory, whatever its size.
func TestDirPlainFilesAreNotHeld(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	r := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 4095, 1 << 20, 48 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		if err := os.MkdirAll(filepath.Join(d.dir, "plain"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.dir, "plain", "f.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		want := dirETag(data)
		data = nil
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		h, err := d.Head(ctx, "plain/f.bin")
		runtime.ReadMemStats(&after)
		if err != nil || h.ETag != want || h.Size != int64(size) {
			t.Fatalf("%d bytes: head %+v, %v; want ETag %s", size, h, err, want)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("a HEAD of a file of %d bytes without metadata allocated %d bytes", size, alloc)
		}
		runtime.GC()
		runtime.ReadMemStats(&before)
		objs, err := d.List(ctx, "plain/", 0)
		runtime.ReadMemStats(&after)
		if err != nil || len(objs) != 1 || objs[0].ETag != want {
			t.Fatalf("%d bytes: list %+v, %v", size, objs, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
			t.Errorf("a listing of a file of %d bytes without metadata allocated %d bytes", size, alloc)
		}
		// Get still reads it whole, with the same ETag.
		got, obj, err := d.Get(ctx, "plain/f.bin", GetOptions{})
		if err != nil || obj.ETag != want || dirETag(got) != want {
			t.Fatalf("%d bytes: get %+v, %v", size, obj, err)
		}
	}
}
