package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

// The server killed (SIGKILL) while it stores uploads on the local store,
// again and again, leaves no key half done once it has started again: the
// directory has no event to finish an original stored without its
// variants, as S3's ObjectCreated does, so the upload's note does
// (pipeline's Recover, at start). Before the notes, 5 of 45 uploads cut
// so were left as originals without variants or manifest, for good.
func TestUploadsKilledMidWay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills the server a dozen times")
	}
	addr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := map[string]string{"ADDR": addr, "DATA_DIR": dir, "LOG_LEVEL": "warn"}
	rng := rand.New(rand.NewPCG(20261130, 1))
	bodies := make([][]byte, 3)
	for i := range bodies {
		img := image.NewRGBA(image.Rect(0, 0, 1600+40*i, 1200))
		for p := range img.Pix {
			img.Pix[p] = uint8(rng.IntN(256))
		}
		var buf bytes.Buffer
		jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
		bodies[i] = buf.Bytes()
	}
	const rounds = 10
	cut := 0
	for r := 0; r < rounds; r++ {
		server := startProc(t, env)
		var wg sync.WaitGroup
		for i, body := range bodies {
			wg.Go(func() {
				// Each round writes over some keys of the rounds before,
				// and one of its own, which none writes over later.
				key := fmt.Sprintf("k%d.jpg", (r+i)%3)
				if i == 0 {
					key = fmt.Sprintf("r%d.jpg", r)
				}
				resp, err := http.Post("http://"+addr+"/uploads?key="+key, "image/jpeg", bytes.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
			})
		}
		// Killed as soon as the round's own original is stored (its
		// variants are being written then), or, every third round, at
		// a moment drawn from the upload's time (about 0.1 to 0.6 s).
		if r%3 == 2 {
			time.Sleep(time.Duration(20+rng.IntN(500)) * time.Millisecond)
		} else {
			own := filepath.Join(dir, "uploads", fmt.Sprintf("r%d.jpg", r))
			for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(time.Millisecond) {
				if _, err := os.Stat(own); err == nil {
					break
				}
			}
		}
		server.cmd.Process.Kill()
		server.done <- <-server.done
		wg.Wait()
		d, err := storage.NewDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		notes, err := d.PendingUploads()
		d.Close()
		if err != nil {
			t.Fatal(err)
		}
		cut += len(notes)
	}
	if cut == 0 {
		t.Fatal("no upload was cut: the test proves nothing; kill sooner")
	}
	t.Logf("%d of %d uploads cut", cut, rounds*len(bodies))
	server := startProc(t, env) // finishes them before it serves
	server.cmd.Process.Kill()
	server.done <- <-server.done
	checkUploadsWhole(t, dir)
}

// checkUploadsWhole fails unless every original in dir has its manifest
// and variants, each of its version, and every output has its original,
// and no upload note is left.
func checkUploadsWhole(t *testing.T, dir string) {
	t.Helper()
	ctx := context.Background()
	d, err := storage.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if notes, err := d.PendingUploads(); err != nil || len(notes) != 0 {
		t.Errorf("notes left: %v %v", notes, err)
	}
	originals, err := d.List(ctx, "uploads/", 0)
	if err != nil || len(originals) == 0 {
		t.Fatalf("%d originals, %v", len(originals), err)
	}
	made := map[string]bool{}
	for _, o := range originals {
		rel := strings.TrimPrefix(o.Key, "uploads/")
		b, _, err := d.Get(ctx, "resized/"+pipeline.ManifestSegment+rel+".json", storage.GetOptions{})
		var m pipeline.Manifest
		if err == nil {
			err = json.Unmarshal(b, &m)
		}
		if err != nil || strings.Trim(m.ETag, `"`) != strings.Trim(o.ETag, `"`) || len(m.Variants) == 0 {
			t.Errorf("%s: manifest %+v, %v", o.Key, m, err)
			continue
		}
		for _, v := range m.Variants {
			obj, err := d.Head(ctx, v.Key)
			if err != nil || obj.Metadata[pipeline.MetaSourceETag] != strings.Trim(o.ETag, `"`) {
				t.Errorf("%s: variant %s: %v %v", o.Key, v.Key, obj.Metadata, err)
			}
			made[v.Key] = true
		}
	}
	outputs, err := d.List(ctx, "resized/", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outputs {
		if !strings.HasPrefix(o.Key, "resized/"+pipeline.ManifestSegment) && !made[o.Key] {
			t.Errorf("%s: an output no manifest lists", o.Key)
		}
	}
}
