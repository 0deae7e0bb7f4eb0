package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snapshot is every file and folder under dir, hidden ones included:
// its path, mode, size, modification time and a hash of its bytes.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := e.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		desc := fmt.Sprintf("%v %d %d", st.Mode(), st.Size(), st.ModTime().UnixNano())
		if st.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// A dry run changes nothing in DATA_DIR, not one byte, whatever state it
// is in: originals copied in by hand (no store files yet), a directory
// the server has used (with a temporary file an hour old, which the
// server's start sweeps), and the variants changed since its last run.
// A DATA_DIR that does not exist is an error, and is not made, dry run
// or not: a reconcile run from another folder would otherwise make a
// ./data of its own and report it in line, with 0 originals.
func TestReconcileDryRunWritesNothing(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "data")
	for i, k := range []string{"uploads/a.jpg", "uploads/b/c.jpg", "uploads/empty.jpg"} {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := small(t, i)
		if strings.HasPrefix(filepath.Base(k), "empty") {
			b = nil
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATA_DIR": dir, "LOG_LEVEL": "error", "VARIANTS": "thumb:32x32:cover,small:100x0"}
	dryRun := func(stage string) {
		t.Helper()
		before := snapshot(t, dir)
		out, err := reconcileRun(ctx, env, "--dry-run", "--json")
		if err != nil {
			t.Fatalf("%s: dry run: %v\n%s", stage, err, out)
		}
		after := snapshot(t, dir)
		for p, d := range after {
			if before[p] != d {
				t.Errorf("%s: the dry run changed %s: %q, was %q", stage, p, d, before[p])
			}
		}
		for p := range before {
			if _, ok := after[p]; !ok {
				t.Errorf("%s: the dry run removed %s", stage, p)
			}
		}
	}
	dryRun("originals copied in")
	if out, err := reconcileRun(ctx, env); err != nil || !strings.Contains(out, "2 processed") {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
	old := filepath.Join(dir, ".tmp", "left-by-a-crash")
	if err := os.WriteFile(old, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	dryRun("after a run")
	env["VARIANTS"] = "thumb:40x40:cover,large:200x0"
	dryRun("variants changed")

	for _, args := range [][]string{{"--dry-run"}, {}} {
		missing := filepath.Join(t.TempDir(), "nowhere")
		env["DATA_DIR"] = missing
		out, err := reconcileRun(ctx, env, args...)
		if err == nil || !strings.Contains(err.Error(), "DATA_DIR") {
			t.Errorf("%v on a DATA_DIR that does not exist: %v\n%s", args, err, out)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Errorf("%v made the DATA_DIR that did not exist: %v", args, err)
		}
	}
}
