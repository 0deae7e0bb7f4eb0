package pipeline

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/png"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/storage"
)

// dying is a directory whose process dies (every call fails from then on,
// its upload notes left behind) right after the original key is written
// the nth time.
type dying struct {
	*storage.Dir
	key  string
	n    int32
	puts atomic.Int32
	dead atomic.Bool
}

var errKilled = errors.New("killed")

func (d *dying) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	if d.dead.Load() {
		return nil, storage.Object{}, errKilled
	}
	return d.Dir.Get(ctx, key, o)
}

func (d *dying) Head(ctx context.Context, key string) (storage.Object, error) {
	if d.dead.Load() {
		return storage.Object{}, errKilled
	}
	return d.Dir.Head(ctx, key)
}

func (d *dying) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if d.dead.Load() {
		return storage.Object{}, errKilled
	}
	if strings.HasPrefix(key, "resized/large/") {
		return storage.Object{}, errors.New("disk full") // the upload fails: its rollback runs
	}
	obj, err := d.Dir.Put(ctx, key, data, o)
	if key == d.key && d.puts.Add(1) == d.n {
		d.dead.Store(true)
	}
	return obj, err
}

func (d *dying) Delete(ctx context.Context, key string) error {
	if d.dead.Load() {
		return errKilled
	}
	return d.Dir.Delete(ctx, key)
}

func (d *dying) EndUpload(id string) error {
	if d.dead.Load() {
		return errKilled
	}
	return d.Dir.EndUpload(id)
}

// An upload of another format over an original, killed in its rollback
// just after the original it replaced was put back, leaves outputs of its
// own version at keys the original put back has none at (the thumbnail
// in PNG beside the JPEG one); the next start (Recover) removes them with
// the rest of what the upload wrote, and leaves the original put back
// with its outputs, current.
func TestRecoverAfterAKilledRollback(t *testing.T) {
	ctx := t.Context()
	d := dirStore(t)
	cfg := testConfig(t)
	good, _ := New(cfg, d, d, proc(t))
	const key = "uploads/noext"
	before, err := good.Upload(ctx, key, imagetest.Photo(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 300, 200))); err != nil {
		t.Fatal(err)
	}
	// Its first write of the key is the new original, the second puts the
	// old one back: the process dies then.
	st := &dying{Dir: d, key: key, n: 2}
	bad, _ := New(cfg, st, st, proc(t))
	if _, err := bad.Upload(ctx, key, b.Bytes(), nil); err == nil {
		t.Fatal("the failing upload succeeded")
	}
	if !st.dead.Load() {
		t.Fatal("the rollback did not put the original back: the test proves nothing")
	}
	stray := good.outputKey(key, cfg.Variants[0], imageproc.FormatPNG) // thumb keeps the format
	if _, err := d.Head(ctx, stray); err != nil {
		t.Fatalf("the killed upload left no output at %s, the test proves nothing: %v", stray, err)
	}

	done, err := good.Recover(ctx)
	if err != nil || len(done) != 1 {
		t.Fatalf("recover: %v %v", done, err)
	}
	if _, err := d.Head(ctx, stray); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("%s, an output of the upload that failed, left after Recover: %v", stray, err)
	}
	want := map[string]bool{good.ManifestKey(key): true}
	for _, o := range before.Outputs {
		want[o.Key] = true
	}
	for _, o := range mustList(t, d, "resized/") {
		if !want[o.Key] {
			t.Errorf("%s left after Recover", o.Key)
		}
	}
	if res, err := good.Run(ctx, key, ""); err != nil || res.Status != StatusUpToDate {
		t.Errorf("after Recover, a run finds %s (%v), want up to date", res.Status, err)
	}
}

// Notes of one key (uploads of it cut short together, or notes that a
// failing EndUpload left start after start) are one key finished, not
// one per note: the start's log names each key once.
func TestRecoverNamesAKeyOnce(t *testing.T) {
	ctx := t.Context()
	d := dirStore(t)
	p, _ := New(testConfig(t), d, d, proc(t))
	photo := imagetest.Photo(t)
	if _, err := p.Upload(ctx, "uploads/a.jpg", photo, nil); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := d.BeginUpload("uploads/a.jpg", photo); err != nil {
			t.Fatal(err)
		}
	}
	done, err := p.Recover(ctx)
	if err != nil || len(done) != 1 || done[0] != "uploads/a.jpg" {
		t.Fatalf("recover: %d keys %.80v, %v; want the one key once", len(done), done, err)
	}
	if notes, err := d.PendingUploads(); err != nil || len(notes) != 0 {
		t.Errorf("%d notes left, %v", len(notes), err)
	}
}
