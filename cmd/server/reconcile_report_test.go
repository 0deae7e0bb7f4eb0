package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

var (
	summaryLine = regexp.MustCompile(`done: (\d+) processed, \d+ enqueued, \d+ already current, \d+ superseded, (\d+) rejected, (\d+) failed`)
	namedLine   = regexp.MustCompile(`^(rejected|failed): ("(?:[^"\\]|\\.)*"): (.+)$`)
	recordLine  = regexp.MustCompile(`^(listed \d+ originals|plan \(|checked: |rejected: "|failed: "|progress: \d+/\d+|done: \d+ processed)`)
)

// Every original that a run does not make is named, with its reason, on
// a line of its own, whatever the log level: the summary's counts alone
// leave the operator to guess which of a million originals to look at.
// Originals put in the directory by hand (no metadata), some that can
// never be made (empty, not an image, over MAX_BODY_BYTES) and one whose
// outputs cannot be written (files where two variants' folders must be)
// beside good ones with plain and odd names: the good ones are made, each
// other one is named once with its reason, the counts agree, the exit
// status says whether any failed, and each line of the output is one
// record.
func TestReconcileNamesWhatItDoesNotMake(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	photo := small(t, 3)
	files := map[string][]byte{
		"uploads/a.jpg":                 photo,
		"uploads/sub/odd name+%20é.jpg": photo,
		"uploads/zero.jpg":              {},
		"uploads/text.jpg":              []byte("not an image\n"),
		"uploads/big.jpg":               imagetest.Photo(t),
		"uploads/blocked/x.jpg":         photo,
		"resized/thumb/blocked":         []byte("a file where a folder must be"),
		"resized/small/blocked":         []byte("another"),
	}
	for k, b := range files {
		p := filepath.Join(dir, filepath.FromSlash(k))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantRejected := map[string]bool{"uploads/zero.jpg": true, "uploads/text.jpg": true, "uploads/big.jpg": true}
	wantFailed := map[string]bool{"uploads/blocked/x.jpg": true}
	env := map[string]string{"DATA_DIR": dir, "LOG_LEVEL": "error", "VARIANTS": "thumb:32x32:cover,small:100x0",
		"MAX_BODY_BYTES": strconv.Itoa(len(photo) * 4)}
	if len(imagetest.Photo(t)) <= len(photo)*4 {
		t.Fatal("the large photo is not over MAX_BODY_BYTES")
	}
	for run := range 2 {
		out, err := reconcileRun(ctx, env, "--concurrency", "2", "--progress", "1ns")
		if err == nil {
			t.Errorf("run %d: exit status 0 with an original failed\n%s", run, out)
		}
		// One record a line, as a log collector reads them: an error of
		// several parts (two variants failing) stays on its line.
		for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
			if !recordLine.MatchString(line) {
				t.Errorf("run %d: a line that is no record of its own: %q", run, line)
			}
		}
		m := summaryLine.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("run %d: no summary\n%s", run, out)
		}
		named := map[string]map[string]bool{"rejected": {}, "failed": {}}
		for _, line := range strings.Split(out, "\n") {
			l := namedLine.FindStringSubmatch(line)
			if l == nil {
				continue
			}
			key, err := strconv.Unquote(l[2])
			if err != nil || named[l[1]][key] || strings.TrimSpace(l[3]) == "" {
				t.Errorf("run %d: line %q: named twice, or without a reason", run, line)
			}
			named[l[1]][key] = true
		}
		if fmt.Sprint(named["rejected"]) != fmt.Sprint(wantRejected) || fmt.Sprint(named["failed"]) != fmt.Sprint(wantFailed) {
			t.Errorf("run %d: named %v, want rejected %v and failed %v\n%s", run, named, wantRejected, wantFailed, out)
		}
		if m[2] != strconv.Itoa(len(named["rejected"])) || m[3] != strconv.Itoa(len(named["failed"])) {
			t.Errorf("run %d: the summary (%s rejected, %s failed) disagrees with the lines\n%s", run, m[2], m[3], out)
		}
		for _, k := range []string{"resized/thumb/a.jpg", "resized/small/sub/odd name+%20é.jpg", "resized/_manifest/a.jpg.json"} {
			if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(k))); err != nil {
				t.Errorf("run %d: %v", run, err)
			}
		}
	}
	// Without the failing one, the run succeeds, and still names the
	// rejected ones.
	for _, v := range []string{"thumb", "small"} {
		if err := os.Remove(filepath.Join(dir, "resized", v, "blocked")); err != nil {
			t.Fatal(err)
		}
	}
	out, err := reconcileRun(ctx, env)
	if err != nil || strings.Contains(out, "failed: ") || strings.Count(out, "\nrejected: ") != len(wantRejected) {
		t.Errorf("with nothing failing: %v\n%s", err, out)
	}
}
