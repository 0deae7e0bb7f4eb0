package storage

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// One server per directory: a second one is refused, and names the
// process that holds it, until the first lets it go; a directory opened
// to read only takes no lock; the lock's file is no object.
func TestDirLockServer(t *testing.T) {
	dir := t.TempDir()
	first, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.LockServer(); err != nil {
		t.Fatal(err)
	}
	second, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	err = second.LockServer()
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("a second server: %v, want ErrConflict naming process %d", err, os.Getpid())
	}
	if objs, err := second.List(t.Context(), "", 0); err != nil || len(objs) != 0 {
		t.Errorf("the lock listed: %v %v", objKeys(objs), err)
	}
	ro, err := OpenDirReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.LockServer(); !errors.Is(err, ErrUnsupported) {
		t.Errorf("read only: %v, want ErrUnsupported", err)
	}
	ro.Close()
	first.Close()
	if err := second.LockServer(); err != nil {
		t.Fatalf("once the first is closed: %v", err)
	}
}
