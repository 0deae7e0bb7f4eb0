package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A crash between a Put's two renames leaves the new object beside the
// metadata of the version it replaced. Those are not taken for the new
// object's, even when the two versions have the same size and time: Linux
// stamps files from a clock of a few milliseconds (kernels before 6.13,
// those of Debian 12 and of Fargate, give both of two writes a tick apart
// the same time), and two manifests of one key that differ in an ETag
// alone are written so in a burst of uploads.
func TestDirCrashBetweenRenames(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	const key = "m/a.json"
	first, err := d.Put(ctx, key, []byte("version-1"), PutOptions{ContentType: "application/json",
		Metadata: map[string]string{"source-etag": "one"}})
	if err != nil {
		t.Fatal(err)
	}
	// What Put does up to the crash: the new version written aside, then
	// renamed over the object; its metadata never follow.
	tmp, _, err := d.writeTemp([]byte("version-2"), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.rename(tmp, key); err != nil {
		t.Fatal(err)
	}
	// Both written within one tick of a coarse clock.
	if err := os.Chtimes(filepath.Join(d.dir, key), first.LastModified, first.LastModified); err != nil {
		t.Fatal(err)
	}
	want := dirETag([]byte("version-2"))
	h, err := d.Head(ctx, key)
	if err != nil || h.ETag != want || h.Metadata["source-etag"] != "" || h.ContentType != "" {
		t.Fatalf("head gives %+v, %v; want ETag %s and no metadata, not the replaced version's", h, err, want)
	}
	if b, obj, err := d.Get(ctx, key, GetOptions{IfMatch: first.ETag}); err == nil {
		t.Fatalf("read %q on the replaced version's ETag: %+v", b, obj)
	}
	if _, obj, err := d.Get(ctx, key, GetOptions{}); err != nil || obj.ETag != want || obj.Metadata != nil {
		t.Fatalf("get gives %+v, %v; want ETag %s and no metadata", obj, err, want)
	}
	if _, err := d.Put(ctx, key, []byte("version-3"), PutOptions{IfMatch: first.ETag}); err == nil {
		t.Fatal("a write on the replaced version's ETag succeeded")
	}
}

// A directory copied or restored elsewhere keeps its objects' metadata:
// each file is a new one (another inode), and an archive may keep its
// time to the second only (GNU tar's default format), but its bytes are
// those the metadata describe.
func TestDirMetadataSurviveACopy(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	const key = "uploads/a.jpg"
	put, err := d.Put(ctx, key, []byte("pretend jpeg"), PutOptions{ContentType: "image/jpeg",
		Metadata: map[string]string{"focus": "0.3,0.25"}})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(d.dir, key)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	// Restored: a new file, its time cut to the second.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	restored := put.LastModified.Truncate(time.Second)
	if err := os.Chtimes(p, restored, restored); err != nil {
		t.Fatal(err)
	}
	h, err := d.Head(ctx, key)
	if err != nil || h.ETag != put.ETag || h.ContentType != "image/jpeg" || h.Metadata["focus"] != "0.3,0.25" {
		t.Errorf("head after a restore: %+v, %v; want the metadata put", h, err)
	}
	if _, obj, err := d.Get(ctx, key, GetOptions{}); err != nil || obj.ContentType != "image/jpeg" || obj.Metadata["focus"] != "0.3,0.25" {
		t.Errorf("get after a restore: %+v, %v; want the metadata put", obj, err)
	}
	// Other bytes of the same size, at the same time: not its metadata.
	if err := os.WriteFile(p, []byte("another jpg!"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, restored, restored); err != nil {
		t.Fatal(err)
	}
	if h, err := d.Head(ctx, key); err != nil || h.ETag == put.ETag || h.Metadata != nil {
		t.Errorf("head of other bytes: %+v, %v; want no metadata", h, err)
	}
}

// Folders without a file in them, which a crash leaves between the
// removal of a folder's last key and the removal of the folder (or
// between a write's making of its folders and its rename), keep no key
// from being written, as in S3 no key is there; a folder that holds a
// key still does.
func TestDirEmptyFoldersLeftByACrash(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	for _, p := range []string{"a", "b/c/d", ".meta/e.json/f"} {
		if err := os.MkdirAll(filepath.Join(d.dir, filepath.FromSlash(p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "e"} {
		if _, err := d.Put(ctx, k, []byte("x"), PutOptions{}); err != nil {
			t.Errorf("put %s over empty folders: %v", k, err)
		}
		if b, _, err := d.Get(ctx, k, GetOptions{}); err != nil || string(b) != "x" {
			t.Errorf("get %s: %q, %v", k, b, err)
		}
	}
	if _, err := d.Put(ctx, "g/h.jpg", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "g", []byte("x"), PutOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("put over a folder with a key: %v, want ErrConflict", err)
	}
	assertWhole(t, d)
}

// A crash between a deletion's removal of an object and of its metadata
// leaves the metadata alone, which keep no key from being written: the
// keys beneath their name ("a.json/b", whose metadata need .meta/a.json as
// a folder) are stored, as in S3, where nothing is at "a".
func TestDirMetadataLeftByACrash(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	if _, err := d.Put(ctx, "a", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// What Delete does up to the crash: the object removed, not its
	// metadata.
	if err := os.Remove(filepath.Join(d.dir, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "a.json/b", []byte("y"), PutOptions{}); err != nil {
		t.Fatalf("put a.json/b beside the metadata of a deleted a: %v", err)
	}
	if b, _, err := d.Get(ctx, "a.json/b", GetOptions{}); err != nil || string(b) != "y" {
		t.Fatalf("get a.json/b: %q, %v", b, err)
	}
	// Metadata whose object stands still keep such keys out.
	if _, err := d.Put(ctx, "c", []byte("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "c.json/d", []byte("y"), PutOptions{}); !errors.Is(err, ErrConflict) {
		t.Errorf("put c.json/d beside c: %v, want ErrConflict", err)
	}
	assertWhole(t, d)
}
