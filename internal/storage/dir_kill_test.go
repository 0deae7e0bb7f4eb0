package storage

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// killChildEnv makes TestDirKilledMidWrite's process the writer it kills.
const killChildEnv = "RESIZER_DIR_KILL_CHILD"

// A process killed (SIGKILL) at any point of its writes and deletions
// leaves every key whole or absent: its bytes are one version's, and its
// metadata, when it has any, that version's own; the next opening of the
// directory reads every key without error. The writer writes each key
// over and over with versions of one size (as a coarse clock would give
// them one time too) and deletes some.
func TestDirKilledMidWrite(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		writeUntilKilled(t, dir)
		return
	}
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(3, 4))
	seen := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDirKilledMidWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(50+r.IntN(150)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
		d, err := NewDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := d.List(t.Context(), "", 0)
		if err != nil {
			t.Fatalf("round %d: list: %v", round, err)
		}
		seen += len(objs)
		for _, o := range objs {
			b, obj, err := d.Get(t.Context(), o.Key, GetOptions{})
			if err != nil {
				t.Fatalf("round %d: get %s: %v", round, o.Key, err)
			}
			key, version, ok := strings.Cut(strings.TrimRight(string(b), "."), " ")
			if !ok || key != o.Key {
				t.Fatalf("round %d: %s holds %q, not a version of its own", round, o.Key, b)
			}
			if v, ok := obj.Metadata["v"]; ok && v != version {
				t.Fatalf("round %d: %s holds version %s with the metadata of version %s", round, o.Key, version, v)
			}
			if obj.ETag != dirETag(b) {
				t.Fatalf("round %d: %s: ETag %s of other bytes", round, o.Key, obj.ETag)
			}
		}
		d.Close()
	}
	if seen == 0 {
		t.Fatal("the writer wrote nothing before it was killed: the test proves nothing")
	}
}

// writeUntilKilled writes and deletes keys in dir until the process is
// killed.
func writeUntilKilled(t *testing.T, dir string) {
	d, err := NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := 0; ; i++ {
		key := fmt.Sprintf("k/%d.jpg", i%7)
		v := fmt.Sprintf("%06d", i)
		data := []byte(key + " " + v + strings.Repeat(".", 4096))
		if i%5 == 4 {
			d.Delete(ctx, key)
			continue
		}
		d.Put(ctx, key, data, PutOptions{Metadata: map[string]string{"v": v}, Rebuildable: i%2 == 0})
	}
}
