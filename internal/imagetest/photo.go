package imagetest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Photo is testdata/ladybird.jpg: a real camera JPEG, 2560x1600.
func Photo(t testing.TB) []byte {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("imagetest: no source path to find testdata by")
	}
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "testdata", "ladybird.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
