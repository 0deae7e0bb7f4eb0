package delivery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resizer/resizer/internal/cdn"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// Purged is what a Purge removed.
type Purged struct {
	// Images is the number of derived images deleted.
	Images int
	// Paths are the request paths invalidated at the CDN.
	Paths []string
}

// Settle purges what the pipeline's result res for the original key
// leaves stale, as each of the pipeline's drivers must once it is done
// with an original (the webhook, uploads, reconcile): for one that stands
// (processed, or up to date) the images of its other versions and the
// paths of presets redefined since, keeping the version res names (else
// etag, the one the original was asked for at); for one rejected (no
// longer an image) or deleted, everything; and, when the CDN serves the
// outputs too, the paths of the variants res wrote over or deleted
// (recordVariants). Other results purge nothing. Errors are Purge's and
// the CDN's, wrapped.
func (s *Service) Settle(ctx context.Context, key, etag string, res pipeline.Result) error {
	keep := ""
	switch res.Status {
	case pipeline.StatusProcessed, pipeline.StatusUpToDate:
		keep = cmp.Or(res.ETag, etag)
	case pipeline.StatusRejected, pipeline.StatusDeleted:
	default:
		return nil
	}
	if err := s.recordVariants(ctx, key, res.Stale); err != nil {
		return fmt.Errorf("record the variants of %q to invalidate: %w", key, err)
	}
	if _, err := s.Purge(ctx, key, keep); err != nil {
		return fmt.Errorf("purge images derived from %q: %w", key, err)
	}
	return nil
}

// variantsSegment is the folder, beside an original's versions in the
// derived cache, of the markers of its variants' paths to invalidate: no
// ETag is spelled so, so a Purge takes them as markers of a version gone.
const variantsSegment = "_variants"

// recordVariants, when the CDN serves the outputs too (InvalidateVariants),
// writes a marker of the path of each of the output keys beside the
// original's derived images, for the Purge that follows to invalidate
// with theirs and delete once the CDN has taken it: variants written over
// keep their URLs, and a CDN would otherwise serve the old picture under
// them for as long as their Cache-Control allows (a day by default), and
// a deleted one's as long. Only the service knows which were written, so
// only those are invalidated: a replaced original with three variants
// costs three paths, a new one none. The markers make it last: the run
// that wrote the variants is the only one that knows them (a retry finds
// the original up to date), so a Purge that fails (CloudFront refuses
// more than 3,000 paths in progress) leaves them for the retry, or the
// original's next purge, to find. Keys whose URL is not absolute (no base
// URL) have no CDN path.
func (s *Service) recordVariants(ctx context.Context, key string, keys []string) error {
	if !s.cfg.InvalidateVariants || s.d.Invalidator == nil || len(keys) == 0 {
		return nil
	}
	if s.served(key) != nil || storage.ValidateKey(key) != nil {
		return nil // no folder of derived images, which Purge reads
	}
	var paths []string
	for _, k := range keys {
		u, err := url.Parse(s.d.Presets.PublicURL(k))
		if err != nil || !u.IsAbs() {
			continue
		}
		paths = append(paths, u.EscapedPath())
	}
	return each(len(paths), func(i int) error {
		m := marker(s.folder(key)+variantsSegment+"/v", paths[i], "")
		if _, err := s.d.Cache.Put(ctx, m, []byte(paths[i]), storage.PutOptions{ContentType: "text/plain"}); err != nil {
			return fmt.Errorf("record path: %w", err)
		}
		return nil
	})
}

// Purge deletes the derived images of the original key, except those made
// from version keep (an ETag, quotes optional; "" deletes them all), and
// with a CDN invalidates exactly the paths they were served under, and
// the paths of presets served from version keep by a definition of the
// preset since changed. The images go first, so that a CDN that asks
// again once invalidated finds nothing old; the markers of their paths go
// last, each once the CDN has taken the batch of its path (invalidate),
// so that a Purge that fails on the way leaves the paths not yet taken,
// and only those, for the next attempt to find. Renders of the key under way when it is
// called are waited for first: one that read the old version would
// otherwise write its image after the purge. A key that is never served
// (outside the prefixes, or one the store cannot hold) has nothing to
// purge. Errors are the store's and the CDN's; every one may pass, and the
// Purge is then worth repeating.
func (s *Service) Purge(ctx context.Context, key, keep string) (Purged, error) {
	if s.served(key) != nil || storage.ValidateKey(key) != nil {
		return Purged{}, nil
	}
	folder := s.folder(key)
	if err := s.flights.settle(ctx, folder); err != nil {
		return Purged{}, fmt.Errorf("wait for renders: %w", err)
	}
	objs, err := s.d.Cache.List(ctx, folder, 0)
	if err != nil {
		return Purged{}, fmt.Errorf("list derived images: %w", err)
	}
	if s.purgeListed != nil {
		s.purgeListed()
	}
	keepSegment := ""
	if keep = strings.Trim(keep, `"`); keep != "" {
		keepSegment = etagSegment(keep)
	}
	var images, markers, kept []string
	for _, o := range objs {
		segment, name, ok := strings.Cut(strings.TrimPrefix(o.Key, folder), "/")
		if !ok || strings.Contains(name, "/") {
			continue // an original whose key continues this one's
		}
		if segment == keepSegment {
			if strings.Contains(name, presetInfix) {
				kept = append(kept, o.Key)
			}
			continue
		}
		if strings.Contains(name, markerInfix) {
			markers = append(markers, o.Key)
		} else {
			images = append(images, o.Key)
		}
	}
	if len(kept) > 0 {
		stale, err := s.stalePresets(ctx, key, keep, kept)
		if err != nil {
			return Purged{}, err
		}
		markers = append(markers, stale...)
	}
	var out Purged
	if err := each(len(images), func(i int) error { return s.d.Cache.Delete(ctx, images[i]) }); err != nil {
		return out, fmt.Errorf("delete derived images: %w", err)
	}
	out.Images = len(images)
	if out.Paths, err = s.invalidate(ctx, markers); err != nil {
		return out, err
	}
	s.versions.Forget(key)
	s.recorded.ForgetPrefix(folder)
	s.failures.ForgetPrefix(folder)
	s.timedOut.ForgetPrefix(folder)
	s.metrics.purged(out.Images, len(out.Paths))
	return out, nil
}

// stalePresets are those of markers, the markers of paths that asked for
// a preset of version etag of the original key, whose answer is now
// another image (stalePreset). The version's metadata (its focal point)
// are looked up in the store: when it is no longer the current version,
// none is found stale, and the purge of the version that replaced it
// takes them all.
func (s *Service) stalePresets(ctx context.Context, key, etag string, markers []string) ([]string, error) {
	v, err := s.look(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("look at the original: %w", err)
	case v.etag != etag:
		return nil, nil
	}
	var stale []string
	for _, m := range markers {
		if s.stalePreset(key, v, m) {
			stale = append(stale, m)
		}
	}
	return stale, nil
}

// stalePreset reports whether the object at objKey, of version v of the
// original key, is the marker of a path that asked for a preset whose
// definition has changed since (or that is no longer configured), or that
// v's focal point cuts otherwise than when it was served: the path's
// answer is now another image. The image it was served from stays, right
// for any URL that spells its options out.
func (s *Service) stalePreset(key string, v version, objKey string) bool {
	// Read after the original's folder: the key itself may hold the words
	// (uploads/tom.preset-thumb.jpg), and its ETag and digest cannot.
	folder := s.folder(key)
	entryName, rest, ok := strings.Cut(strings.TrimPrefix(objKey, folder), presetInfix)
	if !ok {
		return false
	}
	name, _, ok := strings.Cut(rest, markerInfix)
	if !ok {
		return false
	}
	p, ok := s.d.Presets.Preset(key, name)
	return !ok || s.presetEntry(key, v, name, p).key != folder+entryName
}

// invalidationBatch is the most paths one Purge asks the CDN to forget
// at once: CloudFront holds at most 3,000 paths in progress per
// distribution, so an original served under more is invalidated over
// several attempts, each taking up where the last stopped.
const invalidationBatch = 1000

// invalidate tells the CDN to forget the paths the markers hold, in
// batches, and deletes the markers of each batch once the CDN has taken
// it, and those of no path to invalidate (expired, or no CDN): a batch
// refused for now (CloudFront's limit on paths in progress, throttling)
// leaves its markers and the following batches' for the next attempt,
// which sends only those again. A batch refused for good (cdn.ErrRefused:
// a path CloudFront will never take) is split in halves until the paths
// refused are alone; their markers are dropped, since no attempt would
// ever invalidate them, and the rest go on, else that one path would fail
// every attempt of the purge and keep every later batch stale at the CDN.
// It returns the paths the CDN took.
func (s *Service) invalidate(ctx context.Context, markers []string) ([]string, error) {
	drop := func(ms []string) error {
		if err := each(len(ms), func(i int) error { return s.d.Cache.Delete(ctx, ms[i]) }); err != nil {
			return fmt.Errorf("delete markers: %w", err)
		}
		return nil
	}
	if s.d.Invalidator == nil || len(markers) == 0 {
		return nil, drop(markers)
	}
	byPath, err := s.paths(ctx, markers)
	if err != nil {
		return nil, err
	}
	if err := drop(byPath[""]); err != nil {
		return nil, err
	}
	delete(byPath, "")
	paths := slices.Sorted(maps.Keys(byPath))
	var taken []string
	settled := 0 // paths taken or dropped
	var send func(batch []string) error
	send = func(batch []string) error {
		err := s.d.Invalidator.Invalidate(ctx, batch)
		switch {
		case errors.Is(err, cdn.ErrRefused) && len(batch) > 1:
			half := len(batch) / 2
			if err := send(batch[:half]); err != nil {
				return err
			}
			return send(batch[half:])
		case errors.Is(err, cdn.ErrRefused):
			s.log(ctx).Error().Err(err).Str("path", batch[0]).Msg("path refused by the CDN for good: not invalidated, its markers dropped")
		case err != nil:
			return fmt.Errorf("invalidate %d of %d paths: %w", len(paths)-settled, len(paths), err)
		default:
			taken = append(taken, batch...)
		}
		var ms []string
		for _, p := range batch {
			ms = append(ms, byPath[p]...)
		}
		if err := drop(ms); err != nil {
			return err
		}
		settled += len(batch)
		return nil
	}
	for start := 0; start < len(paths); start += invalidationBatch {
		if err := send(paths[start:min(start+invalidationBatch, len(paths))]); err != nil {
			return taken, err
		}
	}
	return taken, nil
}

// expiryGrace is how long after its expiry a path is still invalidated:
// a cache was told to keep it no longer than its expiry, by a clock that
// may run behind the service's.
const expiryGrace = 5 * time.Minute

// paths reads the request paths the markers hold, with the markers that
// hold each; under "" those of no path to invalidate: expired (no cache
// holds them, and invalidating them would cost money for nothing: a page
// that signs a URL per view leaves many), or deleted meanwhile.
func (s *Service) paths(ctx context.Context, markers []string) (map[string][]string, error) {
	paths := make([]string, len(markers))
	deadline := time.Now().Add(-expiryGrace)
	err := each(len(markers), func(i int) error {
		b, obj, err := s.d.Cache.Get(ctx, markers[i], storage.GetOptions{MaxBytes: 16 << 10})
		if errors.Is(err, storage.ErrNotFound) {
			return nil // deleted by a purge running beside this one
		}
		if exp, perr := strconv.ParseInt(obj.Metadata[metaExpires], 10, 64); perr == nil && time.Unix(exp, 0).Before(deadline) {
			return nil
		}
		paths[i] = string(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read markers: %w", err)
	}
	byPath := make(map[string][]string)
	for i, p := range paths {
		byPath[p] = append(byPath[p], markers[i])
	}
	return byPath, nil
}

// parallelism bounds the requests one Purge makes to the store at once.
const parallelism = 8

// each runs fn(0..n-1), parallelism at a time, and returns every error.
func each(n int, fn func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
