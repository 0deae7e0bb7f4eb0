package storage

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of the given size on a new directory, for as
// long as the test runs, so that a full disk is real. It skips the test
// only where mounting is not permitted (not root, no CAP_SYS_ADMIN); CI
// runs as root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("mounting a tmpfs is not permitted here (%v); run as root to test a full disk", err)
		}
		t.Fatal(err)
	}
	// Detached: the store keeps its directory open until the process ends.
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes name until the filesystem is full.
func fill(t *testing.T, name string) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, 4096)
	for {
		if _, err := f.Write(page); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// A full disk is ErrUnavailable, for writes and for the readiness check,
// and a write that fails for want of space leaves nothing behind: not an
// object without its metadata, not a temporary file.
func TestDirFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "256k")
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
	fill(t, filepath.Join(mnt, "filler"))
	if err := d.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("check on a full disk: %v, want ErrUnavailable", err)
	}
	if err := os.Remove(filepath.Join(mnt, "spare")); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"uploads/b.jpg", "uploads/new/c.jpg"} {
		if _, err := d.Put(ctx, k, make([]byte, 8192), PutOptions{ContentType: "image/jpeg"}); !errors.Is(err, ErrUnavailable) {
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
