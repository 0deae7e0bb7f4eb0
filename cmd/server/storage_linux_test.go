package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// A full DATA_DIR makes uploads 503 with Retry-After and /readyz say that
// storage is not ready; a signed upload URL refused then still works
// once there is space again.
func TestRunFullDisk(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	s := start(t, map[string]string{"DATA_DIR": filepath.Join(mnt, "data")})
	img := photo(t)
	_, body := send(t, "POST", s.url+"/uploads/presign", "application/json",
		[]byte(fmt.Sprintf(`{"content_type":"image/jpeg","size":%d}`, len(img))))
	var p struct{ URL string }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("presign: %v %s", err, body)
	}

	fill(t, filepath.Join(mnt, "filler"))
	resp, body := send(t, "POST", s.url+"/uploads", "image/jpeg", img)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "storage-unavailable") {
		t.Errorf("upload to a full disk: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if resp, body := send(t, "PUT", p.URL, "image/jpeg", img); resp.StatusCode != 503 {
		t.Errorf("signed upload to a full disk: %d %s", resp.StatusCode, body)
	}
	resp, body = send(t, "GET", s.url+"/readyz", "", nil)
	var ready struct {
		Status string
		Checks map[string]string
	}
	_ = json.Unmarshal(body, &ready)
	if resp.StatusCode != 503 || ready.Status != "not ready" || !strings.Contains(ready.Checks["storage"], "no space") {
		t.Errorf("readyz on a full disk: %d %s", resp.StatusCode, body)
	}

	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	if resp, body := send(t, "GET", s.url+"/readyz", "", nil); resp.StatusCode != 200 {
		t.Errorf("readyz with space again: %d %s", resp.StatusCode, body)
	}
	if resp, body := send(t, "PUT", p.URL, "image/jpeg", img); resp.StatusCode != 201 {
		t.Errorf("the signed upload retried: %d %s", resp.StatusCode, body)
	}
}
