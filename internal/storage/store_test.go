package storage

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/resizer/resizer/internal/s3test"
)

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

// store is what both implementations offer; the suite runs on each.
type store interface {
	Put(ctx context.Context, key string, data []byte, o PutOptions) (Object, error)
	Get(ctx context.Context, key string, o GetOptions) ([]byte, Object, error)
	Head(ctx context.Context, key string) (Object, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, limit int) ([]Object, error)
	Folders(ctx context.Context, prefix string) ([]string, error)
	Check(ctx context.Context) error
}

func newS3(t *testing.T) *S3 {
	t.Helper()
	srv := s3test.Start(t)
	s, err := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newDir(t *testing.T) *Dir {
	t.Helper()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func stores(t *testing.T) map[string]store {
	return map[string]store{"dir": newDir(t), "s3": newS3(t)}
}

func TestStores(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			data := []byte("\xFF\xD8\xFFpretend jpeg")
			put, err := s.Put(ctx, "uploads/a/b c+d.jpg", data, PutOptions{
				ContentType: "image/jpeg", CacheControl: "public, max-age=60",
				Metadata: map[string]string{"Source-ETag": `"abc"`, "variant": "thumb"},
			})
			if err != nil {
				t.Fatal(err)
			}
			if put.ETag == "" || put.Size != int64(len(data)) {
				t.Fatalf("put returned %+v", put)
			}
			head, err := s.Head(ctx, "uploads/a/b c+d.jpg")
			if err != nil {
				t.Fatal(err)
			}
			if head.ETag != put.ETag || head.Size != int64(len(data)) || head.ContentType != "image/jpeg" ||
				head.CacheControl != "public, max-age=60" || head.Metadata["source-etag"] != `"abc"` || head.Metadata["variant"] != "thumb" {
				t.Fatalf("head %+v", head)
			}
			got, obj, err := s.Get(ctx, "uploads/a/b c+d.jpg", GetOptions{IfMatch: put.ETag, MaxBytes: 100})
			if err != nil || !bytes.Equal(got, data) || obj.ETag != put.ETag || obj.Metadata["variant"] != "thumb" {
				t.Fatalf("get: %q %+v %v", got, obj, err)
			}
			// Read into a buffer that held something longer: the bytes are
			// the object's alone, in the buffer's own memory.
			into := bytes.NewBufferString(strings.Repeat("stale ", 100))
			got, _, err = s.Get(ctx, "uploads/a/b c+d.jpg", GetOptions{Into: into})
			if err != nil || !bytes.Equal(got, data) || cap(got) == 0 || &got[:cap(got)][cap(got)-1] != &into.Bytes()[:into.Cap()][into.Cap()-1] {
				t.Fatalf("get into a buffer: %q %v", got, err)
			}
			if _, _, err := s.Get(ctx, "uploads/a/b c+d.jpg", GetOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("get with a stale ETag: err = %v, want ErrPreconditionFailed", err)
			}
			if _, _, err := s.Get(ctx, "uploads/a/b c+d.jpg", GetOptions{MaxBytes: 5}); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("get over MaxBytes: err = %v, want ErrTooLarge", err)
			}
			for _, f := range []func() error{
				func() error { _, err := s.Head(ctx, "uploads/missing.jpg"); return err },
				func() error { _, _, err := s.Get(ctx, "uploads/missing.jpg", GetOptions{}); return err },
			} {
				if err := f(); !errors.Is(err, ErrNotFound) {
					t.Fatalf("missing object: err = %v, want ErrNotFound", err)
				}
			}
			// A second put replaces the object and its ETag.
			put2, err := s.Put(ctx, "uploads/a/b c+d.jpg", []byte("other"), PutOptions{ContentType: "image/png"})
			if err != nil || put2.ETag == put.ETag {
				t.Fatalf("overwrite: %+v %v", put2, err)
			}
			if h, _ := s.Head(ctx, "uploads/a/b c+d.jpg"); h.ContentType != "image/png" || len(h.Metadata) != 0 {
				t.Fatalf("after overwrite head %+v", h)
			}
			for _, k := range []string{"uploads/a/x.png", "uploads/b.png", "resized/thumb/b.png"} {
				if _, err := s.Put(ctx, k, []byte("x"), PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Put(ctx, "uploads/a-b/c/d.png", []byte("x"), PutOptions{}); err != nil {
				t.Fatal(err)
			}
			for prefix, want := range map[string]string{
				"uploads/": "uploads/a-b/,uploads/a/", "": "resized/,uploads/", "uploads/a-b/": "uploads/a-b/c/",
				"uploads/a/": "", "uploads/b.png/": "", "missing/": "",
				// A prefix that ends inside a name, as OUTPUT_PREFIX
				// may ("resized-"): its folders are those of the keys
				// that start with it.
				"upl": "uploads/", "uploads/a": "uploads/a-b/,uploads/a/", "uploads/a-": "uploads/a-b/", "uploads/b": "",
			} {
				folders, err := s.Folders(ctx, prefix)
				if got := strings.Join(folders, ","); err != nil || got != want {
					t.Errorf("folders of %q: %s %v, want %s", prefix, got, err, want)
				}
			}
			if err := s.Delete(ctx, "uploads/a-b/c/d.png"); err != nil {
				t.Fatal(err)
			}
			list, err := s.List(ctx, "uploads/a/", 0)
			if err != nil {
				t.Fatal(err)
			}
			if keys := objKeys(list); keys != "uploads/a/b c+d.jpg,uploads/a/x.png" {
				t.Fatalf("list uploads/a/ = %s", keys)
			}
			if list, _ := s.List(ctx, "uploads/", 2); len(list) != 2 {
				t.Fatalf("list with limit 2 gave %d", len(list))
			}
			if list, _ := s.List(ctx, "upl", 0); objKeys(list) != "uploads/a/b c+d.jpg,uploads/a/x.png,uploads/b.png" {
				t.Fatalf("list by partial prefix = %s", objKeys(list))
			}
			if err := s.Delete(ctx, "uploads/a/x.png"); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "uploads/a/x.png"); err != nil {
				t.Fatalf("deleting a missing object: %v", err)
			}
			if _, err := s.Head(ctx, "uploads/a/x.png"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("after delete: %v", err)
			}
			for _, bad := range []string{"", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", ".meta/x", "a/.hidden", "a\\b", "a\x00b", "a\nb", strings.Repeat("k", 1025)} {
				if _, err := s.Put(ctx, bad, []byte("x"), PutOptions{}); !errors.Is(err, ErrInvalidKey) {
					t.Errorf("put %q: err = %v, want ErrInvalidKey", bad, err)
				}
			}
			if err := s.Check(ctx); err != nil {
				t.Fatalf("check: %v", err)
			}
		})
	}
}

func objKeys(objs []Object) string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, o.Key)
	}
	return strings.Join(ks, ",")
}

func TestValidateKey(t *testing.T) {
	for _, ok := range []string{"a", "uploads/2026/11/x.jpg", "with space/ümlaut+plus.png", "a.b/c..d"} {
		if err := ValidateKey(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/a", "a/", "../a", "a/..", "..", ".", "a/./b", ".git/config", "a\\..\\b", "a\tb", "a\x7fb", "\xff"} {
		if err := ValidateKey(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Conditional writes: IfAbsent writes only a new key, IfMatch only over
// the version looked at; of many writers that looked at a key at once and
// found it free, exactly one writes it.
func TestConditionalPut(t *testing.T) {
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			const key = "resized/thumb/a.jpg"
			first, err := s.Put(ctx, key, []byte("one"), PutOptions{IfAbsent: true})
			if err != nil {
				t.Fatalf("a new key, if absent: %v", err)
			}
			if _, err := s.Put(ctx, key, []byte("two"), PutOptions{IfAbsent: true}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("a taken key, if absent: %v, want a failed precondition", err)
			}
			if _, err := s.Put(ctx, key, []byte("two"), PutOptions{IfMatch: `"0123456789abcdef0123456789abcdef"`}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("another ETag: %v, want a failed precondition", err)
			}
			if _, err := s.Put(ctx, "resized/thumb/none.jpg", []byte("two"), PutOptions{IfMatch: first.ETag}); !errors.Is(err, ErrPreconditionFailed) {
				t.Fatalf("no object, if match: %v, want a failed precondition", err)
			}
			if b, _, err := s.Get(ctx, key, GetOptions{}); err != nil || string(b) != "one" {
				t.Fatalf("after refused writes: %q %v", b, err)
			}
			second, err := s.Put(ctx, key, []byte("two"), PutOptions{IfMatch: first.ETag})
			if err != nil {
				t.Fatalf("the ETag looked at: %v", err)
			}
			if b, _, err := s.Get(ctx, key, GetOptions{}); err != nil || string(b) != "two" || second.ETag == first.ETag {
				t.Fatalf("written over: %q %v", b, err)
			}

			// Eight writers, one free key, at once.
			var wins atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := s.Put(ctx, "resized/race.jpg", []byte{byte(i)}, PutOptions{IfAbsent: true})
					switch {
					case err == nil:
						wins.Add(1)
					case !errors.Is(err, ErrPreconditionFailed):
						t.Errorf("writer %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d writers wrote the free key, want 1", wins.Load())
			}
		})
	}
}
