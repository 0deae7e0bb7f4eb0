package storage

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// asNobody runs f on a thread whose file system user is nobody (65534),
// so that file permissions hold for it even when the test runs as root
// (which leaves the capabilities that override them when its file system
// user is not root). The thread is not given back: it ends with f.
func asNobody(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		syscall.RawSyscall(syscall.SYS_SETFSUID, 65534, 0, 0)
		if fsuid, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, ^uintptr(0), 0, 0); fsuid != 65534 {
			t.Errorf("file system user %d, want 65534", fsuid)
			return
		}
		f()
	}()
	<-done
}

// A file the server may not read (an original copied in by root with mode
// 0600, a folder of mode 0700) is not a missing object: reading it fails
// with ErrAccessDenied (a 500 and an error in the log, not a 404, and for
// the pipeline not an original gone, whose outputs are removed), and a
// listing that holds it fails rather than leave it out.
func TestDirUnreadableIsNotMissing(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	for _, k := range []string{"uploads/secret.jpg", "locked/in.jpg", "uploads/open.jpg"} {
		if _, err := d.Put(ctx, k, []byte("pretend jpeg"), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for p, mode := range map[string]os.FileMode{"": 0o755, "uploads/secret.jpg": 0o600, "locked": 0o700} {
		if err := os.Chmod(filepath.Join(d.dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	asNobody(t, func() {
		if _, _, err := d.Get(ctx, "uploads/open.jpg", GetOptions{}); err != nil {
			t.Errorf("a readable object: %v", err)
		}
		for _, k := range []string{"uploads/secret.jpg", "locked/in.jpg"} {
			if _, _, err := d.Get(ctx, k, GetOptions{}); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("get %s: %v, want ErrAccessDenied", k, err)
			}
			if _, err := d.Head(ctx, k); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("head %s: %v, want ErrAccessDenied", k, err)
			}
		}
		for _, prefix := range []string{"uploads/", "locked/"} {
			if objs, err := d.List(ctx, prefix, 0); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("list %s: %s, %v; want ErrAccessDenied", prefix, objKeys(objs), err)
			}
		}
		if _, err := d.Put(ctx, "locked/new.jpg", []byte("x"), PutOptions{}); !errors.Is(err, ErrAccessDenied) {
			t.Errorf("put into a folder it may not write: %v, want ErrAccessDenied", err)
		}
	})
}
