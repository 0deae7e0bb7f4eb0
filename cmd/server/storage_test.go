package main

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imagetest"
)

// send makes a request, reads its answer and checks it against
// openapi.yaml.
func send(t *testing.T, method, url, ctype string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return contract.Do(t, nil, req)
}

// Symbolic links in DATA_DIR lead no read and no upload outside it.
func TestRunKeepsToDataDir(t *testing.T) {
	parent := t.TempDir()
	data, outside := filepath.Join(parent, "data"), filepath.Join(parent, "outside")
	for _, d := range []string{filepath.Join(data, "uploads"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.jpg"), imagetest.Photo(t), 0o644); err != nil {
		t.Fatal(err)
	}
	for target, link := range map[string]string{
		filepath.Join(outside, "secret.jpg"): filepath.Join(data, "uploads", "link.jpg"),
		outside:                              filepath.Join(data, "uploads", "dir"),
	} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, map[string]string{"DATA_DIR": data})
	for _, p := range []string{"/objects/uploads%2Flink.jpg", "/objects/uploads%2Fdir%2Fsecret.jpg"} {
		if resp, body := send(t, "GET", s.url+p, "", nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}
	if resp, body := send(t, "POST", s.url+"/uploads?key=dir/new.jpg", "image/jpeg", imagetest.Photo(t)); resp.StatusCode != 400 {
		t.Errorf("upload through a link: %d %s", resp.StatusCode, body)
	}
	if _, err := os.Stat(filepath.Join(outside, "new.jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an upload was written outside DATA_DIR: %v", err)
	}
}
