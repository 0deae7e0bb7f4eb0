package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"

	"github.com/resizer/resizer/internal/disktest"
)

// A full DATA_DIR makes uploads 503 with Retry-After and /readyz say that
// storage is not ready; a signed upload URL refused then still works
// once there is space again.
func TestRunFullDisk(t *testing.T) {
	mnt := disktest.Tmpfs(t, "1m")
	s := start(t, map[string]string{"DATA_DIR": filepath.Join(mnt, "data")})
	img := imagetest.Photo(t)
	_, body := send(t, "POST", s.url+"/uploads/presign", "application/json",
		[]byte(fmt.Sprintf(`{"content_type":"image/jpeg","size":%d}`, len(img))))
	var p struct{ URL string }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("presign: %v %s", err, body)
	}

	disktest.Fill(t, filepath.Join(mnt, "filler"))
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

// Reconcile on a full DATA_DIR stops once refusalsToStop originals in a
// row have failed for want of space, naming the cause, rather than fail
// every original of the store in turn; run again with space, it finishes.
func TestReconcileFullDiskStops(t *testing.T) {
	mnt := disktest.Tmpfs(t, "8m")
	env := map[string]string{"DATA_DIR": filepath.Join(mnt, "data"), "LOG_LEVEL": "error", "VARIANTS": "small:100x0"}
	const originals = 3 * refusalsToStop
	keys := make([]string, originals)
	for i := range keys {
		keys[i] = fmt.Sprintf("uploads/%03d.jpg", i)
	}
	putOriginals(t, env["DATA_DIR"], small, keys...)
	disktest.Fill(t, filepath.Join(mnt, "filler"))
	out, err := reconcileRun(t.Context(), env, "--concurrency", "2")
	if err == nil || !strings.Contains(err.Error(), "in a row failed as the store refused them") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("reconcile on a full disk: %v\n%s", err, out)
	}
	if n := strings.Count(out, "failed: \""); n < refusalsToStop || n >= originals {
		t.Errorf("%d of %d originals failed before the run stopped, want from %d, and not all\n%s", n, originals, refusalsToStop, out)
	}
	if err := os.Remove(filepath.Join(mnt, "filler")); err != nil {
		t.Fatal(err)
	}
	if out, err := reconcileRun(t.Context(), env); err != nil || processed(t, out) != originals {
		t.Errorf("run again with space: %v\n%s", err, out)
	}
}
