package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

func TestMain(m *testing.M) {
	imageproc.ServeWorkerIfAsked()
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

func proc(t *testing.T) *imageproc.Processor {
	t.Helper()
	p, err := imageproc.New(testProcConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func testConfig(t *testing.T) Config {
	t.Helper()
	vs, err := ParseVariants("thumb:200x200:cover,medium:800x0,large:1600x0:webp", 8192)
	if err != nil {
		t.Fatal(err)
	}
	return Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true, Variants: vs,
		CacheControl: "public, max-age=60", MaxSourceBytes: 32 << 20}
}

// dirStore is a store in a directory of the test's own.
func dirStore(t *testing.T) *storage.Dir {
	t.Helper()
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// stores returns the pipeline's stores to test on: a directory, and a
// bucket of a real MinIO.
func stores(t *testing.T) map[string]Store {
	d := dirStore(t)
	srv := s3test.Start(t)
	s, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Store{"dir": d, "s3": s}
}

// counting counts the reads of a store, to see work that was skipped.
type counting struct {
	Store
	gets atomic.Int32
}

func (c *counting) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, key, o)
}

func TestUploadAndRun(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cs := &counting{Store: st}
			p, err := New(testConfig(t), cs, cs, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			key := p.NewKey(imageproc.FormatJPEG, time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC))
			if !strings.HasPrefix(key, "uploads/2026/11/26/") || !strings.HasSuffix(key, ".jpg") {
				t.Fatalf("new key %q", key)
			}
			res, err := p.Upload(ctx, key, imagetest.Photo(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != StatusProcessed || res.Width != 2560 || res.Height != 1600 || res.ETag == "" || len(res.Outputs) != 3 {
				t.Fatalf("result %+v", res)
			}
			rel := strings.TrimPrefix(key, "uploads/")
			want := []struct {
				key, ctype string
				w, h       int
			}{
				{"resized/thumb/" + rel, "image/jpeg", 200, 200},
				{"resized/medium/" + rel, "image/jpeg", 800, 500},
				{"resized/large/" + rel + ".webp", "image/webp", 1600, 1000},
			}
			for i, w := range want {
				o := res.Outputs[i]
				if o.Key != w.key || o.Width != w.w || o.Height != w.h {
					t.Errorf("output %d: %+v, want %s %dx%d", i, o, w.key, w.w, w.h)
				}
				obj, err := st.Head(ctx, w.key)
				if err != nil {
					t.Fatalf("%s: %v", w.key, err)
				}
				if obj.ContentType != w.ctype || obj.CacheControl != "public, max-age=60" || obj.Size != o.Bytes ||
					obj.Metadata[MetaSourceETag] != strings.Trim(res.ETag, `"`) || obj.Metadata[MetaSourceKey] != key ||
					obj.Metadata[MetaVariant] != p.cfg.Variants[i].Name {
					t.Errorf("%s stored as %+v", w.key, obj)
				}
			}
			// A second run finds every output current and reads nothing
			// (the upload read only its absent earlier manifest).
			reads := cs.gets.Load()
			res2, err := p.Run(ctx, key, res.ETag)
			if err != nil || res2.Status != StatusUpToDate || cs.gets.Load() != reads {
				t.Fatalf("rerun: %+v %v, %d reads", res2, err, cs.gets.Load()-reads)
			}
			// A new version of the source is processed again.
			obj, err := st.Put(ctx, key, grey(t, 1000, 500), storage.PutOptions{ContentType: "image/jpeg"})
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.Run(ctx, key, obj.ETag)
			if err != nil || r.Status != StatusProcessed || r.Outputs[1].Width != 800 || r.Outputs[1].Height != 400 {
				t.Fatalf("run for the new ETag: %+v %v", r, err)
			}
			if h, _ := st.Head(ctx, want[1].key); h.Metadata[MetaSourceETag] != strings.Trim(obj.ETag, `"`) {
				t.Fatalf("output not rewritten for the new version: %+v", h)
			}
			// Outputs are never taken for sources.
			if r, err := p.Run(ctx, want[0].key, ""); err != nil || r.Status != StatusLoopGuard {
				t.Fatalf("run on an output: %+v %v", r, err)
			}
			if r, err := p.Run(ctx, "uploads/gone.jpg", ""); err != nil || r.Status != StatusSuperseded {
				t.Fatalf("run on a deleted source: %+v %v", r, err)
			}
			// An event for a version that has since been replaced is not
			// processed under the newer version's name: the outputs it
			// leaves are the stored version's (settle).
			first, _ := st.Put(ctx, "uploads/v.jpg", grey(t, 300, 300), storage.PutOptions{})
			second, err := st.Put(ctx, "uploads/v.jpg", imagetest.Photo(t), storage.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r, err := p.Run(ctx, "uploads/v.jpg", first.ETag); err != nil || r.Status != StatusSuperseded {
				t.Fatalf("run for a replaced version: %+v %v", r, err)
			}
			if h, err := st.Head(ctx, "resized/thumb/v.jpg"); err != nil || h.Metadata[MetaSourceETag] != strings.Trim(second.ETag, `"`) {
				t.Fatalf("a superseded version's event left outputs of %q (%v), want the stored version's", h.Metadata[MetaSourceETag], err)
			}
		})
	}
}

func grey(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	jpeg.Encode(&b, img, nil)
	return b.Bytes()
}

// Nothing is stored for bytes that would be refused.
func TestUploadRefusesBeforeStoring(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p, _ := New(testConfig(t), st, st, proc(t))
			ph := imagetest.Photo(t)
			for _, tt := range []struct {
				data []byte
				want error
			}{
				{[]byte("<html>not an image</html>"), imageproc.ErrUnsupported},
				{ph[:len(ph)/2], imageproc.ErrUndecodable},
			} {
				if _, err := p.Upload(t.Context(), "uploads/x.jpg", tt.data, nil); !errors.Is(err, tt.want) {
					t.Errorf("err = %v, want %v", err, tt.want)
				}
				if _, err := st.Head(t.Context(), "uploads/x.jpg"); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("refused upload was stored: %v", err)
				}
			}
		})
	}
}

// puts counts the writes to a directory.
type puts struct {
	*storage.Dir
	n atomic.Int32
}

func (p *puts) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	p.n.Add(1)
	return p.Dir.Put(ctx, key, data, o)
}

// A directory's own limit on keys is checked for every output before
// anything is written, not found by a write that must then be undone: a
// 248-byte file name is fine for the original, not for its thumb's with
// ".jpg" and the metadata's ".json" added.
func TestUploadChecksDirKeysFirst(t *testing.T) {
	d := dirStore(t)
	st := &puts{Dir: d}
	p, _ := New(testConfig(t), st, st, proc(t))
	key := "uploads/" + strings.Repeat("s", 248)
	if _, err := p.Upload(t.Context(), key, imagetest.Photo(t), nil); !errors.Is(err, storage.ErrInvalidKey) {
		t.Fatalf("err = %v, want ErrInvalidKey", err)
	}
	if n := st.n.Load(); n != 0 {
		t.Fatalf("%d writes before the refusal", n)
	}
}

// failing is a store whose writes under a prefix fail: the only way to
// see what a half-failed write does.
type failing struct {
	Store
	prefix string
}

func (f failing) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if strings.HasPrefix(key, f.prefix) {
		return storage.Object{}, errors.New("disk full")
	}
	return f.Store.Put(ctx, key, data, o)
}

// An upload whose variant cannot be written fails as a whole, and leaves
// nothing behind: not the original, not the variants already written.
func TestFailedOutputIsAnError(t *testing.T) {
	d := dirStore(t)
	p, _ := New(testConfig(t), d, failing{Store: d, prefix: "resized/large/"}, proc(t))
	_, err := p.Upload(t.Context(), "uploads/x.jpg", imagetest.Photo(t), nil)
	if err == nil || !strings.Contains(err.Error(), "store variant large") {
		t.Fatalf("err = %v", err)
	}
	for _, v := range testConfig(t).Variants {
		k := p.outputKey("uploads/x.jpg", v, imageproc.FormatJPEG)
		if _, err := d.Head(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s left behind: %v", k, err)
		}
	}
	if _, err := d.Head(t.Context(), "uploads/x.jpg"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the original was left behind: %v", err)
	}
}

// An upload that replaces an original and then fails leaves the original
// it replaced as it was: its bytes and metadata put back, and every
// output current with it again, whether the failed upload overwrote some
// (same format, same keys) or wrote beside them (another format, another
// extension: those strays go).
func TestFailedReplacementKeepsThePrevious(t *testing.T) {
	photo := imagetest.Photo(t)
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 300, 200))); err != nil {
		t.Fatal(err)
	}
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig(t)
			good, _ := New(cfg, st, st, proc(t))
			bad, _ := New(cfg, st, failing{Store: st, prefix: "resized/large/"}, proc(t))
			for _, tt := range []struct {
				key  string
				with []byte
			}{
				{"uploads/same.jpg", imagetest.JPEG(photo, 6, nil)},
				{"uploads/noext", b.Bytes()},
			} {
				before, err := good.Upload(t.Context(), tt.key, photo, FocusMetadata(&imageproc.Point{X: 0.2, Y: 0.7}))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := bad.Upload(t.Context(), tt.key, tt.with, nil); err == nil {
					t.Fatalf("%s: the failing upload succeeded", tt.key)
				}
				data, obj, err := st.Get(t.Context(), tt.key, storage.GetOptions{})
				if err != nil || !bytes.Equal(data, photo) {
					t.Fatalf("%s: the original replaced is not back (%d bytes): %v", tt.key, len(data), err)
				}
				if obj.Metadata[MetaFocus] == "" {
					t.Errorf("%s: the original put back lost its metadata: %v", tt.key, obj.Metadata)
				}
				res, err := good.Run(t.Context(), tt.key, "")
				if err != nil || res.Status != StatusUpToDate {
					t.Errorf("%s: after the rollback, a run finds %s (%v), want everything up to date", tt.key, res.Status, err)
				}
				want := map[string]bool{}
				for _, o := range before.Outputs {
					want[o.Key] = true
				}
				for _, v := range cfg.Variants {
					for _, f := range []imageproc.Format{imageproc.FormatJPEG, imageproc.FormatPNG, imageproc.FormatWebP} {
						k := good.outputKey(tt.key, v, f)
						if _, err := st.Head(t.Context(), k); err == nil && !want[k] {
							t.Errorf("%s: %s left behind by the failed upload", tt.key, k)
						}
					}
				}
			}
		})
	}
}

// The outputs a CDN may hold old copies of (Result.Stale), one original's
// worth: none for a new original; every output written over for one
// replaced, by an upload or by another version's run; every output for one
// deleted. Not those of a variant redefined or retired, which reconcile
// makes again for every original (a wildcard's business), nor any for a
// manifest alone written again.
func TestStaleOutputs(t *testing.T) {
	ctx := t.Context()
	d := dirStore(t)
	cfg := testConfig(t)
	p, _ := New(cfg, d, d, proc(t))
	photo := imagetest.Photo(t)
	first, err := p.Upload(ctx, "uploads/s.jpg", photo, nil)
	if err != nil || len(first.Stale) != 0 {
		t.Fatalf("a new original: stale %v, %v", first.Stale, err)
	}
	keys := func(res Result) string {
		var ks []string
		for _, o := range res.Outputs {
			ks = append(ks, o.Key)
		}
		slices.Sort(ks)
		return strings.Join(ks, " ")
	}
	sorted := func(ks []string) string {
		ks = slices.Clone(ks)
		slices.Sort(ks)
		return strings.Join(ks, " ")
	}
	second, err := p.Upload(ctx, "uploads/s.jpg", imagetest.JPEG(photo, 6, nil), nil)
	if err != nil || sorted(second.Stale) != keys(first) {
		t.Fatalf("an original replaced by an upload: stale %v, want every output %s (%v)", second.Stale, keys(first), err)
	}
	if _, err := d.Put(ctx, "uploads/s.jpg", photo, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	third, err := p.Run(ctx, "uploads/s.jpg", "")
	if err != nil || third.Status != StatusProcessed || sorted(third.Stale) != keys(second) {
		t.Fatalf("an original replaced in the store: %s, stale %v, want %s (%v)", third.Status, third.Stale, keys(second), err)
	}
	// A variant redefined and one retired: written over and pruned, and
	// none of it stale; then a manifest alone written again.
	if cfg.Variants, err = ParseVariants("thumb:150x150:cover,medium:800x0", 8192); err != nil {
		t.Fatal(err)
	}
	p2, _ := New(cfg, d, d, proc(t))
	fourth, err := p2.Run(ctx, "uploads/s.jpg", "")
	if err != nil || fourth.Status != StatusProcessed || len(fourth.Pruned) != 1 || len(fourth.Stale) != 0 {
		t.Fatalf("variants redefined and retired: %s, pruned %v, stale %v (%v)", fourth.Status, fourth.Pruned, fourth.Stale, err)
	}
	cfg.PublicBaseURL = "https://cdn.example.com/"
	p3, _ := New(cfg, d, d, proc(t))
	fifth, err := p3.Run(ctx, "uploads/s.jpg", "")
	if err != nil || fifth.Status != StatusProcessed || len(fifth.Stale) != 0 {
		t.Fatalf("a manifest alone written again: %s, stale %v (%v)", fifth.Status, fifth.Stale, err)
	}
	// The same bytes stored again with a focal point (the same ETag):
	// every output written over is stale, and the manifest says the focus.
	data, obj, err := d.Get(ctx, "uploads/s.jpg", storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	focused, err := d.Put(ctx, "uploads/s.jpg", data, storage.PutOptions{ContentType: "image/jpeg",
		Metadata: FocusMetadata(&imageproc.Point{X: 0.2, Y: 0.7})})
	if err != nil || focused.ETag != obj.ETag {
		t.Fatalf("stored again: %s, was %s (%v)", focused.ETag, obj.ETag, err)
	}
	sixth, err := p3.Run(ctx, "uploads/s.jpg", "")
	if err != nil || sixth.Status != StatusProcessed || sorted(sixth.Stale) != keys(fifth) || sixth.Manifest.Focus != "0.2,0.7" {
		t.Fatalf("another focus: %s, stale %v, want %s, manifest focus %q (%v)", sixth.Status, sixth.Stale, keys(fifth), sixth.Manifest.Focus, err)
	}
	if again, err := p3.Run(ctx, "uploads/s.jpg", ""); err != nil || again.Status != StatusUpToDate {
		t.Fatalf("run again: %s (%v)", again.Status, err)
	}
	if err := d.Delete(ctx, "uploads/s.jpg"); err != nil {
		t.Fatal(err)
	}
	gone, err := p3.Remove(ctx, "uploads/s.jpg")
	if err != nil || sorted(gone.Stale) != keys(sixth) {
		t.Fatalf("a deleted original: stale %v, want %s (%v)", gone.Stale, keys(sixth), err)
	}
}

// Two originals whose output keys meet (a.jpg's WebP variant and the WebP
// original a.jpg.webp's are both a.jpg.webp): the first keeps the key, and
// the second is refused, by an upload (nothing stored) as by a run
// (rejected, and left where it is: its name is at fault), rather than
// written over the first's, which would serve one's picture as the
// other's. Once the first is gone, the second takes the key over.
func TestOutputKeyTaken(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cfg := testConfig(t) // large is WebP
			cfg.RejectedPrefix = "rejected/"
			pr := proc(t)
			p, _ := New(cfg, st, st, pr)
			photo := imagetest.Photo(t)
			first, err := p.Upload(ctx, "uploads/k.jpg", photo, nil)
			if err != nil {
				t.Fatal(err)
			}
			webp, err := pr.Process(ctx, photo, imageproc.Options{Format: imageproc.FormatWebP, Width: 400})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.Upload(ctx, "uploads/k.jpg.webp", webp.Data, nil); !errors.Is(err, ErrKeyTaken) || !strings.Contains(err.Error(), "uploads/k.jpg") {
				t.Fatalf("upload over another original's output key: %v, want ErrKeyTaken naming it", err)
			}
			if _, err := st.Head(ctx, "uploads/k.jpg.webp"); !errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("the refused upload was stored: %v", err)
			}
			if _, err := st.Put(ctx, "uploads/k.jpg.webp", webp.Data, storage.PutOptions{ContentType: "image/webp"}); err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(ctx, "uploads/k.jpg.webp", "")
			if err != nil || res.Status != StatusRejected || !strings.Contains(res.Reason, "uploads/k.jpg") {
				t.Fatalf("a run over another original's output key: %s %q %v", res.Status, res.Reason, err)
			}
			if _, err := st.Head(ctx, "uploads/k.jpg.webp"); err != nil {
				t.Fatalf("the refused original was moved: %v", err)
			}
			large := first.Outputs[2]
			if obj, err := st.Head(ctx, large.Key); err != nil || obj.ETag != large.ETag {
				t.Fatalf("the first original's %s was written over: %v", large.Key, err)
			}
			// The first goes: the second takes the key over.
			if err := st.Delete(ctx, "uploads/k.jpg"); err != nil {
				t.Fatal(err)
			}
			if res, err := p.Run(ctx, "uploads/k.jpg.webp", ""); err != nil || res.Status != StatusProcessed {
				t.Fatalf("once the first is gone: %s %v", res.Status, err)
			}
		})
	}
}

// An original replaced by one of another format, under a key whose
// extension says neither: the old outputs, pruned since their keys
// changed, are stale too.
func TestStaleOutputsOfAnotherFormat(t *testing.T) {
	ctx := t.Context()
	d := dirStore(t)
	p, _ := New(testConfig(t), d, d, proc(t))
	first, err := p.Upload(ctx, "uploads/n", imagetest.Photo(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, image.NewNRGBA(image.Rect(0, 0, 300, 200))); err != nil {
		t.Fatal(err)
	}
	second, err := p.Upload(ctx, "uploads/n", b.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range first.Outputs {
		if !slices.Contains(second.Stale, o.Key) {
			t.Errorf("%s, written before, not stale: %v", o.Key, second.Stale)
		}
	}
}

// A failed upload that replaced an original too large to be held (over
// MaxSourceBytes) keeps the new one, with its variants, rather than
// deleting it and losing both.
func TestFailedReplacementOfAnUnheldOriginal(t *testing.T) {
	ctx := t.Context()
	d := dirStore(t)
	cfg := testConfig(t)
	big := imagetest.Photo(t)
	if _, err := d.Put(ctx, "uploads/big.jpg", big, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	small := grey(t, 320, 200)
	cfg.MaxSourceBytes = int64(len(big) - 1)
	bad, _ := New(cfg, d, failing{Store: d, prefix: "resized/large/"}, proc(t))
	if _, err := bad.Upload(ctx, "uploads/big.jpg", small, nil); err == nil {
		t.Fatal("the failing upload succeeded")
	}
	data, _, err := d.Get(ctx, "uploads/big.jpg", storage.GetOptions{})
	if err != nil || !bytes.Equal(data, small) {
		t.Fatalf("the original after the failed upload: %d bytes, %v; want the new one kept", len(data), err)
	}
}

func TestCheckPrefixes(t *testing.T) {
	for _, tt := range []struct {
		in, out string
		same    bool
		loop    bool
	}{
		{"uploads/", "resized/", true, false},
		{"uploads/", "uploads/resized/", true, true},
		{"", "resized/", true, true},
		{"uploads/", "", true, true},
		{"uploads/", "uploads/", true, true},
		{"img", "img-small/", true, true},
		{"uploads/", "uploads/resized/", false, false},
		{"", "", false, false},
	} {
		err := checkPrefixes(tt.in, tt.out, tt.same)
		if errors.Is(err, ErrLoop) != tt.loop {
			t.Errorf("input %q output %q same store %v: err = %v, loop %v", tt.in, tt.out, tt.same, err, tt.loop)
		}
	}
	cfg := testConfig(t)
	cfg.OutputPrefix = "uploads/small/"
	if _, err := New(cfg, nil, nil, nil); !errors.Is(err, ErrLoop) {
		t.Fatalf("New accepted a looping configuration: %v", err)
	}
}

func TestOutputKey(t *testing.T) {
	p := &Pipeline{cfg: Config{InputPrefix: "uploads/", OutputPrefix: "resized/"}}
	v := Variant{Name: "thumb"}
	for _, tt := range []struct {
		key  string
		f    imageproc.Format
		want string
	}{
		{"uploads/a/b.jpg", imageproc.FormatJPEG, "resized/thumb/a/b.jpg"},
		{"uploads/a/b.JPEG", imageproc.FormatJPEG, "resized/thumb/a/b.JPEG"},
		{"uploads/a/b.jpg", imageproc.FormatWebP, "resized/thumb/a/b.jpg.webp"},
		{"uploads/a/b.heic", imageproc.FormatJPEG, "resized/thumb/a/b.heic.jpg"},
		{"uploads/noext", imageproc.FormatPNG, "resized/thumb/noext.png"},
		{"uploads/with space+plus.png", imageproc.FormatPNG, "resized/thumb/with space+plus.png"},
	} {
		if got := p.outputKey(tt.key, v, tt.f); got != tt.want {
			t.Errorf("outputKey(%q, %v) = %q, want %q", tt.key, tt.f, got, tt.want)
		}
	}
}

// parsed is a variant as a test expects it: its name and its options.
type parsed struct {
	name string
	o    imageproc.Options
}

// ParseVariants reads the short form, comma-separated, and the query form
// after "?", whose entries are separated by ";" (option values hold
// commas); each entry's options are those of POST /resize, each once.
func TestParseVariants(t *testing.T) {
	cover, webp := imageproc.FitCover, imageproc.FormatWebP
	for _, tt := range []struct {
		in   string
		max  int
		want []parsed
	}{
		{"thumb:200x200:cover,medium:800x0,large:1600x0", 8192, []parsed{
			{"thumb", imageproc.Options{Width: 200, Height: 200, Fit: cover}},
			{"medium", imageproc.Options{Width: 800}},
			{"large", imageproc.Options{Width: 1600}}}},
		{" a:10x0:webp:contain , b:0x20 ", 100, []parsed{
			{"a", imageproc.Options{Width: 10, Format: webp, Fit: imageproc.FitContain}},
			{"b", imageproc.Options{Height: 20}}}},
		// Commas inside a value, a quality per variant, sharpen.
		{"thumb:200x200:cover?crop=0,0,10,10&quality=70;large:1600x0:webp?sharpen=1.5&quality=90", 8192, []parsed{
			{"thumb", imageproc.Options{Width: 200, Height: 200, Fit: cover, Crop: &imageproc.Region{W: 10, H: 10}, Quality: 70}},
			{"large", imageproc.Options{Width: 1600, Format: webp, Sharpen: 1.5, Quality: 90}}}},
		{"a:100x0?quality=50;b:100x0?quality=90&pad=1,2,3,4;c:100x0", 8192, []parsed{
			{"a", imageproc.Options{Width: 100, Quality: 50}},
			{"b", imageproc.Options{Width: 100, Quality: 90, Pad: [4]int{1, 2, 3, 4}}},
			{"c", imageproc.Options{Width: 100}}}},
		// ";" without any options; spaces and empty entries between
		// separators are skipped, as with commas.
		{"a:1x1;b:2x2", 100, []parsed{{"a", imageproc.Options{Width: 1, Height: 1}}, {"b", imageproc.Options{Width: 2, Height: 2}}}},
		{" a:10x0 ; ; b:0x20?blur=2&flip=both ;", 100, []parsed{
			{"a", imageproc.Options{Width: 10}},
			{"b", imageproc.Options{Height: 20, Blur: 2, Flip: imageproc.FlipBoth}}}},
		{"a:10x0?", 100, []parsed{{"a", imageproc.Options{Width: 10}}}},
		{"w:100x100:cover?watermark=logo.png&watermark_position=northwest&watermark_opacity=0.5;f:300x300:cover?gravity=focus&focus=0.25,0.75", 8192, []parsed{
			{"w", imageproc.Options{Width: 100, Height: 100, Fit: cover,
				Watermark: &imageproc.Watermark{Key: "logo.png", Position: imageproc.GravityNorthWest, Opacity: 0.5}}},
			{"f", imageproc.Options{Width: 300, Height: 300, Fit: cover, Gravity: imageproc.GravityFocus, Focus: &imageproc.Point{X: 0.25, Y: 0.75}}}}},
	} {
		vs, err := ParseVariants(tt.in, tt.max)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		var got []parsed
		for _, v := range vs {
			got = append(got, parsed{v.Name, v.Options})
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.in, got, tt.want)
		}
	}

	for _, tt := range []struct {
		in, want  string // want: a part of the error
		badOption bool   // the error is imageproc's, with the option named
	}{
		{"", "no variants", false},
		{" ; ;", "no variants", false},
		{"thumb", "want name:WIDTHxHEIGHT", false},
		{"thumb:200", `size "200"`, false},
		{"thumb:0x0", `size "0x0"`, false},
		{"thumb:20x20:crop", "format", true},
		{"Thumb:1x1", "name must be", false},
		{"a b:1x1", "name must be", false},
		{"_a:1x1?quality=5", "name must be", false},
		{"a:1x1,a:2x2", "name used twice", false},
		{"a:10x0?quality=5;a:20x0", `"a": name used twice`, false},
		{"a:101x1", `size "101x1"`, false},
		{"a:-1x1", `size "-1x1"`, false},
		{"a:1x1:auto", "format auto", false},
		{"a:1x1:webp:cover:extra", "want name:WIDTHxHEIGHT", false},
		{"a:10x0;b:0x0", `variant "b:0x0"`, false},
		{"?quality=5", "want name:WIDTHxHEIGHT", false},
		// Options: unknown, repeated (the short form counts), malformed,
		// out of range, meaningless alone.
		{"a:10x0?bogus=1", `unknown parameter "bogus"`, true},
		{"a:10x0?quality=5&quality=6", "quality: given 2 times", true},
		{"a:10x10:cover?fit=contain", "fit: given 2 times", true},
		{"a:10x0:webp?format=png", "format: given 2 times", true},
		{"a:10x0?width=5", "width: given 2 times", true},
		{"a:10x0?format=auto", "format", true},
		{"a:10x0?quality", "quality", true},
		{"a:10x0?sharpen=99", "sharpen", true},
		{"a:10x0?crop=0,0,0,10", "crop", true},
		{"a:10x0?gravity=focus", "needs focus", true},
		{"a:10x0?watermark_opacity=0.5", "need watermark=NAME", true},
		{"a:10x0?quality=%zz", "options:", false},
		// Bad separators: a comma-separated list where an entry carries
		// options is one entry (its options would swallow the rest); a
		// second "?" is part of the options.
		{"a:10x0?quality=5,b:20x0", `quality: "5,b:20x0"`, true},
		{"a:10x0,b:20x0?sharpen=1", `size "10x0,b"`, false},
		{"a:10x0?quality=5?sharpen=1", `quality: "5?sharpen=1"`, true},
		{"a:10x0??quality=5", `unknown parameter "?quality"`, true},
	} {
		_, err := ParseVariants(tt.in, 100)
		switch {
		case err == nil:
			t.Errorf("%q accepted", tt.in)
		case !strings.Contains(err.Error(), tt.want):
			t.Errorf("%q: %v, want it to say %s", tt.in, err, tt.want)
		case errors.Is(err, imageproc.ErrBadOption) != tt.badOption:
			t.Errorf("%q: %v: a bad option: %v, want %v", tt.in, err, errors.Is(err, imageproc.ErrBadOption), tt.badOption)
		case tt.want != "no variants" && !strings.Contains(err.Error(), "variant "):
			t.Errorf("%q: %v names no entry", tt.in, err)
		}
	}
}

// FuzzParseVariants: whatever the text, ParseVariants does not panic; a
// list it accepts has unique, valid names and sizes within the limit, not
// both free, and written back in the query form (canonical options) it
// reads back as the same variants.
func FuzzParseVariants(f *testing.F) {
	for _, s := range []string{
		"thumb:200x200:cover,medium:800x0,large:1600x0",
		" a:10x0:webp:contain , b:0x20 ",
		"thumb:200x200:cover?crop=0,0,10,10&quality=70;large:1600x0:webp?sharpen=1.5",
		"w:100x100:cover?watermark=logo.png&watermark_position=northwest&watermark_opacity=0.5;b:0x20?blur=2&flip=both;",
		"f:300x300:cover?gravity=focus&focus=0.25,0.75&background=%23ff0000&pad=1,2,3,4&dpr=2",
		"a:1x1;;b:2x2", "a:10x0?quality=5,b:20x0", "a:10x0??q=%zz", "a:1x1,a:2x2", ":;?,", "a:0x0",
	} {
		f.Add(s)
	}
	const max = 8192
	f.Fuzz(func(t *testing.T, in string) {
		vs, err := ParseVariants(in, max)
		if err != nil {
			if vs != nil {
				t.Fatalf("%q: variants %+v with the error %v", in, vs, err)
			}
			return
		}
		seen := map[string]bool{}
		entries := make([]string, len(vs))
		for i, v := range vs {
			o := v.Options
			if !variantName.MatchString(v.Name) || seen[v.Name] {
				t.Fatalf("%q: name %q invalid or repeated", in, v.Name)
			}
			seen[v.Name] = true
			if o.Width < 0 || o.Width > max || o.Height < 0 || o.Height > max || o.Width+o.Height == 0 {
				t.Fatalf("%q: variant %s is %dx%d", in, v.Name, o.Width, o.Height)
			}
			// The size in the short form, every other option canonical.
			rest := o
			rest.Width, rest.Height = 0, 0
			entries[i] = fmt.Sprintf("%s:%dx%d", v.Name, o.Width, o.Height)
			if q := rest.Canonical(); q != "" {
				entries[i] += "?" + q
			}
		}
		canonical := strings.Join(entries, ";")
		back, err := ParseVariants(canonical, max)
		if err != nil {
			t.Fatalf("%q: written back as %q, it reads back as %v", in, canonical, err)
		}
		if !reflect.DeepEqual(back, vs) {
			t.Fatalf("%q: written back as %q, it reads back as %+v, want %+v", in, canonical, back, vs)
		}
	})
}

func TestRemoveDeletesVariants(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			p, _ := New(testConfig(t), st, st, proc(t))
			res, err := p.Upload(ctx, "uploads/gone.jpg", imagetest.Photo(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			// While the source exists, a stale removal event leaves it alone:
			// its variants are the stored version's.
			if r, err := p.Remove(ctx, "uploads/gone.jpg"); err != nil || r.Status != StatusUpToDate {
				t.Fatalf("remove of an existing source: %+v %v", r, err)
			}
			if err := st.Delete(ctx, "uploads/gone.jpg"); err != nil {
				t.Fatal(err)
			}
			if r, err := p.Remove(ctx, "uploads/gone.jpg"); err != nil || r.Status != StatusDeleted {
				t.Fatalf("remove: %+v %v", r, err)
			}
			for _, o := range res.Outputs {
				if _, err := st.Head(ctx, o.Key); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s survived: %v", o.Key, err)
				}
			}
			if r, _ := p.Remove(ctx, "resized/thumb/x.jpg"); r.Status != StatusLoopGuard {
				t.Errorf("remove of an output: %+v", r)
			}
		})
	}
}

func TestRunRejects(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cfg := testConfig(t)
			cfg.RejectedPrefix = "rejected/"
			p, err := New(cfg, st, st, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			text := []byte("this is a text file named like a photo")
			if _, err := st.Put(ctx, "uploads/a/fake.jpg", text, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
				t.Fatal(err)
			}
			r, err := p.Run(ctx, "uploads/a/fake.jpg", "")
			if err != nil || r.Status != StatusRejected || !strings.Contains(r.Reason, "unsupported") {
				t.Fatalf("run: %+v %v", r, err)
			}
			if _, err := st.Head(ctx, "uploads/a/fake.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the rejected original is still among the inputs: %v", err)
			}
			got, obj, err := st.Get(ctx, "rejected/a/fake.jpg", storage.GetOptions{})
			if err != nil || !bytes.Equal(got, text) || obj.Metadata[MetaSourceKey] != "uploads/a/fake.jpg" {
				t.Errorf("moved object: %+v %v", obj, err)
			}
		})
	}
	cfg := testConfig(t)
	cfg.RejectedPrefix = "uploads/bad/"
	if _, err := New(cfg, nil, nil, nil); !errors.Is(err, ErrLoop) {
		t.Fatalf("a rejected prefix inside the inputs: %v", err)
	}
}

// A variant whose crop lies outside a stored original can never be made
// of it: the original is rejected with the crop as its reason and moved
// aside, as other unprocessable originals are, while one large enough for
// the crop is made.
func TestRunRejectsACropOutside(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cfg := testConfig(t)
			cfg.RejectedPrefix = "rejected/"
			var err error
			if cfg.Variants, err = ParseVariants("thumb:100x100:cover?crop=0,0,400,400;plain:50x0", 8192); err != nil {
				t.Fatal(err)
			}
			p, err := New(cfg, st, st, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			small := grey(t, 300, 200)
			if _, err := st.Put(ctx, "uploads/small.jpg", small, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			res, err := p.Run(ctx, "uploads/small.jpg", "")
			if err != nil || res.Status != StatusRejected || !strings.Contains(res.Reason, "crop 0,0,400,400 is outside the 300x200 image") {
				t.Fatalf("run of a 300x200 original: %+v %v, want rejected for the crop", res, err)
			}
			if _, err := st.Head(ctx, "uploads/small.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the rejected original is still among the inputs: %v", err)
			}
			if got, _, err := st.Get(ctx, "rejected/small.jpg", storage.GetOptions{}); err != nil || !bytes.Equal(got, small) {
				t.Errorf("the rejected original was not moved aside: %v", err)
			}
			if _, err := st.Head(ctx, "resized/plain/small.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("a variant of the rejected original was written: %v", err)
			}

			if _, err := st.Put(ctx, "uploads/large.jpg", grey(t, 500, 400), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			res, err = p.Run(ctx, "uploads/large.jpg", "")
			if err != nil || res.Status != StatusProcessed || len(res.Outputs) != 2 {
				t.Fatalf("run of a 500x400 original: %+v %v, want processed", res, err)
			}
			if o := res.Outputs[0]; o.Width != 100 || o.Height != 100 {
				t.Errorf("thumb is %dx%d, want 100x100", o.Width, o.Height)
			}
		})
	}
}

// Concurrent deliveries of one event read and decode the source once.
func TestRunOnceForDuplicates(t *testing.T) {
	d := dirStore(t)
	obj, err := d.Put(t.Context(), "uploads/dup.jpg", imagetest.Photo(t), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := &counting{Store: slow{d}}
	p, _ := New(testConfig(t), cs, d, proc(t))
	results := make(chan Result, 4)
	for i := 0; i < 4; i++ {
		go func() {
			r, err := p.Run(context.Background(), "uploads/dup.jpg", obj.ETag)
			if err != nil {
				t.Error(err)
			}
			results <- r
		}()
	}
	for i := 0; i < 4; i++ {
		if r := <-results; r.Status != StatusProcessed {
			t.Errorf("result %+v", r)
		}
	}
	if n := cs.gets.Load(); n != 1 {
		t.Fatalf("%d reads of the source, want 1", n)
	}
}

// slow makes a read take long enough for duplicates to overlap.
type slow struct{ Store }

func (s slow) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	time.Sleep(100 * time.Millisecond)
	return s.Store.Get(ctx, key, o)
}

// testProcConfig is the image limits of a test: the service's defaults are
// internal/config's.
func testProcConfig() imageproc.Config {
	return imageproc.Config{ // a test's own limits: the service's defaults are internal/config's
		Formats: imageproc.DefaultInputFormats, MaxPixels: 50_000_000, MaxDimension: 8192, MaxJPEGScans: 64, MaxFrames: 500,
		Concurrency: 2, QueueSize: 16, QueueTimeout: 5 * time.Second, Timeout: 30 * time.Second,
	}
}

// Every outcome the pipeline reports is one the contract documents for a
// webhook record.
func TestStatusesAreDocumented(t *testing.T) {
	for _, s := range []Status{StatusProcessed, StatusUpToDate, StatusLoopGuard, StatusSuperseded, StatusRejected, StatusDeleted} {
		if !api.WebhookRecordStatus(s).Valid() {
			t.Errorf("status %q is not in openapi.yaml's WebhookRecord", s)
		}
	}
}

// An upload reports the original's size upright, as its variants are made:
// an EXIF-rotated 300x200 JPEG is 200x300 (it was reported as stored).
func TestUploadReportsUprightSize(t *testing.T) {
	d := dirStore(t)
	p, err := New(testConfig(t), d, d, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	res, err := p.Upload(t.Context(), "uploads/turned.jpg", imagetest.JPEG(b.Bytes(), 6, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Width != 200 || res.Height != 300 {
		t.Fatalf("reported %dx%d, want 200x300 upright", res.Width, res.Height)
	}
}

// A failure that no retry can mend is permanent; busy, timed out, storage
// faults and a configuration to mend are not.
func TestIsPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{imageproc.ErrUnsupported, true},
		{imageproc.ErrUndecodable, true},
		{imageproc.ErrTooLarge, true},
		{fmt.Errorf("variant small: %w: max_bytes=100: 2000 bytes at quality 1", imageproc.ErrUnsatisfiable), true},
		{storage.ErrInvalidKey, true},
		{fmt.Errorf("%w: %q would be written over the output of %q", ErrKeyTaken, "resized/large/k.jpg.webp", "uploads/k.jpg"), true},
		{fmt.Errorf("%w: crop=0,0,500,500 lies outside the 300x200 image", imageproc.ErrBadOption), true},
		// The configuration's watermark: mended by storing it, not by
		// rejecting every original meanwhile.
		{misconfigured(fmt.Errorf("variant thumb: %w: no watermark %q", imageproc.ErrBadWatermark, "logo.png")), false},
		{imageproc.ErrBusy, false},
		{imageproc.ErrTimeout, false},
		{storage.ErrUnavailable, false},
		{errors.New("anything else"), false},
	}
	for _, tt := range tests {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// A version of a source whose processing runs into the timeout is worth
// one retry (the moment may have been slow); a second timeout within
// FailureTTL rejects it, moved aside, rather than holding a slot for the
// whole timeout on every retry until its event reached the dead-letter
// queue. Another version of the key starts afresh.
func TestTimeoutTwiceRejects(t *testing.T) {
	d := dirStore(t)
	pc := testProcConfig()
	pc.Timeout = 300 * time.Millisecond
	p, err := imageproc.New(pc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	cfg := testConfig(t)
	// An AVIF of 4000 pixels at full quality takes the encoder seconds.
	if cfg.Variants, err = ParseVariants("huge:4000x0:avif?quality=100&enlarge=true", 8192); err != nil {
		t.Fatal(err)
	}
	cfg.RejectedPrefix, cfg.FailureTTL = "rejected/", time.Minute
	pl, err := New(cfg, d, d, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	obj, err := d.Put(ctx, "uploads/slow.jpg", imagetest.Photo(t), storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Run(ctx, "uploads/slow.jpg", obj.ETag); !errors.Is(err, imageproc.ErrTimeout) || IsPermanent(err) {
		t.Fatalf("the first timeout: %v, want a timeout to retry", err)
	}
	res, err := pl.Run(ctx, "uploads/slow.jpg", obj.ETag)
	if err != nil || res.Status != StatusRejected || !strings.Contains(res.Reason, "timed out again") {
		t.Fatalf("the second timeout: %+v %v, want rejected", res, err)
	}
	if _, err := d.Head(ctx, "rejected/slow.jpg"); err != nil {
		t.Fatalf("not moved aside: %v", err)
	}
	// Another version of the same key: a first timeout again.
	v2 := append(imagetest.Photo(t), 0) // a byte past the end: other bytes, the same picture
	obj, err = d.Put(ctx, "uploads/slow.jpg", v2, storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Run(ctx, "uploads/slow.jpg", obj.ETag); !errors.Is(err, imageproc.ErrTimeout) {
		t.Fatalf("a new version: %v, want a timeout to retry", err)
	}
}

// A rejection moves aside the version that failed and no other: a version
// stored since stays where it is, for its own event to judge.
func TestRejectMovesOnlyTheFailedVersion(t *testing.T) {
	d := dirStore(t)
	cfg := testConfig(t)
	cfg.RejectedPrefix = "rejected/"
	pl, err := New(cfg, d, d, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	old, err := d.Put(ctx, "uploads/a.jpg", []byte("not an image"), storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "uploads/a.jpg", imagetest.Photo(t), storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	res, err := pl.reject(ctx, "uploads/a.jpg", old.ETag, imageproc.ErrUnsupported)
	if err != nil || res.Status != StatusRejected || !strings.Contains(res.Reason, "not moved") {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := d.Head(ctx, "uploads/a.jpg"); err != nil {
		t.Fatalf("the newer version was moved: %v", err)
	}
	if _, err := d.Head(ctx, "rejected/a.jpg"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("something was moved aside: %v", err)
	}
}

// meddling is a real store that does something (once) right after it has
// given a source to a run: the moment at which another upload or a
// deletion can slip in before the run writes.
type meddling struct {
	Store
	done   atomic.Bool
	meddle func()
}

func (m *meddling) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	b, obj, err := m.Store.Get(ctx, key, o)
	if err == nil && strings.HasPrefix(key, "uploads/") && m.done.CompareAndSwap(false, true) {
		m.meddle() // its own runs read through here too, and meddle no more
	}
	return b, obj, err
}

// A run's writes that land after a newer version's run, or after the
// source's deletion, do not stand: the newer version's outputs and
// manifest are made again, and a deleted source's outputs are removed.
func TestARunOvertakenByAnotherVersion(t *testing.T) {
	d := dirStore(t)
	ctx := t.Context()
	st := &meddling{Store: d}
	pl, err := New(testConfig(t), st, st, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := d.Put(ctx, "uploads/a.jpg", imagetest.Photo(t), storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	var v2 storage.Object
	st.meddle = func() { // v2 is stored, and its event's run finishes, while v1's run is at work
		small := imagetest.Marked(t, 320, 200, image.Rect(0, 0, 10, 10))
		if v2, err = d.Put(ctx, "uploads/a.jpg", small, storage.PutOptions{ContentType: "image/png"}); err != nil {
			t.Error(err)
			return
		}
		if res, err := pl.Run(ctx, "uploads/a.jpg", v2.ETag); err != nil || res.Status != StatusProcessed {
			t.Errorf("v2's run: %+v %v", res, err)
		}
	}
	res, err := pl.Run(ctx, "uploads/a.jpg", v1.ETag)
	if err != nil || res.Status != StatusSuperseded {
		t.Fatalf("v1's run: %+v %v, want superseded", res, err)
	}
	objs, err := d.List(ctx, "resized/", 0)
	if err != nil || len(objs) < 4 {
		t.Fatalf("outputs %v %v", objs, err)
	}
	for _, o := range objs {
		h, err := d.Head(ctx, o.Key)
		if err != nil || trimETag(h.Metadata[MetaSourceETag]) != trimETag(v2.ETag) {
			t.Errorf("%s is of version %q, want v2 %q (%v)", o.Key, h.Metadata[MetaSourceETag], v2.ETag, err)
		}
	}

	// Deleted (and its deletion event done) while a run is at work.
	v3, err := d.Put(ctx, "uploads/b.jpg", imagetest.Photo(t), storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	st.done.Store(false)
	st.meddle = func() {
		if err := d.Delete(ctx, "uploads/b.jpg"); err != nil {
			t.Error(err)
		}
		if _, err := pl.Remove(ctx, "uploads/b.jpg"); err != nil {
			t.Error(err)
		}
	}
	if res, err := pl.Run(ctx, "uploads/b.jpg", v3.ETag); err != nil || res.Status != StatusSuperseded {
		t.Fatalf("b's run: %+v %v, want superseded", res, err)
	}
	for _, o := range mustList(t, d, "resized/") {
		if strings.Contains(o.Key, "b.jpg") {
			t.Errorf("%s outlived its deleted source", o.Key)
		}
	}
}

// writeMeddling is a real store that does something (once) right before
// its first write of a key under prefix ("resized/" when empty): the
// moment at which another upload to the same key can store its original
// and write all its outputs, to be written over.
type writeMeddling struct {
	Store
	prefix string
	done   atomic.Bool
	meddle func()
}

func (m *writeMeddling) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if strings.HasPrefix(key, cmp.Or(m.prefix, "resized/")) && m.done.CompareAndSwap(false, true) {
		m.meddle()
	}
	return m.Store.Put(ctx, key, data, o)
}

// Two uploads to one key at once: the last to store the original wins (as
// in S3), and its outputs stand, whatever order the writes landed in; both
// uploads succeed. Deleted while the upload writes, nothing of it stays.
func TestUploadOvertakenByAnotherUpload(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			m := &writeMeddling{Store: st}
			p, err := New(testConfig(t), m, m, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			key := "uploads/same.jpg"
			var second storage.Object
			m.meddle = func() { // the first upload has stored its original; the second does all its work now
				res, err := p.Upload(ctx, key, imagetest.Marked(t, 320, 200, image.Rect(0, 0, 10, 10)), nil)
				if err != nil || res.Status != StatusProcessed {
					t.Errorf("second upload: %+v %v", res, err)
				}
				if second, err = st.Head(ctx, key); err != nil {
					t.Error(err)
				}
			}
			res, err := p.Upload(ctx, key, imagetest.Photo(t), nil)
			if err != nil || res.Status != StatusProcessed {
				t.Fatalf("first upload: %+v %v", res, err)
			}
			if cur, err := st.Head(ctx, key); err != nil || cur.ETag != second.ETag {
				t.Fatalf("the original is %q (%v), want the second upload's %q", cur.ETag, err, second.ETag)
			}
			outs := mustList(t, st, "resized/")
			if len(outs) != len(testConfig(t).Variants)+1 {
				t.Errorf("%d outputs and manifest, want %d: %v", len(outs), len(testConfig(t).Variants)+1, outs)
			}
			for _, o := range outs {
				h, err := st.Head(ctx, o.Key)
				if err != nil || trimETag(h.Metadata[MetaSourceETag]) != trimETag(second.ETag) {
					t.Errorf("%s is of version %q, want the second upload's %q (%v)", o.Key, h.Metadata[MetaSourceETag], second.ETag, err)
				}
			}
			if r, err := p.Run(ctx, key, ""); err != nil || r.Status != StatusUpToDate {
				t.Errorf("a run after both finds %s (%v), want up to date", r.Status, err)
			}

			// Deleted (and its deletion's event done) while the upload writes.
			m.done.Store(false)
			m.meddle = func() {
				if err := st.Delete(ctx, "uploads/gone.jpg"); err != nil {
					t.Error(err)
				}
				if _, err := p.Remove(ctx, "uploads/gone.jpg"); err != nil {
					t.Error(err)
				}
			}
			if _, err := p.Upload(ctx, "uploads/gone.jpg", imagetest.Photo(t), nil); err != nil {
				t.Fatal(err)
			}
			for _, o := range mustList(t, st, "resized/") {
				if strings.Contains(o.Key, "gone.jpg") {
					t.Errorf("%s outlived its deleted original", o.Key)
				}
			}
		})
	}
}

// Two originals whose output keys meet, uploaded at once: both find the
// key free, and the second to write it finds it taken (the writes are
// conditional on what each found): it is refused and undone, and the
// first's output stands.
func TestOutputKeyTakenMeanwhile(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			pr := proc(t)
			m := &writeMeddling{Store: st, prefix: "resized/large/"}
			p, err := New(testConfig(t), m, m, pr) // large is WebP
			if err != nil {
				t.Fatal(err)
			}
			photo := imagetest.Photo(t)
			webp, err := pr.Process(ctx, photo, imageproc.Options{Format: imageproc.FormatWebP, Width: 400})
			if err != nil {
				t.Fatal(err)
			}
			var other Result
			m.meddle = func() { // k.jpg has claimed its keys; k.jpg.webp claims and writes them all now
				if other, err = p.Upload(ctx, "uploads/k.jpg.webp", webp.Data, nil); err != nil {
					t.Errorf("the other upload: %v", err)
				}
			}
			if _, err := p.Upload(ctx, "uploads/k.jpg", photo, nil); !errors.Is(err, ErrKeyTaken) {
				t.Fatalf("the upload that found its key taken on writing: %v, want ErrKeyTaken", err)
			}
			if _, err := st.Head(ctx, "uploads/k.jpg"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("the refused upload's original stayed: %v", err)
			}
			for _, o := range other.Outputs {
				obj, err := st.Head(ctx, o.Key)
				if err != nil || obj.ETag != o.ETag || obj.Metadata[MetaSourceKey] != escapeKey("uploads/k.jpg.webp") {
					t.Errorf("%s: %v %v, want the other original's output %s", o.Key, obj.ETag, err, o.ETag)
				}
			}
			for _, o := range mustList(t, st, "resized/") {
				if obj, err := st.Head(ctx, o.Key); err != nil || obj.Metadata[MetaSourceKey] != escapeKey("uploads/k.jpg.webp") {
					t.Errorf("%s left by the refused upload (%v)", o.Key, err)
				}
			}
		})
	}
}

func mustList(t *testing.T, s Store, prefix string) []storage.Object {
	t.Helper()
	l, ok := s.(interface {
		List(context.Context, string, int) ([]storage.Object, error)
	})
	if !ok {
		t.Fatal("the store does not list")
	}
	objs, err := l.List(t.Context(), prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// Two originals can have one output key (a.jpg's WebP variant and the
// WebP original a.jpg.webp's are both a.jpg.webp): the first keeps it and
// the other is refused (TestOutputKeyTaken), and removing the other leaves
// the first's output.
func TestRemoveLeavesAnotherOriginalsOutput(t *testing.T) {
	d := dirStore(t)
	cfg := testConfig(t)
	var err error
	if cfg.Variants, err = ParseVariants("thumb:64x64:cover:webp", 8192); err != nil {
		t.Fatal(err)
	}
	pl, err := New(cfg, d, d, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	webp, err := pl.proc.Process(ctx, imagetest.Photo(t), imageproc.Options{Width: 320, Format: imageproc.FormatWebP})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		key  string
		data []byte
		want Status
	}{{"uploads/a.jpg.webp", webp.Data, StatusProcessed}, {"uploads/a.jpg", imagetest.Photo(t), StatusRejected}} {
		obj, err := d.Put(ctx, o.key, o.data, storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := pl.Run(ctx, o.key, obj.ETag); err != nil || res.Status != o.want {
			t.Fatalf("%s: %+v %v, want %s", o.key, res, err, o.want)
		}
	}
	if err := d.Delete(ctx, "uploads/a.jpg"); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Remove(ctx, "uploads/a.jpg"); err != nil {
		t.Fatal(err)
	}
	h, err := d.Head(ctx, "resized/thumb/a.jpg.webp")
	if err != nil || h.Metadata[MetaSourceKey] != "uploads/a.jpg.webp" {
		t.Fatalf("a.jpg.webp's thumbnail: %v %v", h.Metadata, err)
	}
}

// An original whose key does not say its outputs' format (no extension,
// one that lies, an image with alpha whose outputs are PNG) is current
// once made: a second run, or a reconcile, does not make it again.
func TestCurrentWhateverTheKeySays(t *testing.T) {
	d := dirStore(t)
	cs := &counting{Store: d}
	pl, err := New(testConfig(t), cs, cs, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	alpha := image.NewNRGBA(image.Rect(0, 0, 64, 48)) // transparent: outputs keep alpha, as PNG
	for key, data := range map[string][]byte{
		"uploads/no-extension":  imagetest.Photo(t),
		"uploads/lies.png":      imagetest.Photo(t),
		"uploads/alpha.jpg":     encodePNGImage(t, alpha),
		"uploads/plain.jpg":     imagetest.Photo(t),
		"uploads/a/b/c/d/e.jpg": imagetest.Photo(t),
	} {
		obj, err := d.Put(ctx, key, data, storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res, err := pl.Run(ctx, key, obj.ETag); err != nil || res.Status != StatusProcessed {
			t.Fatalf("%s: %+v %v", key, res, err)
		}
		before := cs.gets.Load()
		if res, err := pl.Run(ctx, key, obj.ETag); err != nil || res.Status != StatusUpToDate {
			t.Errorf("%s again: %s %v, want up to date", key, res.Status, err)
		}
		if n := cs.gets.Load() - before; n > 1 {
			t.Errorf("%s again: %d reads, want at most the manifest's", key, n)
		}
	}
}

func encodePNGImage(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// New names every part it lacks.
func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{InputPrefix: "uploads/", OutputPrefix: "resized/"}, nil, nil, nil)
	if err == nil {
		t.Fatal("New accepted no parts")
	}
	for _, name := range []string{"Variants", "input store", "output store", "processor"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
}
