package watermark

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

// putter is a store the tests can also write to.
type putter interface {
	Store
	Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error)
	Delete(ctx context.Context, key string) error
}

// stores returns the stores to test on: a directory, and a bucket of a
// real MinIO.
func stores(t *testing.T) map[string]putter {
	t.Helper()
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := s3test.Start(t)
	s, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]putter{"dir": d, "s3": s}
}

// counting counts a store's reads.
type counting struct {
	Store
	gets, heads atomic.Int32
}

func (c *counting) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key, o)
}

func (c *counting) Head(ctx context.Context, key string) (storage.Object, error) {
	c.heads.Add(1)
	return c.Store.Head(ctx, key)
}

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCache(t *testing.T, cfg Config, st Store) (*Cache, *clock) {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = "watermarks/"
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes, cfg.CacheBytes = 1<<20, 4<<20
	}
	c, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	c.now = clk.now
	return c, clk
}

func put(t *testing.T, st putter, key string, data []byte) {
	t.Helper()
	if _, err := st.Put(t.Context(), key, data, storage.PutOptions{ContentType: "image/png"}); err != nil {
		t.Fatal(err)
	}
}

// Many requests, at once and after, read the store once; a minute later
// the store is asked whether the watermark changed (a HEAD), and it is read
// again only when it did; a deleted one is gone.
func TestReadsOnce(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			put(t, st, "watermarks/logo.png", []byte("logo v1"))
			cs := &counting{Store: st}
			c, clk := newCache(t, Config{}, cs)
			var wg sync.WaitGroup
			for range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if b, err := c.Watermark(ctx, "logo.png"); err != nil || string(b) != "logo v1" {
						t.Errorf("%q, %v", b, err)
					}
				}()
			}
			wg.Wait()
			for range 100 {
				if _, err := c.Watermark(ctx, "logo.png"); err != nil {
					t.Fatal(err)
				}
			}
			if g, h := cs.gets.Load(), cs.heads.Load(); g != 1 || h != 0 {
				t.Fatalf("150 requests: %d reads and %d checks, want 1 and 0", g, h)
			}
			clk.add(refreshAfter + time.Second)
			for range 10 {
				if b, err := c.Watermark(ctx, "logo.png"); err != nil || string(b) != "logo v1" {
					t.Fatalf("%q, %v", b, err)
				}
			}
			if g, h := cs.gets.Load(), cs.heads.Load(); g != 1 || h != 1 {
				t.Fatalf("unchanged after a minute: %d reads and %d checks, want 1 and 1", g, h)
			}
			put(t, st, "watermarks/logo.png", []byte("logo v2, replaced"))
			if b, _ := c.Watermark(ctx, "logo.png"); string(b) != "logo v1" {
				t.Fatalf("replaced, within the minute: %q, want the one held", b)
			}
			clk.add(refreshAfter + time.Second)
			if b, err := c.Watermark(ctx, "logo.png"); err != nil || string(b) != "logo v2, replaced" {
				t.Fatalf("replaced, after a minute: %q, %v", b, err)
			}
			if g := cs.gets.Load(); g != 2 {
				t.Fatalf("%d reads, want 2", g)
			}
			if err := st.Delete(ctx, "watermarks/logo.png"); err != nil {
				t.Fatal(err)
			}
			clk.add(refreshAfter + time.Second)
			if _, err := c.Watermark(ctx, "logo.png"); !errors.Is(err, imageproc.ErrBadWatermark) {
				t.Fatalf("deleted: %v, want ErrBadWatermark", err)
			}
			if n, _ := c.usage(); n != 0 {
				t.Fatalf("deleted, still held: %d", n)
			}
		})
	}
}

// A watermark over MaxBytes is refused; the cache holds at most
// CacheBytes, letting go of the least recently used.
func TestBounds(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			for _, n := range []string{"a", "b", "c", "d"} {
				put(t, st, "watermarks/"+n+".png", bytes.Repeat([]byte(n), 1000))
			}
			put(t, st, "watermarks/big.png", make([]byte, 1001))
			cs := &counting{Store: st}
			c, _ := newCache(t, Config{MaxBytes: 1000, CacheBytes: 3000}, cs)
			_, err := c.Watermark(ctx, "big.png")
			if !errors.Is(err, imageproc.ErrBadWatermark) || errors.Is(err, storage.ErrTooLarge) {
				t.Fatalf("over MaxBytes: %v, want ErrBadWatermark only", err)
			}
			for _, n := range []string{"a", "b", "c", "a", "d"} { // b is then the least recently used
				if b, err := c.Watermark(ctx, n+".png"); err != nil || len(b) != 1000 || b[0] != n[0] {
					t.Fatalf("%s: %d bytes, %v", n, len(b), err)
				}
			}
			if n, size := c.usage(); n != 3 || size != 3000 {
				t.Fatalf("holds %d watermarks, %d bytes; want 3, 3000", n, size)
			}
			before := cs.gets.Load()
			for _, n := range []string{"a", "c", "d"} {
				c.Watermark(ctx, n+".png")
			}
			if cs.gets.Load() != before {
				t.Fatal("a watermark still held was read again")
			}
			c.Watermark(ctx, "b.png")
			if cs.gets.Load() != before+1 {
				t.Fatal("the evicted watermark was not read again")
			}
		})
	}
}

// A name that does not exist, or that is not a valid key, is a bad option;
// an invalid one never reaches the store, and no name leaves the prefix.
func TestRefusals(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			put(t, st, "uploads/secret.png", []byte("an original"))
			cs := &counting{Store: st}
			c, _ := newCache(t, Config{}, cs)
			// A valid key of 1,015 bytes, over 1,024 under the prefix.
			long := strings.Repeat("abcdefghi/", 101) + "x.png"
			for _, n := range []string{"missing.png", "../uploads/secret.png", "a/../../uploads/secret.png", "/uploads/secret.png", "", ".hidden.png", "sub/", long} {
				b, err := c.Watermark(t.Context(), n)
				if !errors.Is(err, imageproc.ErrBadWatermark) || errors.Is(err, storage.ErrNotFound) || b != nil {
					t.Errorf("%q: %q, %v; want ErrBadWatermark only", n, b, err)
				}
			}
			if g := cs.gets.Load(); g != 1 {
				t.Errorf("%d reads: only missing.png should reach the store", g)
			}
			// A name the store itself will not take (a segment of 300
			// bytes: too long for a file name, and for MinIO) is a bad
			// watermark too, not the store's failure (a 500).
			n := "brand/" + strings.Repeat("a", 300) + ".png"
			if _, err := c.Watermark(t.Context(), n); !errors.Is(err, imageproc.ErrBadWatermark) || errors.Is(err, storage.ErrUnavailable) {
				t.Errorf("a segment of 300 bytes: %v; want ErrBadWatermark only", err)
			}
		})
	}
}

// In the local directory, a plain file copied under the prefix is enough:
// the store's own metadata file is not needed, and a copy over it is seen.
func TestPlainFileInDir(t *testing.T) {
	root := t.TempDir()
	d, err := storage.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	c, clk := newCache(t, Config{}, d)
	if err := os.MkdirAll(filepath.Join(root, "watermarks", "brand"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "watermarks", "brand", "logo.png")
	if err := os.WriteFile(file, []byte("copied by hand"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := c.Watermark(t.Context(), "brand/logo.png"); err != nil || string(b) != "copied by hand" {
		t.Fatalf("%q, %v", b, err)
	}
	if err := os.WriteFile(file, []byte("copied again, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.add(refreshAfter + time.Second)
	if b, err := c.Watermark(t.Context(), "brand/logo.png"); err != nil || string(b) != "copied again, longer" {
		t.Fatalf("after a copy over it: %q, %v", b, err)
	}
}

// failing is a store that cannot be reached once down is set.
type failing struct {
	Store
	down atomic.Bool
}

func (f *failing) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	if f.down.Load() {
		return nil, storage.Object{}, fmt.Errorf("get %q: %w", key, storage.ErrUnavailable)
	}
	return f.Store.Get(ctx, key, o)
}

func (f *failing) Head(ctx context.Context, key string) (storage.Object, error) {
	if f.down.Load() {
		return storage.Object{}, fmt.Errorf("head %q: %w", key, storage.ErrUnavailable)
	}
	return f.Store.Head(ctx, key)
}

// A store that cannot be reached is the store's error, to be retried, not
// a bad option; a watermark held is used on meanwhile.
func TestStoreDown(t *testing.T) {
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, "watermarks/held.png", []byte("held"))
	put(t, d, "watermarks/other.png", []byte("other"))
	f := &failing{Store: d}
	c, clk := newCache(t, Config{}, f)
	if _, err := c.Watermark(t.Context(), "held.png"); err != nil {
		t.Fatal(err)
	}
	f.down.Store(true)
	clk.add(refreshAfter + time.Second)
	if b, err := c.Watermark(t.Context(), "held.png"); err != nil || string(b) != "held" {
		t.Errorf("held, store down: %q, %v", b, err)
	}
	_, err = c.Watermark(t.Context(), "other.png")
	if !errors.Is(err, storage.ErrUnavailable) || errors.Is(err, imageproc.ErrBadOption) {
		t.Errorf("not held, store down: %v, want ErrUnavailable", err)
	}
}

// slow is a store whose reads wait for release.
type slow struct {
	Store
	release chan struct{}
}

func (s slow) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	<-s.release
	return s.Store.Get(ctx, key, o)
}

// A request that gives up does not cancel the read it started: the next
// request finds the watermark held.
func TestReadOutlivesItsRequest(t *testing.T) {
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, "watermarks/logo.png", []byte("logo"))
	s := slow{Store: d, release: make(chan struct{})}
	cs := &counting{Store: s}
	c, _ := newCache(t, Config{}, cs)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Watermark(ctx, "logo.png"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled request: %v", err)
	}
	close(s.release)
	deadline := time.Now().Add(5 * time.Second)
	for n, _ := c.usage(); n == 0; n, _ = c.usage() {
		if time.Now().After(deadline) {
			t.Fatal("the read did not finish")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if b, err := c.Watermark(t.Context(), "logo.png"); err != nil || string(b) != "logo" || cs.gets.Load() != 1 {
		t.Fatalf("%q, %v, %d reads", b, err, cs.gets.Load())
	}
}

func TestValidate(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		apart  []string
		ok     bool
	}{
		{"watermarks/", []string{"uploads/", "resized/"}, true},
		{"watermarks/", []string{"uploads/", "resized/", "rejected/"}, true},
		{"", []string{"uploads/"}, false},
		{"watermarks/", []string{""}, false}, // the whole bucket is originals
		{"uploads/watermarks/", []string{"uploads/"}, false},
		{"w", []string{"watermarks/"}, false},
		{"resized/wm/", []string{"uploads/", "resized/"}, false},
		{"wm/", []string{"uploads/", "wm/rejected/"}, false},
	} {
		err := Config{Prefix: tt.prefix, Apart: tt.apart}.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrOverlap)) {
			t.Errorf("%q apart from %q: %v", tt.prefix, tt.apart, err)
		}
	}
	if _, err := New(Config{Prefix: "w/", MaxBytes: 10, CacheBytes: 5}, nil); err == nil {
		t.Error("a cache smaller than one watermark was accepted")
	}
}

// stalled is a store whose checks (HEAD) wait for release, or for the
// end of their context.
type stalled struct {
	Store
	release chan struct{}
}

func (s stalled) Head(ctx context.Context, key string) (storage.Object, error) {
	select {
	case <-s.release:
	case <-ctx.Done():
		return storage.Object{}, fmt.Errorf("head %q: %w: %v", key, storage.ErrUnavailable, ctx.Err())
	}
	return s.Store.Head(ctx, key)
}

// A store that does not answer the minute's check holds no request for
// longer than the cache waits for it: each uses the watermark held (the
// store failing would give the same), and once the store answers, the
// replacement it reports is used.
func TestSlowCheckUsesHeld(t *testing.T) {
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, "watermarks/logo.png", []byte("logo v1"))
	s := stalled{Store: d, release: make(chan struct{})}
	c, clk := newCache(t, Config{}, s)
	c.wait = 50 * time.Millisecond
	if _, err := c.Watermark(t.Context(), "logo.png"); err != nil {
		t.Fatal(err)
	}
	put(t, d, "watermarks/logo.png", []byte("logo v2"))
	clk.add(refreshAfter + time.Second)
	for i := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		start := time.Now()
		b, err := c.Watermark(ctx, "logo.png")
		cancel()
		if took := time.Since(start); err != nil || string(b) != "logo v1" || took > 2*time.Second {
			t.Fatalf("request %d, the check stalled: %q, %v after %s; want the one held at once", i, b, err, took)
		}
	}
	close(s.release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := c.Watermark(t.Context(), "logo.png")
		if err == nil && string(b) == "logo v2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store answered, still %q, %v", b, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
