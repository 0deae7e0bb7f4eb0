package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/resizer/resizer/internal/disktest"
)

// A full disk is ErrUnavailable, for writes and for the readiness check,
// and a write that fails for want of space leaves nothing behind: not an
// object without its metadata, not a temporary file.
func TestDirFullDisk(t *testing.T) {
	mnt := disktest.Tmpfs(t, "256k")
	d, err := NewDir(filepath.Join(mnt, "data"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := d.Put(ctx, "uploads/a.jpg", []byte("before"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// Two pages stay free once spare is gone: room for an object of two
	// pages, not for its metadata as well.
	if err := os.WriteFile(filepath.Join(mnt, "spare"), make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	disktest.Fill(t, filepath.Join(mnt, "filler"))
	if err := d.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("check on a full disk: %v, want ErrUnavailable", err)
	}
	if err := os.Remove(filepath.Join(mnt, "spare")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uploads/b.jpg", "uploads/new/c.jpg"} {
		if _, err := d.Put(ctx, k, make([]byte, 8192), PutOptions{ContentType: "image/jpeg"}); !errors.Is(err, ErrUnavailable) || !RefusesEveryWrite(err) {
			t.Errorf("put %s on a full disk: %v, want ErrUnavailable", k, err)
		}
		if _, err := d.Head(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("after a failed put, head %s: %v", k, err)
		}
	}
	assertWhole(t, d)
	if b, _, err := d.Get(ctx, "uploads/a.jpg", GetOptions{}); err != nil || string(b) != "before" {
		t.Errorf("the object from before: %q %v", b, err)
	}

	// Space again: writes and the check work again.
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctx); err != nil {
		t.Errorf("check with space: %v", err)
	}
	if _, err := d.Put(ctx, "uploads/b.jpg", make([]byte, 8192), PutOptions{}); err != nil {
		t.Errorf("put with space: %v", err)
	}
}
