package storage

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// An upload's note outlives the Dir that wrote it (a crash), is read back
// by the next one, and is gone once ended; a note that is not a key (torn
// by a crash, or planted) is dropped, never returned; notes are no keys.
func TestDirUploadNotes(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := d.BeginUpload("uploads/a.jpg", []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.BeginUpload("uploads/a.jpg", nil) // a second upload of the key
	if err != nil || a == b {
		t.Fatalf("second note %q, %v", b, err)
	}
	if _, err := d.BeginUpload("../x", nil); err == nil {
		t.Error("a note of a key no store takes")
	}
	objs, err := d.List(t.Context(), "", 0)
	if err != nil || len(objs) != 0 {
		t.Fatalf("notes listed as objects: %v %v", objs, err)
	}
	d.Close()

	os.WriteFile(filepath.Join(dir, pendingDir, "torn"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, pendingDir, "planted"), []byte("../../etc/passwd"), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(dir, pendingDir, "link"))
	os.WriteFile(filepath.Join(dir, pendingDir, "old"), []byte("uploads/old.jpg"), 0o644) // an older server's: the key alone
	os.WriteFile(filepath.Join(dir, pendingDir, "badtag"), []byte("uploads/b.jpg\nnot an etag"), 0o644)
	d, err = NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	notes, err := d.PendingUploads()
	if err != nil || len(notes) != 3 || notes[a] != (PendingUpload{"uploads/a.jpg", `"f97c5d29941bfb1b2fdab0874906ab82"`}) ||
		notes[b] != (PendingUpload{"uploads/a.jpg", `"d41d8cd98f00b204e9800998ecf8427e"`}) || notes["old"] != (PendingUpload{Key: "uploads/old.jpg"}) {
		t.Fatalf("notes %v, %v", notes, err)
	}
	if err := d.EndUpload("old"); err != nil {
		t.Fatal(err)
	}
	if err := d.EndUpload(a); err != nil {
		t.Fatal(err)
	}
	if err := d.EndUpload(a); err != nil {
		t.Errorf("ending a note twice: %v", err)
	}
	if notes, err = d.PendingUploads(); err != nil || len(notes) != 1 || notes[b].Key == "" {
		t.Fatalf("after one ended: %v, %v", notes, err)
	}
	for _, name := range []string{"torn", "planted", "badtag"} {
		if _, err := os.Lstat(filepath.Join(dir, pendingDir, name)); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", name, err)
		}
	}
}

// A temporary file older than tempMaxAge (a write a crash cut short) is
// removed when the directory is opened; a younger one (another process's
// write under way) is left.
func TestDirSweepsOldTempFiles(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	old, young := filepath.Join(dir, tmpDir, "old"), filepath.Join(dir, tmpDir, "young")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	then := time.Now().Add(-tempMaxAge - time.Minute)
	os.Chtimes(old, then, then)
	if d, err = NewDir(dir); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old temporary file: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temporary file: %v", err)
	}
}
