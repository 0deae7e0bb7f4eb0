package storage

import (
	"context"
	"fmt"
	"testing"
)

// A derived image of delivery by URL as the local store writes it: 40 KB,
// seven folders deep, without waiting for the disk. The system calls it
// costs (docs/benchmarks.md):
//
//	go test -c -o /tmp/storage.test ./internal/storage
//	strace -f -c /tmp/storage.test -test.run '^$' -test.bench DirPutDerived -test.benchtime 1000x
func BenchmarkDirPutDerived(b *testing.B) {
	d, err := NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 40<<10)
	o := PutOptions{ContentType: "image/jpeg", Metadata: map[string]string{"digest": "0123"}, Rebuildable: true}
	b.ResetTimer()
	for i := range b.N {
		key := fmt.Sprintf("resized/_cache/uploads/2026/a%d.jpg/0123456789abcdef/%032d", i%500, i)
		if _, err := d.Put(context.Background(), key, data, o); err != nil {
			b.Fatal(err)
		}
	}
}
