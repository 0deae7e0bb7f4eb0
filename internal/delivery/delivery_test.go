package delivery

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/jpeg"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	_ "golang.org/x/image/webp" // decode the WebP presets

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

func TestMain(m *testing.M) {
	imageproc.ServeWorkerIfAsked()
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

// counting is the real processor, counting its renders.
type counting struct {
	*imageproc.Processor
	renders atomic.Int32
	// during, when set, runs once in the next render, before it is made:
	// what happens elsewhere meanwhile.
	during atomic.Pointer[func()]
}

func (c *counting) Process(ctx context.Context, b []byte, o imageproc.Options) (*imageproc.Result, error) {
	c.renders.Add(1)
	if fn := c.during.Swap(nil); fn != nil {
		(*fn)()
	}
	return c.Processor.Process(ctx, b, o)
}

// invalidations records what a CDN was told, and fails while fail is set:
// the one fake, for the CDN's error path.
type invalidations struct {
	mu    sync.Mutex
	paths []string
	fail  bool
}

func (v *invalidations) Invalidate(_ context.Context, paths []string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.fail {
		return errors.New("CDN down")
	}
	v.paths = append(v.paths, paths...)
	return nil
}

func (v *invalidations) take() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.paths
	v.paths = nil
	slices.Sort(p)
	return p
}

type fixture struct {
	svc   *Service
	store Cache
	proc  *counting
	pl    *pipeline.Pipeline
	cdn   *invalidations
}

// newFixture serves from one store (a directory, or MinIO's bucket) with
// the real processor, gate included, and a pipeline for the presets.
func newFixture(t *testing.T, st Cache, concurrency, queue int) *fixture {
	t.Helper()
	return newFixtureTimeout(t, st, concurrency, queue, 30*time.Second)
}

// newFixtureTimeout is newFixture with PROCESS_TIMEOUT set to timeout.
func newFixtureTimeout(t *testing.T, st Cache, concurrency, queue int, timeout time.Duration) *fixture {
	t.Helper()
	return newFixtureQualities(t, st, concurrency, queue, timeout, nil)
}

// newFixtureQualities is newFixtureTimeout with default qualities (the
// JPEG_QUALITY settings) given to the processor and to delivery, as the
// server gives them.
func newFixtureQualities(t *testing.T, st Cache, concurrency, queue int, timeout time.Duration, qualities map[imageproc.Format]int) *fixture {
	t.Helper()
	p, err := imageproc.New(imageproc.Config{Formats: imageproc.DefaultInputFormats, MaxPixels: 50_000_000,
		MaxDimension: 8192, MaxJPEGScans: 64, MaxFrames: 500, Concurrency: concurrency, QueueSize: queue,
		QueueTimeout: 10 * time.Second, Timeout: timeout, Qualities: qualities}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	vs, err := pipeline.ParseVariants("thumb:100x100:cover,small:300x0:webp", 8192)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
		Variants: vs, MaxSourceBytes: 32 << 20}, st, st, p)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st, proc: &counting{Processor: p}, pl: pl, cdn: &invalidations{}}
	f.svc, err = New(Config{Prefixes: []string{"uploads/"}, CachePrefix: "resized/_cache/", CacheControl: "public, max-age=300",
		ETagTTL: time.Minute, FailureTTL: time.Minute, MaxSourceBytes: 32 << 20, RenderTimeout: time.Minute, Qualities: qualities},
		Deps{Sources: st, Cache: st, Renderer: f.proc, Presets: pl, Invalidator: f.cdn, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.svc.Wait)
	return f
}

func dirStore(t *testing.T) Cache {
	d, err := storage.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func s3Store(t *testing.T) Cache {
	srv := s3test.Start(t)
	s, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) put(t *testing.T, key string, data []byte) string {
	t.Helper()
	obj, err := f.store.Put(t.Context(), key, data, storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(obj.ETag, `"`)
}

// req is a request for key with the options of a query.
func req(t *testing.T, key, query, path string) Request {
	t.Helper()
	q, err := url.ParseQuery(query)
	if err != nil {
		t.Fatal(err)
	}
	o, err := imageproc.ParseOptions(q, 8192)
	if err != nil {
		t.Fatal(err)
	}
	return Request{Key: key, Options: o, Path: path}
}

func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func width(t *testing.T, b []byte) int {
	t.Helper()
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Width
}

// A miss renders and keeps; the same options in another spelling are a
// hit on the same image, with the same ETag, decoding nothing; a HEAD
// reads no body.
func TestHitAndMiss(t *testing.T) {
	for name, st := range map[string]func(*testing.T) Cache{"dir": dirStore, "s3": s3Store} {
		t.Run(name, func(t *testing.T) {
			if name == "s3" && testing.Short() {
				t.Skip("long: run without -short (make test runs it)")
			}
			f := newFixture(t, st(t), 2, 4)
			f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
			first, err := f.svc.Serve(t.Context(), req(t, "uploads/cats/tom.jpg", "width=320&quality=70", "/a"))
			if err != nil {
				t.Fatal(err)
			}
			if first.Outcome != Rendered || width(t, first.Data) != 320 || first.ContentType != "image/jpeg" ||
				first.ETag != digestETag(first.Data) || first.CacheControl != "public, max-age=300" {
				t.Fatalf("first: %s %d bytes %s %s %q", first.Outcome, len(first.Data), first.ContentType, first.ETag, first.CacheControl)
			}
			// The write to the cache follows the answer: wait for it.
			f.svc.Wait()
			second, err := f.svc.Serve(t.Context(), req(t, "uploads/cats/tom.jpg", "quality=70&width=320&fit=inside&dpr=1", "/b"))
			if err != nil {
				t.Fatal(err)
			}
			if second.Outcome != Hit || second.ETag != first.ETag || !bytes.Equal(second.Data, first.Data) ||
				!second.LastModified.Equal(first.LastModified.Truncate(time.Second)) || f.proc.renders.Load() != 1 {
				t.Fatalf("second: %s %s %v (first %v), %d renders", second.Outcome, second.ETag, second.LastModified, first.LastModified, f.proc.renders.Load())
			}
			r := req(t, "uploads/cats/tom.jpg", "width=320&quality=70", "/a")
			r.DescribeOnly = true
			head, err := f.svc.Serve(t.Context(), r)
			if err != nil || head.Data != nil || head.ETag != first.ETag || head.ContentType != "image/jpeg" {
				t.Fatalf("describe only: %v %d bytes %s", err, len(head.Data), head.ETag)
			}
		})
	}
}

// A derived image is the image of its options under the default quality
// that applies to them (JPEG_QUALITY, WEBP_QUALITY, AVIF_QUALITY): with
// another default, the same URL is another image, rendered anew rather
// than the old one served from the cache, and going back to the first
// default finds the first image again. A URL that sets its quality, or
// whose format has none, is the same image under either default.
func TestDefaultQualityNamesTheImage(t *testing.T) {
	st := dirStore(t)
	key := "uploads/cats/tom.jpg"
	fixtures := map[int]*fixture{}
	for _, q := range []int{80, 30} {
		fixtures[q] = newFixtureQualities(t, st, 1, 4, 30*time.Second,
			map[imageproc.Format]int{imageproc.FormatJPEG: q, imageproc.FormatWebP: q, imageproc.FormatAVIF: 60})
	}
	fixtures[80].put(t, key, imagetest.Photo(t))
	serve := func(q int, query string) Image {
		t.Helper()
		f := fixtures[q]
		img, err := f.svc.Serve(t.Context(), req(t, key, query, "/"+query))
		if err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		return img
	}
	for _, query := range []string{"width=320", "width=320&format=webp"} {
		at80 := serve(80, query)
		at30 := serve(30, query)
		if at30.Outcome != Rendered || at30.ETag == at80.ETag || len(at30.Data) >= len(at80.Data) {
			t.Errorf("%s with the default quality 30 after 80: %s, %d bytes (%d at 80)", query, at30.Outcome, len(at30.Data), len(at80.Data))
		}
		if back := serve(80, query); back.Outcome != Hit || back.ETag != at80.ETag {
			t.Errorf("%s back at 80: %s %s, want a hit on %s", query, back.Outcome, back.ETag, at80.ETag)
		}
	}
	for _, query := range []string{"width=320&quality=50", "width=320&format=png"} {
		first := serve(80, query)
		if other := serve(30, query); other.Outcome != Hit || other.ETag != first.ETag {
			t.Errorf("%s under another default: %s, want a hit on the same image", query, other.Outcome)
		}
	}
}

// A hundred requests at once for one image that is not cached render it
// once, and the ninety-nine that wait hold no place at the gate: with a
// single place, any of them holding one would be refused.
func TestOneRenderForConcurrentMisses(t *testing.T) {
	f := newFixture(t, dirStore(t), 1, 0)
	f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	outcomes := make(chan Outcome, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img, err := f.svc.Serve(t.Context(), req(t, "uploads/cats/tom.jpg", "width=400", "/p"))
			if err == nil && width(t, img.Data) != 400 {
				err = errors.New("wrong width")
			}
			errs <- err
			outcomes <- img.Outcome
		}()
	}
	wg.Wait()
	close(errs)
	close(outcomes)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := map[Outcome]int{}
	for o := range outcomes {
		n[o]++
	}
	if f.proc.renders.Load() != 1 || n[Rendered] != 1 || n[Shared]+n[Hit] != 99 {
		t.Fatalf("%d renders; outcomes %v", f.proc.renders.Load(), n)
	}
}

// A request that missed the cache just before another request's render
// kept the image and ended joins no flight: it starts one of its own,
// which finds the image kept and reads it rather than rendering again.
func TestAMissJustBeforeARenderEnded(t *testing.T) {
	f := newFixture(t, dirStore(t), 1, 0)
	etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=400", "/p")
	if img, err := f.svc.Serve(t.Context(), r); err != nil || img.Outcome != Rendered {
		t.Fatalf("first: %v %s", err, img.Outcome)
	}
	f.svc.Wait() // kept, and its flight gone
	// The second request's look in the cache came before that: it goes
	// on to render.
	img, err := f.svc.render(t.Context(), f.svc.entry(r.Key, etag, r.Options), false)
	if err != nil || img.Outcome != Hit || width(t, img.Data) != 400 {
		t.Fatalf("second: %v %s", err, img.Outcome)
	}
	if n := f.proc.renders.Load(); n != 1 {
		t.Fatalf("%d renders, want 1", n)
	}
}

// A derived image whose metadata is not written yet (the local store
// renames the file into place first) is not served as it is, without a
// type or its ETag: the request renders, or joins the render under way.
func TestHalfWrittenEntryIsAMiss(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=150", "/w")
	if _, err := f.store.Put(t.Context(), f.svc.entry("uploads/cats/tom.jpg", etag, r.Options).key, []byte("half"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	img, err := f.svc.Serve(t.Context(), r)
	if err != nil || img.Outcome != Rendered || img.ContentType != "image/jpeg" || width(t, img.Data) != 150 {
		t.Fatalf("%v %s %q", err, img.Outcome, img.ContentType)
	}
}

// Derived images are written without waiting for the disk (they can be
// made again): one that a power loss left shorter than its metadata say,
// or empty, is a miss that renders again, never served as it was left.
func TestTornEntryIsAMiss(t *testing.T) {
	dir := t.TempDir()
	d, err := storage.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, d, 2, 4)
	etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=150", "/w")
	file := filepath.Join(dir, f.svc.entry("uploads/cats/tom.jpg", etag, r.Options).key)
	for i, size := range []int64{-1, 0} { // half, then empty
		if _, err := f.svc.Serve(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if size < 0 {
			size = st.Size() / 2
		}
		if err := os.Truncate(file, size); err != nil {
			t.Fatal(err)
		}
		img, err := f.svc.Serve(t.Context(), r)
		if err != nil || img.Outcome != Rendered || width(t, img.Data) != 150 || img.Size != int64(len(img.Data)) ||
			f.proc.renders.Load() != int32(i+2) {
			t.Fatalf("after truncation to %d bytes: %v %s, %d renders", size, err, img.Outcome, f.proc.renders.Load())
		}
		f.svc.Wait()
	}
}

// A hit takes no place at the gate: with its one place held, a miss is
// refused as busy, and a hit (and a describe-only hit) is served.
func TestHitsBypassTheGate(t *testing.T) {
	f := newFixture(t, dirStore(t), 1, 0)
	f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	if _, err := f.svc.Serve(t.Context(), req(t, "uploads/cats/tom.jpg", "width=200", "/h")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	done, err := f.proc.Gate().Admit()
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if _, err := f.svc.Serve(t.Context(), req(t, "uploads/cats/tom.jpg", "width=201", "/m")); !errors.Is(err, imageproc.ErrBusy) {
		t.Fatalf("a miss with the gate full: %v, want ErrBusy", err)
	}
	for _, describe := range []bool{false, true} {
		r := req(t, "uploads/cats/tom.jpg", "width=200", "/h")
		r.DescribeOnly = describe
		img, err := f.svc.Serve(t.Context(), r)
		if err != nil || img.Outcome != Hit {
			t.Fatalf("a hit with the gate full (describe only %v): %v %s", describe, err, img.Outcome)
		}
	}
}

// A preset whose variant the pipeline stored is served from it, rendering
// nothing; a preset outside the inputs is rendered once into an image of
// its own (apart from the same options spelled out: a preset follows the
// original's focal point); an unknown preset is a bad option.
func TestPresets(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	data := imagetest.Photo(t)
	res, err := f.pl.Upload(t.Context(), "uploads/cats/tom.jpg", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := f.proc.renders.Load()
	img, err := f.svc.Serve(t.Context(), Request{Key: "uploads/cats/tom.jpg", Preset: "small", Path: "/s"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Outcome != Variant || img.ContentType != "image/webp" || img.ETag != res.Outputs[1].ETag || f.proc.renders.Load() != before {
		t.Fatalf("preset: %s %s %s, %d renders", img.Outcome, img.ContentType, img.ETag, f.proc.renders.Load()-before)
	}
	// Outside the inputs there are no variants: the preset is rendered
	// once, and kept.
	f.put(t, "uploads2/x.jpg", data)
	f.svc.cfg.Prefixes = append(f.svc.cfg.Prefixes, "uploads2/")
	for _, want := range []Outcome{Rendered, Hit} {
		if img, err = f.svc.Serve(t.Context(), Request{Key: "uploads2/x.jpg", Preset: "thumb", Path: "/t"}); err != nil || img.Outcome != want {
			t.Fatalf("preset outside the inputs: %v %s, want %s", err, img.Outcome, want)
		}
		f.svc.Wait()
	}
	if _, err := f.svc.Serve(t.Context(), Request{Key: "uploads/cats/tom.jpg", Preset: "huge"}); !errors.Is(err, imageproc.ErrBadOption) {
		t.Fatalf("unknown preset: %v", err)
	}
}

// A preset is what the pipeline's variant of the original is: served from
// the variant where the original's manifest says it is when the key does
// not predict it (no extension), and, rendered when the variant is
// missing, cut around the original's focal point as the variant was, in
// an image apart from the same options spelled out (cut at the centre). A
// pinned preset's answer is not immutable: the preset may be redefined.
func TestPresetsFollowTheOriginal(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	ctx := t.Context()
	// The red marker at the right edge: a centre crop of the 2:1 image
	// misses it, a crop around the focal point (0.95, 0.5) holds it.
	src := imagetest.Marked(t, 400, 200, image.Rect(370, 90, 390, 110))
	res, err := f.pl.Upload(ctx, "uploads/marked", src, pipeline.FocusMetadata(&imageproc.Point{X: 0.95, Y: 0.5}))
	if err != nil {
		t.Fatal(err)
	}
	etag := strings.Trim(res.ETag, `"`)
	before := f.proc.renders.Load()
	img, err := f.svc.Serve(ctx, Request{Key: "uploads/marked", Preset: "thumb", Path: "/p"})
	if err != nil || img.Outcome != Variant || f.proc.renders.Load() != before {
		t.Fatalf("preset of an original without an extension: %v %s, %d renders", err, img.Outcome, f.proc.renders.Load()-before)
	}
	if _, _, _, ok := imagetest.MarkerCentre(t, img.Data); !ok {
		t.Fatal("the stored variant is not cut around the focal point")
	}
	if err := st.Delete(ctx, res.Outputs[0].Key); err != nil {
		t.Fatal(err)
	}
	for i, r := range []Request{{Key: "uploads/marked", Preset: "thumb", Path: "/p"},
		{Key: "uploads/marked", Preset: "thumb", Version: etag, Path: "/p/v"}} {
		img, err := f.svc.Serve(ctx, r)
		f.svc.Wait()
		if err != nil || img.Outcome != []Outcome{Rendered, Hit}[i] {
			t.Fatalf("%+v: %v %s", r, err, img.Outcome)
		}
		if _, _, _, ok := imagetest.MarkerCentre(t, img.Data); !ok {
			t.Errorf("%+v: the render is not cut around the original's focal point", r)
		}
		if img.CacheControl != "public, max-age=300" {
			t.Errorf("%+v: Cache-Control %q, want the unpinned one", r, img.CacheControl)
		}
	}
	img, err = f.svc.Serve(ctx, req(t, "uploads/marked", "width=100&height=100&fit=cover", "/o"))
	if err != nil || img.Outcome != Rendered {
		t.Fatalf("the same options spelled out: %v %s, want an image of their own", err, img.Outcome)
	}
	if _, _, _, ok := imagetest.MarkerCentre(t, img.Data); ok {
		t.Error("the options spelled out were cut around the focal point")
	}
}

// The same picture uploaded again with another focal point keeps its
// ETag, but not its presets: the stored variant of the old focus is not
// served for the new one, the preset's image rendered around the old focus
// is another image than the one around the new, and the settle of the
// upload invalidates the preset's path at the CDN.
func TestPresetsFollowANewFocus(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	ctx := t.Context()
	const key = "uploads/marked"
	// The red marker at the right edge: a crop around (0.95, 0.5) holds
	// it, one around (0.05, 0.5) misses it.
	src := imagetest.Marked(t, 400, 200, image.Rect(370, 90, 390, 110))
	right, left := pipeline.FocusMetadata(&imageproc.Point{X: 0.95, Y: 0.5}), pipeline.FocusMetadata(&imageproc.Point{X: 0.05, Y: 0.5})
	res, err := f.pl.Upload(ctx, key, src, right)
	if err != nil {
		t.Fatal(err)
	}
	serve := func(want Outcome, marked bool) {
		t.Helper()
		img, err := f.svc.Serve(ctx, Request{Key: key, Preset: "thumb", Path: "/p"})
		f.svc.Wait()
		if err != nil || img.Outcome != want {
			t.Fatalf("preset: %v %s, want %s", err, img.Outcome, want)
		}
		if _, _, _, ok := imagetest.MarkerCentre(t, img.Data); ok != marked {
			t.Fatalf("preset (%s): marker seen %v, want %v", img.Outcome, ok, marked)
		}
	}
	serve(Variant, true)
	if err := st.Delete(ctx, res.Outputs[0].Key); err != nil {
		t.Fatal(err)
	}
	serve(Rendered, true)
	serve(Hit, true)
	if _, err := f.pl.Run(ctx, key, ""); err != nil { // the variant made again
		t.Fatal(err)
	}
	serve(Variant, true)
	f.cdn.take()

	// Stored again, with the other focus, straight to storage: no run
	// yet, and no settle; the ETag is remembered no longer. Neither the
	// stored variant nor the render of the old focus is served for it.
	data, _, err := st.Get(ctx, key, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := st.Put(ctx, key, data, storage.PutOptions{ContentType: "image/png", Metadata: left})
	if err != nil || strings.Trim(again.ETag, `"`) != strings.Trim(res.ETag, `"`) {
		t.Fatalf("the same bytes stored again: ETag %s, was %s (%v)", again.ETag, res.ETag, err)
	}
	f.svc.versions.Forget(key)
	serve(Rendered, false)
	serve(Hit, false)

	// Through the pipeline, with the settle that follows: the preset's
	// path is invalidated, and its stored variant (of the new focus) served.
	res, err = f.pl.Upload(ctx, key, src, right)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Settle(ctx, key, "", res); err != nil {
		t.Fatal(err)
	}
	if got := f.cdn.take(); !slices.Contains(got, "/p") {
		t.Errorf("invalidated %q, want the preset's path /p", got)
	}
	serve(Variant, true)
	if err := st.Delete(ctx, res.Outputs[0].Key); err != nil {
		t.Fatal(err)
	}
	serve(Hit, true) // the render around this focus, kept before
}

// A preset served from its stored variant says when the original was
// stored (Last-Modified), as a render does, not when the variant was last
// written: that changes with every run that writes it again.
func TestPresetLastModifiedIsTheOriginals(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	ctx := t.Context()
	if _, err := f.pl.Upload(ctx, "uploads/cats/tom.jpg", imagetest.Photo(t), nil); err != nil {
		t.Fatal(err)
	}
	orig, err := st.Head(ctx, "uploads/cats/tom.jpg")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // the variants, written again, are then younger
	vs, err := pipeline.ParseVariants("thumb:100x100:cover?quality=70;small:300x0:webp", 8192)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
		Variants: vs, MaxSourceBytes: 32 << 20}, st, st, f.proc.Processor)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := pl.Run(ctx, "uploads/cats/tom.jpg", ""); err != nil || res.Status != pipeline.StatusProcessed {
		t.Fatalf("run: %s %v", res.Status, err)
	}
	f.svc.d.Presets = pl
	img, err := f.svc.Serve(ctx, Request{Key: "uploads/cats/tom.jpg", Preset: "thumb", Path: "/t"})
	if err != nil || img.Outcome != Variant {
		t.Fatalf("%v %s", err, img.Outcome)
	}
	if !img.LastModified.Equal(orig.LastModified) {
		t.Errorf("Last-Modified %v, want the original's %v", img.LastModified, orig.LastModified)
	}
}

// After VARIANTS changes, a preset's stored output, made by the old
// definition, is not served for it: the preset is rendered as it is now
// defined.
func TestPresetOfAnOlderDefinition(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	if _, err := f.pl.Upload(t.Context(), "uploads/cats/tom.jpg", imagetest.Photo(t), nil); err != nil {
		t.Fatal(err)
	}
	vs, err := pipeline.ParseVariants("thumb:100x100:cover,small:250x0:webp", 8192)
	if err != nil {
		t.Fatal(err)
	}
	if f.svc.d.Presets, err = pipeline.New(pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
		Variants: vs, MaxSourceBytes: 32 << 20}, st, st, f.proc.Processor); err != nil {
		t.Fatal(err)
	}
	img, err := f.svc.Serve(t.Context(), Request{Key: "uploads/cats/tom.jpg", Preset: "small", Path: "/s"})
	if err != nil || img.Outcome != Rendered || width(t, img.Data) != 250 {
		t.Fatalf("%v %s", err, img.Outcome)
	}
	// The unchanged one is still served from its stored output.
	if img, err := f.svc.Serve(t.Context(), Request{Key: "uploads/cats/tom.jpg", Preset: "thumb", Path: "/t"}); err != nil || img.Outcome != Variant {
		t.Fatalf("thumb: %v %s", err, img.Outcome)
	}
}

// When a preset's definition changes, a CDN still holds the old image
// under the preset's path: the purge that follows the original's next
// processing (the webhook's, or an upload's) invalidates exactly the
// paths of presets redefined or removed since they were served, and keeps
// the image, which a URL spelling its options out still finds.
func TestPurgeOfARedefinedPreset(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	ctx := t.Context()
	res, err := f.pl.Upload(ctx, "uploads/cats/tom.jpg", imagetest.Photo(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	etag := strings.Trim(res.ETag, `"`)
	serve := func(r Request) Image {
		t.Helper()
		img, err := f.svc.Serve(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		return img
	}
	serve(Request{Key: "uploads/cats/tom.jpg", Preset: "thumb", Path: "/p/thumb"})
	serve(Request{Key: "uploads/cats/tom.jpg", Preset: "small", Path: "/p/small"})
	serve(req(t, "uploads/cats/tom.jpg", "width=100&height=100&fit=cover", "/o/100"))
	redefine := func(def string) {
		t.Helper()
		vs, err := pipeline.ParseVariants(def, 8192)
		if err != nil {
			t.Fatal(err)
		}
		if f.svc.d.Presets, err = pipeline.New(pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
			Variants: vs, MaxSourceBytes: 32 << 20}, st, st, f.proc.Processor); err != nil {
			t.Fatal(err)
		}
	}
	purge := func(want string) {
		t.Helper()
		out, err := f.svc.Purge(ctx, "uploads/cats/tom.jpg", etag)
		if got := strings.Join(out.Paths, " "); err != nil || got != want || out.Images != 0 || strings.Join(f.cdn.take(), " ") != want {
			t.Fatalf("purge: %v %+v, want paths %q and no image deleted", err, out, want)
		}
	}
	purge("") // nothing changed
	redefine("thumb:120x120:cover,small:300x0:webp")
	purge("/p/thumb")
	purge("") // once
	if img := serve(req(t, "uploads/cats/tom.jpg", "fit=cover&height=100&width=100", "/o/100")); img.Outcome != Hit {
		t.Fatalf("the old definition's image, asked for by its options: %s", img.Outcome)
	}
	if img := serve(Request{Key: "uploads/cats/tom.jpg", Preset: "thumb", Path: "/p/thumb"}); width(t, img.Data) != 120 {
		t.Fatalf("thumb after: %d wide", width(t, img.Data))
	}
	redefine("thumb:120x120:cover")
	purge("/p/small")
	purge("")
}

// An original replaced while an unpinned URL's image is being rendered
// from it (the purge that follows runs on another task, which cannot wait
// for this render): the render's image is neither answered (a CDN, told to
// drop the path already, would keep the old picture) nor kept; the new
// version is rendered and served.
func TestOriginalReplacedDuringARender(t *testing.T) {
	for name, st := range map[string]Cache{"dir": dirStore(t), "s3": s3Store(t)} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, st, 2, 4)
			ctx := t.Context()
			wide := imagetest.Marked(t, 400, 200, image.Rect(0, 0, 1, 1))
			square := imagetest.Marked(t, 300, 300, image.Rect(0, 0, 1, 1))
			old := f.put(t, "uploads/r.png", wide)
			replace := func() { f.put(t, "uploads/r.png", square) }
			f.proc.during.Store(&replace)
			img, err := f.svc.Serve(ctx, req(t, "uploads/r.png", "width=100", "/r"))
			f.svc.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if size, _, _, _ := imagetest.MarkerCentre(t, img.Data); size.Y != 100 {
				t.Fatalf("served %dx%d: the version replaced during the render", size.X, size.Y)
			}
			kept, err := st.List(ctx, "resized/_cache/uploads/r.png/"+etagSegment(old)+"/", 0)
			if err != nil || len(kept) != 0 {
				t.Fatalf("kept for the replaced version: %v %v", kept, err)
			}
			// Replaced during the second render too: a retry later.
			second := func() { f.put(t, "uploads/r.png", wide) }
			first := func() {
				f.put(t, "uploads/r.png", imagetest.Marked(t, 200, 300, image.Rect(0, 0, 1, 1)))
				f.proc.during.Store(&second)
			}
			f.proc.during.Store(&first)
			if _, err := f.svc.Serve(ctx, req(t, "uploads/r.png", "width=90", "/r2")); !errors.Is(err, imageproc.ErrBusy) {
				t.Fatalf("replaced during both renders: %v, want ErrBusy", err)
			}
			f.svc.Wait()
		})
	}
}

// putHook runs a function once, just before the next derived image (not
// a marker) is written: what another task does while that write is on
// its way.
type putHook struct {
	Cache
	before atomic.Pointer[func()]
}

func (p *putHook) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if strings.HasPrefix(key, "resized/_cache/") && !strings.Contains(key, markerInfix) {
		if fn := p.before.Swap(nil); fn != nil {
			(*fn)()
		}
	}
	return p.Cache.Put(ctx, key, data, o)
}

// An original replaced or deleted, and purged by another task (which
// cannot wait for this one's renders), while a render of its old version
// is being written to the cache: the image is not left where the purge
// has already looked, to be served to the URLs pinned to that version (a
// deleted picture among them) until the cache expires it. It is deleted
// once written, and the pinned URL is a 404 as the purge promises.
func TestRenderWrittenAfterAPurgeElsewhere(t *testing.T) {
	for name, st := range map[string]func(*testing.T) Cache{"dir": dirStore, "s3": s3Store} {
		t.Run(name, func(t *testing.T) {
			hooked := &putHook{Cache: st(t)}
			f := newFixture(t, hooked, 2, 4)
			elsewhere := newFixture(t, hooked.Cache, 1, 2) // another task, on the same store
			ctx := t.Context()
			for _, c := range []struct {
				name            string
				pinned, deleted bool
			}{
				{"pinned-deleted", true, true},
				{"pinned-replaced", true, false},
				{"unpinned-deleted", false, true},
				{"unpinned-replaced", false, false},
			} {
				key := "uploads/" + c.name + ".jpg"
				old := f.put(t, key, testJPEG(t, 200, 100))
				change := func() {
					keep := ""
					if c.deleted {
						if err := hooked.Cache.Delete(ctx, key); err != nil {
							t.Error(err)
						}
					} else {
						keep = f.put(t, key, testJPEG(t, 120, 80))
					}
					if _, err := elsewhere.svc.Purge(ctx, key, keep); err != nil {
						t.Error(err)
					}
				}
				hooked.before.Store(&change)
				r := req(t, key, "width=50", "/"+c.name)
				if c.pinned {
					r.Version = old
				}
				if _, err := f.svc.Serve(ctx, r); err != nil {
					t.Fatalf("%s: the render: %v", c.name, err)
				}
				f.svc.Wait()
				if hooked.before.Load() != nil {
					t.Fatalf("%s: the render wrote nothing", c.name)
				}
				objs, err := hooked.Cache.List(ctx, "resized/_cache/"+key+"/"+etagSegment(old)+"/", 0)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range objs {
					if !strings.Contains(o.Key, markerInfix) {
						t.Errorf("%s: an image of the version purged elsewhere is kept: %s", c.name, o.Key)
					}
				}
				// Asked again (this task still remembers the old ETag as
				// the current one): the old picture is served no more.
				img, err := f.svc.Serve(ctx, r)
				f.svc.Wait()
				switch {
				case c.pinned || c.deleted:
					if !errors.Is(err, storage.ErrNotFound) {
						t.Errorf("%s: asked again: %v %s, want not found", c.name, err, img.Outcome)
					}
				case err != nil:
					t.Errorf("%s: asked again: %v", c.name, err)
				default:
					if cfg, _, err := image.DecodeConfig(bytes.NewReader(img.Data)); err != nil || cfg.Height != 33 {
						t.Errorf("%s: asked again: %v, %d high (%s), want the new version's 33", c.name, err, cfg.Height, img.Outcome)
					}
				}
			}
		})
	}
}

// With a CDN in front of the outputs too, settling an original replaced
// invalidates exactly the paths of the variants written over (a new one's
// none), at their public URLs' paths, "+" escaped as the URLs have it;
// without InvalidateVariants, none.
func TestSettleInvalidatesVariants(t *testing.T) {
	st := dirStore(t)
	f := newFixture(t, st, 2, 4)
	ctx := t.Context()
	vs, err := pipeline.ParseVariants("thumb:100x100:cover,small:300x0:webp", 8192)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pipeline.New(pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
		Variants: vs, MaxSourceBytes: 32 << 20, PublicBaseURL: "https://cdn.example.com/"}, st, st, f.proc.Processor)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.d.Presets = pl
	photo := imagetest.Photo(t)
	settle := func(data []byte) []string {
		t.Helper()
		res, err := pl.Upload(ctx, "uploads/a+b.jpg", data, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Settle(ctx, "uploads/a+b.jpg", "", res); err != nil {
			t.Fatal(err)
		}
		return f.cdn.take()
	}
	if got := settle(photo); len(got) != 0 {
		t.Fatalf("without InvalidateVariants: %v", got)
	}
	f.svc.cfg.InvalidateVariants = true
	if got := settle(photo); strings.Join(got, " ") != "/resized/small/a%2Bb.jpg.webp /resized/thumb/a%2Bb.jpg" {
		t.Fatalf("a replaced original: invalidated %v", got)
	}
	// The CDN refuses (too many invalidations in progress): the settling
	// fails, and its retry, which finds the original up to date and knows
	// of no variant written, still invalidates them.
	res, err := pl.Upload(ctx, "uploads/a+b.jpg", photo, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.cdn.mu.Lock()
	f.cdn.fail = true
	f.cdn.mu.Unlock()
	if err := f.svc.Settle(ctx, "uploads/a+b.jpg", "", res); err == nil {
		t.Fatal("settled while the CDN refused")
	}
	f.cdn.mu.Lock()
	f.cdn.fail = false
	f.cdn.mu.Unlock()
	again, err := pl.Run(ctx, "uploads/a+b.jpg", "")
	if err != nil || again.Status != pipeline.StatusUpToDate || len(again.Stale) != 0 {
		t.Fatalf("the retry's run: %s %v %v", again.Status, again.Stale, err)
	}
	if err := f.svc.Settle(ctx, "uploads/a+b.jpg", "", again); err != nil {
		t.Fatal(err)
	}
	if got := f.cdn.take(); strings.Join(got, " ") != "/resized/small/a%2Bb.jpg.webp /resized/thumb/a%2Bb.jpg" {
		t.Fatalf("the retry invalidated %v", got)
	}
	if err := f.svc.Settle(ctx, "uploads/a+b.jpg", "", again); err != nil || len(f.cdn.take()) != 0 {
		t.Fatalf("a second retry invalidated again (%v)", err)
	}
	if err := st.Delete(ctx, "uploads/a+b.jpg"); err != nil {
		t.Fatal(err)
	}
	res, err = pl.Remove(ctx, "uploads/a+b.jpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Settle(ctx, "uploads/a+b.jpg", "", res); err != nil {
		t.Fatal(err)
	}
	if got := f.cdn.take(); strings.Join(got, " ") != "/resized/small/a%2Bb.jpg.webp /resized/thumb/a%2Bb.jpg" {
		t.Fatalf("a deleted original: invalidated %v", got)
	}
}

func TestNotServed(t *testing.T) {
	f := newFixture(t, dirStore(t), 1, 1)
	for _, key := range []string{"private/a.jpg", "resized/_cache/uploads/a.jpg/abc/0123"} {
		if _, err := f.svc.Serve(t.Context(), req(t, key, "width=10", "/x")); !errors.Is(err, ErrNotServed) {
			t.Errorf("%s: %v", key, err)
		}
	}
	if _, err := f.svc.Serve(t.Context(), req(t, "uploads/none.jpg", "width=10", "/x")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("missing original: %v", err)
	}
}

// An original whose key leaves room in the store for its derived image's
// key, but not for the longer key of the marker of its path (with a CDN),
// is refused as a key too long for its derived images is, before any
// render: served, each answer would be uncacheable, no marker written.
// Its presets too. A key a little shorter is served, and cacheable.
func TestKeyTooLongForItsMarkers(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	ctx := t.Context()
	folders := strings.Repeat(strings.Repeat("a", 200)+"/", 4)
	for _, c := range []struct {
		name  string // 116 + ".jpg" bytes: a key of 932, whose image's key is 1,013 and its marker's 1,035
		fits  bool
		query string
	}{
		{strings.Repeat("b", 116), false, "width=32"},
		{strings.Repeat("b", 116), false, "preset=thumb"},
		{strings.Repeat("b", 90), true, "width=32"},
		{strings.Repeat("b", 90), true, "preset=thumb"},
	} {
		key := "uploads/" + folders + c.name + ".jpg"
		f.put(t, key, testJPEG(t, 64, 48))
		r := req(t, key, "width=32", "/img/s/"+c.query+"/"+key)
		if c.query == "preset=thumb" {
			r.Options, r.Preset = imageproc.Options{}, "thumb"
		}
		before := f.proc.renders.Load()
		img, err := f.svc.Serve(ctx, r)
		f.svc.Wait()
		renders := f.proc.renders.Load() - before
		switch {
		case !c.fits && (!errors.Is(err, storage.ErrInvalidKey) || renders != 0):
			t.Errorf("a key of %d bytes, %s: %v, %d renders (Cache-Control %q), want refused before a render", len(key), c.query, err, renders, img.CacheControl)
		case c.fits && (err != nil || img.CacheControl != "public, max-age=300"):
			t.Errorf("a key of %d bytes, %s: %v, Cache-Control %q", len(key), c.query, err, img.CacheControl)
		}
	}
}

// A pinned URL serves its version only, immutable; once the original is
// replaced, the old version is gone (404) and the unpinned URL shows the
// new one; Purge deletes the old version's images and invalidates exactly
// the paths they were served under, every spelling of them.
func TestVersionsAndPurge(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 8)
	ctx := t.Context()
	v1 := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	serve := func(query, path, version string) (Image, error) {
		r := req(t, "uploads/cats/tom.jpg", query, path)
		r.Version = version
		img, err := f.svc.Serve(ctx, r)
		f.svc.Wait()
		return img, err
	}
	for _, c := range []struct{ query, path, version string }{
		{"width=200", "/img/s1/width=200/uploads/cats/tom.jpg", ""},
		{"width=200", "/img/s2/width=200/uploads/cats/tom.jpg", ""}, // another signature: another path
		{"width=200", "/img/s3/v=" + v1 + "&width=200/uploads/cats/tom.jpg", v1},
		{"width=300", "/img/s4/width=300/uploads/cats/tom.jpg", ""},
	} {
		img, err := serve(c.query, c.path, c.version)
		if err != nil {
			t.Fatal(err)
		}
		if pinned := c.version != ""; pinned != (img.CacheControl == pinnedCacheControl) {
			t.Fatalf("%s: Cache-Control %q", c.path, img.CacheControl)
		}
	}
	if _, err := serve("width=200", "/img/s5/v=0123&width=200/uploads/cats/tom.jpg", "0123"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a version never stored: %v", err)
	}
	// Nothing of the current version goes.
	if p, err := f.svc.Purge(ctx, "uploads/cats/tom.jpg", v1); err != nil || p.Images != 0 || len(f.cdn.take()) != 0 {
		t.Fatalf("purge keeping the current version: %+v %v", p, err)
	}

	// Replaced: a smaller photo.
	v2 := f.put(t, "uploads/cats/tom.jpg", testJPEG(t, 150, 100))
	f.cdn.fail = true
	if _, err := f.svc.Purge(ctx, "uploads/cats/tom.jpg", v2); err == nil {
		t.Fatal("purge with the CDN down succeeded")
	}
	f.cdn.fail = false
	p, err := f.svc.Purge(ctx, "uploads/cats/tom.jpg", v2) // the retry finds the paths still
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/img/s1/width=200/uploads/cats/tom.jpg", "/img/s2/width=200/uploads/cats/tom.jpg",
		"/img/s3/v=" + v1 + "&width=200/uploads/cats/tom.jpg", "/img/s4/width=300/uploads/cats/tom.jpg"}
	if got := f.cdn.take(); !slices.Equal(got, want) || !slices.Equal(p.Paths, want) {
		t.Fatalf("invalidated %v\nwant %v", got, want)
	}
	if _, err := serve("width=200", "/img/s3/v="+v1+"&width=200/uploads/cats/tom.jpg", v1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the replaced version: %v", err)
	}
	img, err := serve("width=200", "/img/s1/width=200/uploads/cats/tom.jpg", "")
	if err != nil || width(t, img.Data) != 150 || img.Outcome != Rendered {
		t.Fatalf("after the replacement: %v %s", err, img.Outcome)
	}

	// Deleted: everything goes, the new version's paths included.
	if err := f.store.Delete(ctx, "uploads/cats/tom.jpg"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Purge(ctx, "uploads/cats/tom.jpg", ""); err != nil {
		t.Fatal(err)
	}
	if got := f.cdn.take(); !slices.Equal(got, want[:1]) {
		t.Fatalf("invalidated %v", got)
	}
	if left, _ := f.store.List(ctx, "resized/_cache/", 0); len(left) != 0 {
		t.Fatalf("left in the cache: %v", left)
	}
	if _, err := serve("width=200", "/img/s1/width=200/uploads/cats/tom.jpg", ""); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted original: %v", err)
	}
}

// Settle purges as each pipeline result asks: for an original that
// stands, what other versions left (keeping the result's version, else
// the one asked for); for one rejected or deleted, everything; for any
// other result, nothing.
func TestSettle(t *testing.T) {
	for _, c := range []struct {
		status pipeline.Status
		etag   bool // the result names the version
		want   string
	}{
		{pipeline.StatusProcessed, true, "/old"},
		{pipeline.StatusUpToDate, false, "/old"},
		{pipeline.StatusRejected, false, "/new /old"},
		{pipeline.StatusDeleted, false, "/new /old"},
		{pipeline.StatusSuperseded, false, ""},
		{pipeline.StatusLoopGuard, false, ""},
	} {
		t.Run(string(c.status), func(t *testing.T) {
			f := newFixture(t, dirStore(t), 2, 4)
			ctx := t.Context()
			f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
			if _, err := f.svc.Serve(ctx, req(t, "uploads/cats/tom.jpg", "width=200", "/old")); err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
			v2 := f.put(t, "uploads/cats/tom.jpg", testJPEG(t, 150, 100))
			f.svc.versions.Forget("uploads/cats/tom.jpg")
			if _, err := f.svc.Serve(ctx, req(t, "uploads/cats/tom.jpg", "width=200", "/new")); err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
			res, etag := pipeline.Result{Status: c.status}, `"`+v2+`"`
			if c.etag {
				res.ETag, etag = etag, `"0123"`
			}
			if err := f.svc.Settle(ctx, "uploads/cats/tom.jpg", etag, res); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(f.cdn.take(), " "); got != c.want {
				t.Fatalf("invalidated %q, want %q", got, c.want)
			}
		})
	}
}

// An original whose key continues another's keeps its images when the
// other is purged.
func TestPurgeKeepsLongerKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	f := newFixture(t, s3Store(t), 2, 4) // a directory cannot hold a.jpg and a.jpg/b.jpg
	for _, k := range []string{"uploads/a.jpg", "uploads/a.jpg/b.jpg"} {
		f.put(t, k, imagetest.Photo(t))
		if _, err := f.svc.Serve(t.Context(), req(t, k, "width=50", "/"+k)); err != nil {
			t.Fatal(err)
		}
	}
	f.svc.Wait()
	if _, err := f.svc.Purge(t.Context(), "uploads/a.jpg", ""); err != nil {
		t.Fatal(err)
	}
	if got := f.cdn.take(); !slices.Equal(got, []string{"/uploads/a.jpg"}) {
		t.Fatalf("invalidated %v", got)
	}
	if img, err := f.svc.Serve(t.Context(), req(t, "uploads/a.jpg/b.jpg", "width=50", "/x")); err != nil || img.Outcome != Hit {
		t.Fatalf("the longer key: %v %s", err, img.Outcome)
	}
}

func TestCapAges(t *testing.T) {
	for _, c := range []struct {
		cc   string
		n    int64
		want string
	}{
		{"public, max-age=300", 60, "public, max-age=60"},
		{"public, max-age=300, s-maxage=86400", 600, "public, max-age=300, s-maxage=600"},
		{pinnedCacheControl, 3600, "public, max-age=3600, immutable"},
		{"no-cache", 10, "no-cache, max-age=10"},
		{"public, Max-Age=abc", 5, "public, max-age=5"},
		{"public, max-age=300, stale-while-revalidate=60, Stale-If-Error=86400", 30, "public, max-age=30"},
	} {
		if got := capAges(c.cc, c.n); got != c.want {
			t.Errorf("capAges(%q, %d) = %q, want %q", c.cc, c.n, got, c.want)
		}
	}
}

// A purge invalidates the paths of expiring URLs only while a cache may
// still hold them: one whose expiry passed (by more than the clocks' grace)
// is answered 403 everywhere, and invalidating it would be paid for nothing.
// Its marker goes all the same.
func TestPurgeSkipsExpiredPaths(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 8)
	f.put(t, "uploads/e.jpg", testJPEG(t, 64, 48))
	now := time.Now()
	expiries := map[string]time.Time{
		"/img/a/exp=1&width=20/uploads/e.jpg": now.Add(-time.Hour),
		"/img/b/exp=2&width=20/uploads/e.jpg": now.Add(-expiryGrace - time.Minute),
		"/img/c/exp=3&width=20/uploads/e.jpg": now.Add(-expiryGrace / 2), // a cache's clock may be behind
		"/img/d/exp=4&width=20/uploads/e.jpg": now.Add(time.Hour),
		"/img/e/width=20/uploads/e.jpg":       {},
	}
	for path, exp := range expiries {
		r := req(t, "uploads/e.jpg", "width=20", path)
		r.Expires = exp
		if _, err := f.svc.Serve(t.Context(), r); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
	}
	if _, err := f.svc.Purge(t.Context(), "uploads/e.jpg", ""); err != nil {
		t.Fatal(err)
	}
	want := []string{"/img/c/exp=3&width=20/uploads/e.jpg", "/img/d/exp=4&width=20/uploads/e.jpg", "/img/e/width=20/uploads/e.jpg"}
	if got := f.cdn.take(); !slices.Equal(got, want) {
		t.Fatalf("invalidated %v\nwant %v", got, want)
	}
	if left, _ := f.store.List(t.Context(), "resized/_cache/", 0); len(left) != 0 {
		t.Fatalf("left in the cache: %v", left)
	}
}

// A render that fails for its original's sake is remembered: asked again,
// the same failure comes back without a render, for that image, and for
// an original that is not an image (or is undecodable), for every image
// of that version of it. Other images of a good original still render; a
// new version of the original is rendered afresh; a full gate is a
// failure of the moment, never remembered.
func TestFailuresRemembered(t *testing.T) {
	f := newFixture(t, dirStore(t), 1, 1)
	// Another with a timeout that only the slow render below runs into:
	// every other render keeps the usual time, however loaded the machine.
	slow := newFixtureTimeout(t, dirStore(t), 1, 1, 300*time.Millisecond)
	ctx := t.Context()
	serveBy := func(f *fixture, key, query string) (Image, error) {
		t.Helper()
		img, err := f.svc.Serve(ctx, req(t, key, query, "/"+query+"/"+key))
		f.svc.Wait()
		return img, err
	}
	serve := func(key, query string) (Image, error) { return serveBy(f, key, query) }
	rendersBy := func(f *fixture, key, query string) (int32, error) {
		t.Helper()
		before := f.proc.renders.Load()
		_, err := serveBy(f, key, query)
		return f.proc.renders.Load() - before, err
	}
	rendersFor := func(key, query string) (int32, error) { return rendersBy(f, key, query) }

	// Not an image: every image of this version fails at once after the first.
	f.put(t, "uploads/text.jpg", []byte("these are not the pixels you are looking for"))
	for i, q := range []string{"width=100", "width=100", "width=50&format=webp"} {
		n, err := rendersFor("uploads/text.jpg", q)
		if want := int32(1 - min(i, 1)); !errors.Is(err, imageproc.ErrUnsupported) || n != want {
			t.Fatalf("%s, request %d: %v after %d renders, want %d", q, i, err, n, want)
		}
	}
	// Replaced by an image: a new version, rendered.
	f.put(t, "uploads/text.jpg", testJPEG(t, 64, 48))
	f.svc.versions.Forget("uploads/text.jpg") // as the purge of its event would
	if n, err := rendersFor("uploads/text.jpg", "width=100"); err != nil || n != 1 {
		t.Fatalf("the new version: %v after %d renders", err, n)
	}

	// Impossible as asked: that image is remembered, the others render.
	f.put(t, "uploads/photo.jpg", imagetest.Photo(t))
	for i := range 3 {
		n, err := rendersFor("uploads/photo.jpg", "max_bytes=10&width=300")
		if !errors.Is(err, imageproc.ErrUnsatisfiable) || n != int32(1-min(i, 1)) {
			t.Fatalf("max_bytes=10, request %d: %v after %d renders", i, err, n)
		}
	}
	if n, err := rendersFor("uploads/photo.jpg", "width=120"); err != nil || n != 1 {
		t.Fatalf("another image of the same original: %v after %d renders", err, n)
	}

	// Over PROCESS_TIMEOUT: the first may be the moment's (503, retry);
	// the second is remembered, as an image that cannot be made within the
	// limits (422); the worker is killed twice, not on every request.
	slow.put(t, "uploads/photo.jpg", imagetest.Photo(t))
	for i := range 4 {
		n, err := rendersBy(slow, "uploads/photo.jpg", "format=avif&quality=100&width=4000&enlarge=true")
		for try := 0; errors.Is(err, imageproc.ErrBusy) && try < 50; try++ {
			// The worker killed by the last timeout is not back yet (a
			// loaded machine takes longer than the 300 ms to start one):
			// the moment's, never remembered; asked again once it is.
			time.Sleep(100 * time.Millisecond)
			n, err = rendersBy(slow, "uploads/photo.jpg", "format=avif&quality=100&width=4000&enlarge=true")
		}
		want, kind := int32(1-min(i/2, 1)), imageproc.ErrUnsatisfiable
		if i == 0 {
			kind = imageproc.ErrTimeout
		}
		if !errors.Is(err, kind) || n != want {
			t.Fatalf("a timeout, request %d: %v after %d renders, want %v after %d", i, err, n, kind, want)
		}
	}

	// A bad option (here a crop outside the original) is found from the
	// header, before any decode, and is not remembered (a missing
	// watermark, the other kind, may be stored a moment later).
	for range 2 {
		if n, err := rendersFor("uploads/photo.jpg", "crop=0,0,99999,10"); !errors.Is(err, imageproc.ErrBadOption) || n != 1 {
			t.Fatalf("a crop outside: %v after %d renders", err, n)
		}
	}

	// A full gate is not the original's fault: asked again, it renders.
	var held []func()
	for range 2 { // every place the gate admits (one working, one waiting)
		done, err := f.proc.Gate().Admit()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, done)
	}
	_, err := serve("uploads/photo.jpg", "width=91")
	for _, done := range held {
		done()
	}
	if !errors.Is(err, imageproc.ErrBusy) {
		t.Fatalf("with the gate full: %v", err)
	}
	if n, err := rendersFor("uploads/photo.jpg", "width=91"); err != nil || n != 1 {
		t.Fatalf("after the gate had room again: %v after %d renders", err, n)
	}
}

// An original whose key itself holds the marker's words (".preset-",
// ".path-") is purged as any other: its preset's path, still answered by
// the same image, is not invalidated by every purge that keeps its
// version (each redelivered event, each reconcile).
func TestPurgeOfAKeyThatReadsLikeAMarker(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	ctx := t.Context()
	for _, key := range []string{"uploads/tom.preset-thumb.jpg", "uploads/a.preset-small.path-0/tom.jpg"} {
		res, err := f.pl.Upload(ctx, key, testJPEG(t, 300, 200), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.Serve(ctx, Request{Key: key, Preset: "thumb", Path: "/p/" + key}); err != nil {
			t.Fatal(err)
		}
		f.svc.Wait()
		out, err := f.svc.Purge(ctx, key, res.ETag)
		if err != nil || len(out.Paths) != 0 || out.Images != 0 {
			t.Errorf("%s: purge of the current version: %v %+v, want nothing", key, err, out)
		}
		if out, err := f.svc.Purge(ctx, key, ""); err != nil || len(out.Paths) != 1 || out.Paths[0] != "/p/"+key {
			t.Errorf("%s: purge of every version: %v %+v, want its path", key, err, out)
		}
	}
}

// markerGate holds the next write of a marker until it is released, or
// its context ends: the moment several requests share that write.
type markerGate struct {
	Cache
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *markerGate) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if strings.Contains(key, markerInfix) && g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return storage.Object{}, context.Cause(ctx)
		}
	}
	return g.Cache.Put(ctx, key, data, o)
}

// The marker of a path is written once for every request serving that
// path at the moment; the request that started the write going away ends
// neither the write nor the others' answers, which stay cacheable (a
// marker not written would make them "no-store"), and it is not held
// until the write ends.
func TestRecordOutlivesTheRequestThatStartedIt(t *testing.T) {
	g := &markerGate{Cache: dirStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, g, 2, 4)
	f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=120", "/img/x/width=120/uploads/cats/tom.jpg")
	if _, err := f.svc.Serve(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	// The hits that follow record the path again (served from the object
	// written, not from the render): that write is held.
	g.armed.Store(true)
	leaving, leave := context.WithCancel(t.Context())
	type answer struct {
		img Image
		err error
	}
	first, second := make(chan answer, 1), make(chan answer, 1)
	go func() {
		img, err := f.svc.Serve(leaving, r)
		first <- answer{img, err}
	}()
	<-g.entered
	go func() {
		img, err := f.svc.Serve(t.Context(), r)
		second <- answer{img, err}
	}()
	time.Sleep(200 * time.Millisecond) // the second joins the write under way
	leave()
	select {
	case a := <-first:
		if !errors.Is(a.err, context.Canceled) {
			t.Fatalf("the request that left: %v %q, want its own end", a.err, a.img.CacheControl)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request that left waits for the write it started")
	}
	close(g.release)
	a := <-second
	if a.err != nil || a.img.CacheControl != "public, max-age=300" || a.img.Outcome != Hit {
		t.Fatalf("the request that stayed: %v %q %s", a.err, a.img.CacheControl, a.img.Outcome)
	}
	objs, err := f.store.List(t.Context(), "resized/_cache/uploads/cats/tom.jpg/", 0)
	if err != nil {
		t.Fatal(err)
	}
	markers := 0
	for _, o := range objs {
		if strings.Contains(o.Key, markerInfix) {
			markers++
		}
	}
	if markers != 1 {
		t.Fatalf("%d markers, want 1: %v", markers, objs)
	}
}

// A derived image whose bytes are not those its digest names is a miss,
// made again and written over, never served under the digest's ETag:
// whatever the change (zeros where a power loss left a file its size but
// not its data, one byte flipped anywhere, another image written in its
// place), on a directory and on S3. The size is kept each time, so the
// local store's own size check does not see it.
func TestEntryNotItsDigestIsAMiss(t *testing.T) {
	for name, st := range map[string]func(*testing.T) Cache{"dir": dirStore, "s3": s3Store} {
		t.Run(name, func(t *testing.T) {
			if name == "s3" && testing.Short() {
				t.Skip("long: run without -short (make test runs it)")
			}
			f := newFixture(t, st(t), 2, 4)
			ctx := t.Context()
			etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
			r := req(t, "uploads/cats/tom.jpg", "width=150", "/w")
			key := f.svc.entry(r.Key, etag, r.Options).key
			first, err := f.svc.Serve(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
			good := first.Data
			other, err := f.svc.Serve(ctx, req(t, "uploads/cats/tom.jpg", "width=151", "/o"))
			if err != nil {
				t.Fatal(err)
			}
			f.svc.Wait()
			corruptions := map[string]func() []byte{
				"zeros": func() []byte { return make([]byte, len(good)) },
				"another image": func() []byte {
					b := slices.Clone(other.Data)
					return append(b, make([]byte, max(len(good)-len(b), 0))...)[:len(good)]
				},
			}
			for _, at := range []int{0, 2, len(good) / 3, len(good) / 2, len(good) - 3, len(good) - 1} {
				corruptions["byte "+strconv.Itoa(at)] = func() []byte {
					b := slices.Clone(good)
					b[at] ^= 0x20
					return b
				}
			}
			for what, corrupt := range corruptions {
				obj, err := f.store.Head(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				// Written over with the metadata as the render wrote them.
				if _, err := f.store.Put(ctx, key, corrupt(), storage.PutOptions{ContentType: obj.ContentType, Metadata: obj.Metadata}); err != nil {
					t.Fatal(err)
				}
				before := f.proc.renders.Load()
				img, err := f.svc.Serve(ctx, r)
				f.svc.Wait()
				if err != nil || img.Outcome != Rendered || !bytes.Equal(img.Data, good) || img.ETag != first.ETag ||
					f.proc.renders.Load() != before+1 {
					t.Fatalf("%s: %v %s, %d bytes, ETag %s (the render's %s), %d renders", what, err, img.Outcome,
						len(img.Data), img.ETag, first.ETag, f.proc.renders.Load()-before)
				}
				// Written over again: a hit from then on.
				if img, err := f.svc.Serve(ctx, r); err != nil || img.Outcome != Hit || !bytes.Equal(img.Data, good) {
					t.Fatalf("%s, once made again: %v %s", what, err, img.Outcome)
				}
			}
		})
	}
}

// headGate holds the next look at an original until it is released, or
// its context ends.
type headGate struct {
	Cache
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *headGate) Head(ctx context.Context, key string) (storage.Object, error) {
	if strings.HasPrefix(key, "uploads/") && g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		select {
		case <-g.release:
		case <-ctx.Done():
			return storage.Object{}, context.Cause(ctx)
		}
	}
	return g.Cache.Head(ctx, key)
}

// The look at an original's version is shared by the requests asking at
// the moment and outlives the one that started it; a request that goes
// away stops waiting for it at once (a slow store would otherwise hold
// every abandoned request until it answered), and the others are served.
func TestLookOutlivesTheRequestThatStartedIt(t *testing.T) {
	g := &headGate{Cache: dirStore(t), entered: make(chan struct{}), release: make(chan struct{})}
	f := newFixture(t, g, 2, 4)
	f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=130", "/l")
	g.armed.Store(true)
	leaving, leave := context.WithCancel(t.Context())
	left, stayed := make(chan error, 1), make(chan error, 1)
	go func() {
		_, err := f.svc.Serve(leaving, r)
		left <- err
	}()
	<-g.entered
	go func() {
		img, err := f.svc.Serve(t.Context(), r)
		if err == nil && width(t, img.Data) != 130 {
			err = errors.New("wrong width")
		}
		stayed <- err
	}()
	time.Sleep(100 * time.Millisecond) // the second joins the look under way
	leave()
	select {
	case err := <-left:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("the request that left: %v", err)
		}
	case <-time.After(2 * time.Second):
		close(g.release)
		t.Fatal("the request that left waits for the look it started")
	}
	close(g.release)
	if err := <-stayed; err != nil {
		t.Fatalf("the request that stayed: %v", err)
	}
}

// A derived image the disk lost after it was served (a power loss keeps a
// file's size and time, not always its data): the next start checks its
// bytes again before serving it, however often it was a hit before.
func TestEntryLostByTheDiskIsAMissAfterAStart(t *testing.T) {
	root := t.TempDir()
	d, err := storage.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	f := newFixture(t, d, 2, 4)
	etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	r := req(t, "uploads/cats/tom.jpg", "width=150", "/w")
	key := f.svc.entry(r.Key, etag, r.Options).key
	first, err := f.svc.Serve(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	for range 3 {
		if img, err := f.svc.Serve(ctx, r); err != nil || img.Outcome != Hit {
			t.Fatalf("before the loss: %v %s", err, img.Outcome)
		}
	}
	path := filepath.Join(root, filepath.FromSlash(key))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, st.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	if obj, err := d.Head(ctx, key); err != nil || obj.Metadata[metaDigest] == "" {
		t.Fatalf("the lost file no longer looks stored as it was: %v %v", err, obj.Metadata)
	}
	started := newFixture(t, d, 2, 4) // the next start, on the same directory
	img, err := started.svc.Serve(ctx, r)
	started.svc.Wait()
	if err != nil || img.Outcome != Rendered || !bytes.Equal(img.Data, first.Data) || img.ETag != first.ETag {
		t.Fatalf("after the start: %v %s, %d bytes, ETag %s (the render's %s)", err, img.Outcome, len(img.Data), img.ETag, first.ETag)
	}
}

// lookCounter counts the store's looks at originals (keys under uploads/).
type lookCounter struct {
	Cache
	looks atomic.Int64
}

func (c *lookCounter) Head(ctx context.Context, key string) (storage.Object, error) {
	if strings.HasPrefix(key, "uploads/") {
		c.looks.Add(1)
	}
	return c.Cache.Head(ctx, key)
}

func (c *lookCounter) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	if strings.HasPrefix(key, "uploads/") {
		c.looks.Add(1)
	}
	return c.Cache.Get(ctx, key, o)
}

// A hit of a URL that pins the original's version asks the store nothing
// about the original; an unpinned one asks once per ETagTTL, however many
// hits there are, and again once it has passed.
func TestHitsLookAtTheOriginalOnlyWhenUnpinned(t *testing.T) {
	const ttl = 500 * time.Millisecond
	c := &lookCounter{Cache: dirStore(t)}
	f := newFixture(t, c, 2, 4)
	svc, err := New(Config{Prefixes: []string{"uploads/"}, CachePrefix: "resized/_cache/", CacheControl: "public, max-age=300",
		ETagTTL: ttl, FailureTTL: time.Minute, MaxSourceBytes: 32 << 20, RenderTimeout: time.Minute},
		Deps{Sources: c, Cache: c, Renderer: f.proc, Presets: f.pl, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Wait)
	etag := f.put(t, "uploads/cats/tom.jpg", imagetest.Photo(t))
	ctx := t.Context()
	hits := func(r Request, n int) int64 {
		t.Helper()
		before := c.looks.Load()
		for range n {
			if img, err := svc.Serve(ctx, r); err != nil || img.Outcome != Hit {
				t.Fatalf("%+v: %v %s, not a hit", r, err, img.Outcome)
			}
		}
		return c.looks.Load() - before
	}

	pinned := req(t, "uploads/cats/tom.jpg", "width=120", "/p")
	pinned.Version = etag
	if _, err := svc.Serve(ctx, pinned); err != nil { // the miss that makes it
		t.Fatal(err)
	}
	svc.Wait()
	if n := hits(pinned, 50); n != 0 {
		t.Errorf("50 hits of a pinned URL looked at the original %d times; want 0", n)
	}
	time.Sleep(2 * ttl)
	if n := hits(pinned, 5); n != 0 {
		t.Errorf("pinned hits after the TTL looked at the original %d times; want 0", n)
	}

	unpinned := req(t, "uploads/cats/tom.jpg", "width=140", "/u")
	if _, err := svc.Serve(ctx, unpinned); err != nil {
		t.Fatal(err)
	}
	svc.Wait()
	time.Sleep(2 * ttl) // what the miss remembered has passed
	start := time.Now()
	n := hits(unpinned, 50)
	// One look, and one more for each TTL the hits took (a slow machine).
	if most := 1 + int64(time.Since(start)/ttl); n < 1 || n > most {
		t.Errorf("50 hits of an unpinned URL looked at the original %d times; want 1 (at most %d in %s)", n, most, time.Since(start))
	}
	time.Sleep(2 * ttl)
	if n := hits(unpinned, 5); n != 1 {
		t.Errorf("hits once the TTL passed looked at the original %d times; want 1", n)
	}
}

// New names every part it lacks.
func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{CachePrefix: "resized/_cache", MaxSourceBytes: 1}, Deps{})
	if err == nil {
		t.Fatal("New accepted an empty configuration")
	}
	for _, name := range []string{"Deps.Sources", "Deps.Cache", "Deps.Renderer", "Deps.Presets", "CachePrefix", "RenderTimeout"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
	if strings.Contains(err.Error(), "MaxSourceBytes") {
		t.Errorf("the error names a field that is in range: %v", err)
	}
}
