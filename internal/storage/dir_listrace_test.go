package storage

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// A listing goes on while other keys come and go beside it (uploads
// stored and undone, originals deleted and their folders pruned, by the
// server while server reconcile lists): a folder removed under the walk
// is a folder with nothing in it, not a failed listing, and the keys that
// stay put are all listed every time.
func TestDirListBesideDeletions(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	const steady = 20
	for i := range steady {
		if _, err := d.Put(ctx, fmt.Sprintf("uploads/steady/%02d.jpg", i), []byte("s"), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("uploads/churn%d/%d/a/b/%d.jpg", w, i%5, i)
				if _, err := d.Put(ctx, k, []byte("c"), PutOptions{}); err != nil {
					t.Error(err)
					return
				}
				if err := d.Delete(ctx, k); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	lists, failed := 0, 0
	var first error
	for time.Now().Before(deadline) {
		objs, err := d.List(ctx, "uploads/", 0)
		lists++
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
			continue
		}
		n := 0
		for _, o := range objs {
			if len(o.Key) > 15 && o.Key[:15] == "uploads/steady/" {
				n++
			}
		}
		if n != steady {
			t.Errorf("a listing has %d of the %d keys that stayed put", n, steady)
		}
	}
	close(stop)
	wg.Wait()
	if failed > 0 {
		t.Errorf("%d of %d listings failed beside the deletions; the first: %v", failed, lists, first)
	}
}
