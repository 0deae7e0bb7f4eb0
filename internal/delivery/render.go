package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// flights are the renders under way, by the key of the derived image.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
	wg sync.WaitGroup // the flights' goroutines
}

// flight is one render, with everyone waiting for it.
type flight struct {
	done    chan struct{} // closed once img or err is set
	settled chan struct{} // closed once the image is kept (or not)
	img     Image
	err     error
}

// join returns the flight of key, and whether the caller starts it.
func (f *flights) join(key string) (*flight, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fl, ok := f.m[key]; ok {
		return fl, false
	}
	fl := &flight{done: make(chan struct{}), settled: make(chan struct{})}
	f.m[key] = fl
	return fl, true
}

func (f *flights) leave(key string) {
	f.mu.Lock()
	fl := f.m[key]
	delete(f.m, key)
	f.mu.Unlock()
	close(fl.settled)
}

// settle waits until the flights under way whose keys start with prefix
// have kept their images (or failed to). Flights that start later are not
// waited for.
func (f *flights) settle(ctx context.Context, prefix string) error {
	var wait []*flight
	f.mu.Lock()
	for k, fl := range f.m {
		if strings.HasPrefix(k, prefix) {
			wait = append(wait, fl)
		}
	}
	f.mu.Unlock()
	for _, fl := range wait {
		select {
		case <-fl.settled:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// render makes the derived image e once for every request that asks for
// it while it is being made and written: the first request starts the
// work, in a goroutine of its own that no request's end stops (it is
// bounded by RenderTimeout), and every request, the first included, waits
// for its result. The work takes one place at the gate, the waiting ones
// none. Each waiter gets the image as soon as it is made; the write to the
// cache follows, and requests that arrive meanwhile are answered from the
// render in memory.
func (s *Service) render(ctx context.Context, e entry, pinned bool) (Image, error) {
	if err := s.failed(e); err != nil {
		s.metrics.failureRemembered()
		return Image{}, err
	}
	fl, lead := s.flights.join(flightKey(e, pinned))
	if lead {
		s.flights.wg.Add(1)
		go func() {
			defer s.flights.wg.Done()
			s.fly(context.WithoutCancel(ctx), e, pinned, fl)
		}()
	}
	select {
	case <-fl.done:
	case <-ctx.Done():
		return Image{}, context.Cause(ctx)
	}
	if fl.err != nil {
		return Image{}, fl.err
	}
	img := fl.img
	if !lead {
		img.Outcome = Shared
	}
	return img, nil
}

// flightKey is the flight of e for a pinned request or not: they are not
// shared, since a pinned one reads a version that may be gone (a 404 for
// it alone) and skips the unpinned one's look at the original once it is
// made (stillCurrent). It starts with e's key, which settle looks for.
func flightKey(e entry, pinned bool) string {
	if pinned {
		return e.key + "\x00pinned"
	}
	return e.key
}

// fly is the work of one flight: make the image, hand it to the waiting
// requests, keep it.
func (s *Service) fly(ctx context.Context, e entry, pinned bool, fl *flight) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RenderTimeout)
	defer cancel()
	defer s.flights.leave(flightKey(e, pinned))
	// The miss that started this flight may have come just before another
	// flight of the same image kept it and left (a request's look in the
	// cache and its joining a flight are two steps): it is read, not made
	// again.
	if img, err := s.fromCache(ctx, e, false); err == nil {
		fl.img = img
		close(fl.done)
		return
	}
	fl.img, fl.err = s.make(ctx, e, pinned)
	if fl.err == nil && !pinned {
		fl.err = s.stillCurrent(ctx, e)
	}
	fl.err = s.remember(e, fl.err)
	close(fl.done)
	if fl.err != nil {
		return
	}
	if err := s.keep(ctx, e, fl.img); err != nil {
		// The answer stands; the next request renders again.
		s.log(ctx).Warn().Err(err).Str("key", e.key).Msg("derived image not kept")
		return
	}
	if err := s.keptInTime(ctx, e); err != nil {
		s.log(ctx).Info().Err(err).Str("key", e.key).Msg("derived image written after its version changed: deleted")
		if err := s.d.Cache.Delete(ctx, e.key); err != nil {
			s.log(ctx).Warn().Err(err).Str("key", e.key).Msg("derived image of a changed version not deleted")
		}
	}
}

// keptInTime fails, once e's image is written to the cache, when the
// original is no longer the version e was made from (replaced, or
// deleted).
//
// A purge waits for the renders of its own task only. On another task, a
// render of the old version (a pinned URL's, which skips stillCurrent, or
// any whose write lands just after its last look) may write its image
// after the purge that followed a replacement or a deletion listed that
// version's folder: nothing would ever look there again, and the image
// would stay until the cache's lifecycle rule expired it (30 days; on the
// local directory, for good), served to every URL pinned to that version,
// a deleted picture among them, where a purge promises a 404. The store
// is read-after-write consistent, so a look after the write closes it, as
// recordedInTime does for markers: if the original is still e's version,
// the change comes after the write, and the purge that follows it lists
// the image; if not, the image is deleted here. A failed look leaves the
// image, as it leaves a render (stillCurrent): the race it guards is a
// few milliseconds wide, and deleting every image written while the store
// refuses looks (throttled) would make each request of the moment render
// again. It costs one HEAD per render.
func (s *Service) keptInTime(ctx context.Context, e entry) error {
	v, err := s.look(ctx, e.source)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: deleted", errSuperseded)
	case err != nil:
		s.log(ctx).Warn().Err(err).Str("key", e.key).Msg("original not looked at after its derived image was written: kept")
		return nil
	case v.etag != e.etag:
		return fmt.Errorf("%w: version %s replaced by %s", errSuperseded, e.etag, v.etag)
	}
	return nil
}

// stillCurrent fails with errSuperseded when the original is no longer
// the version e was made from (or, for a preset, no longer has its focal
// point): replaced during the render, whose image
// must then be neither answered to an unpinned URL nor kept. The purge
// that follows a replacement waits for renders on its own task only; one
// on another task would otherwise answer the old picture after the CDN
// was told to drop it, and the CDN keep it under the same path, with
// nothing left to purge it. Serve then serves the new version. A failed
// look leaves the render standing: the window it guards is seconds wide.
func (s *Service) stillCurrent(ctx context.Context, e entry) error {
	v, err := s.look(ctx, e.source)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return errSuperseded // gone: the next try answers so
	case err != nil:
		return nil
	case v.etag != e.etag, !e.takes(v.meta):
		return errSuperseded
	}
	return nil
}

// takes reports whether the original with metadata meta gives the options
// e is made with: a preset's are cut around the original's focal point,
// which may have changed since it was looked at (stored again, same
// ETag, another focus).
func (e entry) takes(meta map[string]string) bool {
	return e.preset == nil || e.preset.OptionsFor(meta).Canonical() == e.options.Canonical()
}

// make reads the original at the version e names and renders it. It holds
// a place at the gate from before the read, so that the originals in
// memory are bounded as request bodies are.
func (s *Service) make(ctx context.Context, e entry, pinned bool) (Image, error) {
	if pinned {
		if err := s.stored(ctx, e); err != nil {
			return Image{}, err
		}
	}
	done, err := s.d.Renderer.Gate().Admit()
	if err != nil {
		return Image{}, err
	}
	defer done()
	buf, _ := s.originals.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	defer s.originals.Put(buf) // Process has returned: nothing reads it
	data, obj, err := s.d.Sources.Get(ctx, e.source, storage.GetOptions{IfMatch: `"` + e.etag + `"`,
		MaxBytes: s.cfg.MaxSourceBytes, Into: buf})
	switch {
	case pinned && (errors.Is(err, storage.ErrPreconditionFailed) || errors.Is(err, storage.ErrNotFound)):
		return Image{}, fmt.Errorf("%w: version %s of %q is no longer stored", storage.ErrNotFound, e.etag, e.source)
	case errors.Is(err, storage.ErrPreconditionFailed):
		return Image{}, errSuperseded
	case errors.Is(err, storage.ErrTooLarge):
		return Image{}, fmt.Errorf("%w: original: %v", imageproc.ErrTooLarge, err)
	case err != nil:
		return Image{}, fmt.Errorf("original: %w", err)
	}
	if !e.takes(obj.Metadata) {
		return Image{}, errSuperseded // its focal point changed since it was looked at
	}
	opts := e.options
	res, err := s.d.Renderer.Process(ctx, data, opts)
	if err != nil && e.preset != nil {
		// A preset's watermark is VARIANTS', not the URL's: one that is
		// missing is the configuration's fault, not a bad option.
		err = pipeline.Misconfigured(err)
	}
	if err != nil {
		return Image{}, err
	}
	return Image{Data: res.Data, Size: int64(len(res.Data)), ContentType: res.Format.ContentType(), ETag: digestETag(res.Data),
		LastModified: obj.LastModified, Outcome: Rendered, written: time.Now(), options: opts.Canonical()}, nil
}

// stored fails with storage.ErrNotFound when the version of the original
// that a pinned URL names is not the one stored: a read is of the current
// object (If-Match), so no other can ever be rendered. It is looked at
// before a place at the gate is taken: anyone may write an unsigned
// preset's URL with a v= of their own making, and each would otherwise
// hold a place for a read of the store, shutting out the renders of real
// images (a 503 for them), to end in a 404 anyway.
func (s *Service) stored(ctx context.Context, e entry) error {
	v, err := s.look(ctx, e.source)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("%w: %q", storage.ErrNotFound, e.source)
	case err != nil:
		return fmt.Errorf("original: %w", err)
	case v.etag != e.etag:
		return fmt.Errorf("%w: version %s of %q is no longer stored", storage.ErrNotFound, e.etag, e.source)
	}
	return nil
}

// Wait returns once no render is being made or written.
func (s *Service) Wait() { s.flights.wg.Wait() }

// A render that fails for its original's sake fails the same way each
// time it is asked again, at the cost of a render: a broken or hostile
// original (or a timeout, which kills a worker) behind a page's URLs would
// otherwise take a place at the gate for every request the CDN passes on,
// since errors are not cached. Such failures are remembered for FailureTTL
// and answered again without rendering: by the derived image they were
// for, and, when the original is not an image at all, by every image of
// that version of it. Failures of the moment (a full gate, no worker, the
// store) are not remembered, nor are bad options (found before any decode,
// and a missing watermark may be added), nor is anything of a version once
// a purge has passed over it.

// versionFailed is the failures memo's key for every image of version etag
// of the original key.
func (s *Service) versionFailed(source, etag string) string {
	return s.folder(source) + etagSegment(etag) + "/*"
}

// failed returns the remembered failure of e, if any.
func (s *Service) failed(e entry) error {
	if err, ok := s.failures.Get(e.key); ok {
		return err
	}
	if err, ok := s.failures.Get(s.versionFailed(e.source, e.etag)); ok {
		return err
	}
	return nil
}

// remember keeps the outcome of rendering e when it is a failure the
// original causes, and returns the error to answer. A timeout may be the
// moment's (a machine slowed by its neighbours), as the pipeline also
// holds: the first is answered as it is (503, retry); the second within
// FailureTTL is remembered, and answered as what it now is, an image that
// cannot be made within the limits (422), not a reason to come back in a
// second.
func (s *Service) remember(e entry, err error) error {
	switch {
	case err == nil:
		s.timedOut.Forget(e.key)
	case errors.Is(err, imageproc.ErrUnsupported):
		s.failures.Put(s.versionFailed(e.source, e.etag), err)
	case errors.Is(err, imageproc.ErrUndecodable), errors.Is(err, imageproc.ErrTooLarge), errors.Is(err, imageproc.ErrUnsatisfiable):
		// Per image: a decoder or an encoder may fail on one size only.
		s.failures.Put(e.key, err)
	case errors.Is(err, imageproc.ErrTimeout):
		if s.timedOut.Add(e.key, struct{}{}) {
			return err // the first
		}
		err = fmt.Errorf("%w: it ran into the processing timeout twice (%v)", imageproc.ErrUnsatisfiable, err)
		s.failures.Put(e.key, err)
	}
	return err
}
