package storage

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A directory opened to read only is read as NewDir's would be, and
// every way of changing it is refused, before anything is changed: no
// file of the store's own is made, no key written or deleted, and no
// upload signed or taken (it has no signing key to check one with).
func TestDirReadOnly(t *testing.T) {
	ctx := t.Context()
	if _, err := OpenDirReadOnly(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a directory that does not exist opened")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uploads", "a.jpg"), []byte("abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDirReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if objs, err := d.List(ctx, "uploads/", 0); err != nil || len(objs) != 1 || objs[0].ETag != dirETag([]byte("abc")) {
		t.Fatalf("list: %+v, %v", objs, err)
	}
	if b, _, err := d.Get(ctx, "uploads/a.jpg", GetOptions{}); err != nil || string(b) != "abc" {
		t.Fatalf("get: %q, %v", b, err)
	}
	if f, err := d.Folders(ctx, ""); err != nil || len(f) != 1 || f[0] != "uploads/" {
		t.Fatalf("folders: %v, %v", f, err)
	}
	exp := time.Now().Add(time.Hour)
	q := url.Values{"expires": {"9999999999"}, "size": {"3"}, "type": {"image/jpeg"}, "sig": {"00"}}
	refusals := map[string]error{
		"put":     func() error { _, err := d.Put(ctx, "uploads/b.jpg", []byte("x"), PutOptions{}); return err }(),
		"delete":  d.Delete(ctx, "uploads/a.jpg"),
		"check":   d.Check(ctx),
		"sign":    func() error { _, err := d.SignUpload("uploads/c.jpg", "image/jpeg", 3, nil, exp); return err }(),
		"verify":  d.VerifyUpload("uploads/c.jpg", q, "image/jpeg", 3, time.Now()),
		"claim":   func() error { _, err := d.ClaimUpload("uploads/c.jpg", q, "image/jpeg", 3, time.Now()); return err }(),
		"note":    func() error { _, err := d.BeginUpload("uploads/c.jpg", []byte("x")); return err }(),
		"url key": func() error { _, err := d.URLSigningKey(); return err }(),
	}
	for what, err := range refusals {
		if !errors.Is(err, ErrUnsupported) {
			t.Errorf("%s: %v, want ErrUnsupported", what, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || ents[0].Name() != "uploads" {
		t.Errorf("the directory holds %v (%v), want uploads alone", ents, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "uploads", "a.jpg")); err != nil || string(b) != "abc" {
		t.Errorf("the original: %q, %v", b, err)
	}
}
