package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/storage"
)

// --keep-retired keeps the outputs of a variant removed from VARIANTS,
// also of the originals whose run writes their manifest again, which
// prunes what the previous manifest lists; a run without it deletes them.
// With --enqueue the fleet's runs would prune them: the two are refused
// together.
func TestReconcileKeepRetired(t *testing.T) {
	ctx := t.Context()
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn", "VARIANTS": "thumb:32x32:cover,small:100x0,old:60x0"}
	keys := []string{"uploads/a.jpg", "uploads/b/c.jpg"}
	putOriginals(t, env["DATA_DIR"], small, keys...)
	if out, err := reconcileRun(ctx, env); err != nil || processed(t, out) != 2 {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	oldLeft := func() int {
		t.Helper()
		d, err := storage.OpenDirReadOnly(env["DATA_DIR"])
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		n := 0
		for _, k := range keys {
			switch _, err := d.Head(ctx, "resized/old/"+strings.TrimPrefix(k, "uploads/")); {
			case err == nil:
				n++
			case !errors.Is(err, storage.ErrNotFound):
				t.Fatal(err)
			}
		}
		return n
	}

	// old removed: each original needs its manifest alone; then a
	// definition changed too: each is made again.
	for _, variants := range []string{"thumb:32x32:cover,small:100x0", "thumb:32x32:cover,small:90x0"} {
		env["VARIANTS"] = variants
		out, err := reconcileRun(ctx, env, "--keep-retired", "--json")
		if err != nil || processed(t, out) != 2 || !strings.Contains(out, "0 retired variants deleted") || lastJSON(t, out)["delete"] != 0 {
			t.Fatalf("%s, keeping the retired: %v\n%s", variants, err, out)
		}
		if n := oldLeft(); n != 2 {
			t.Fatalf("%s: %d of 2 outputs of the retired variant kept with --keep-retired\n%s", variants, n, out)
		}
	}
	out, err := reconcileRun(ctx, env, "--json")
	if err != nil || !strings.Contains(out, "2 retired variants deleted") || lastJSON(t, out)["delete"] != 2 {
		t.Fatalf("without --keep-retired: %v\n%s", err, out)
	}
	if n := oldLeft(); n != 0 {
		t.Fatalf("%d outputs of the retired variant left without --keep-retired", n)
	}

	env["EVENT_QUEUE_URL"] = "http://127.0.0.1:1/queue"
	if out, err := reconcileRun(ctx, env, "--enqueue", "--keep-retired"); err == nil || !strings.Contains(err.Error(), "--keep-retired") {
		t.Fatalf("--enqueue --keep-retired: %v\n%s", err, out)
	}
}
