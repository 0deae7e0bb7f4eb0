// Package delivery serves stored originals by URL: the image a URL asks
// for is found in the derived cache (under OUTPUT_PREFIX's reserved
// _cache/ segment), or as a stored variant when the URL names a preset,
// or else rendered once, however many requests ask at the same moment,
// and kept in the cache. When an original changes or goes, Purge deletes
// its derived images and invalidates the CDN paths they were served
// under. It knows nothing of HTTP or of signatures (see imageurl and
// internal/httpapi); nothing is ever read but the store's own keys.
//
// One request reads top to bottom in Serve (this file); the cache's
// layout is in cache.go.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/memo"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// ErrNotServed: the key lies outside the prefixes that may be served by
// URL, or inside the cache itself.
var ErrNotServed = errors.New("key not served by URL")

// Source is where originals are read.
type Source interface {
	Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error)
	Head(ctx context.Context, key string) (storage.Object, error)
}

// Cache is the store of the derived images (the output store).
type Cache interface {
	Source
	Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error)
	Delete(ctx context.Context, key string) error
	List(ctx context.Context, prefix string, limit int) ([]storage.Object, error)
}

// Renderer makes images (an *imageproc.Processor).
type Renderer interface {
	// Process renders b; once it returns, b is no longer read, and the
	// result does not share its memory.
	Process(ctx context.Context, b []byte, o imageproc.Options) (*imageproc.Result, error)
	Gate() *imageproc.Gate
}

// Presets are the variants of VARIANTS (a *pipeline.Pipeline).
type Presets interface {
	// Preset returns the variant name of the original key (its options,
	// where its output is stored when the key predicts it, its
	// definition's digest), or false when there is no such variant.
	Preset(key, name string) (pipeline.Preset, bool)
	// StoredVariant returns where the original's manifest says its
	// variant name is stored, "" when it says nothing of it.
	StoredVariant(ctx context.Context, key, name string) (string, error)
	// PublicURL is the URL of an output key that the manifests give.
	PublicURL(key string) string
}

// Invalidator drops paths from a CDN's cache.
type Invalidator interface {
	Invalidate(ctx context.Context, paths []string) error
}

// Config is delivery's part of the configuration.
type Config struct {
	// Prefixes are the key prefixes originals may be served from ("" is
	// every key).
	Prefixes []string
	// CachePrefix is where derived images are kept: OUTPUT_PREFIX + "_cache/".
	CachePrefix string
	// CacheControl is the Cache-Control of answers to unpinned URLs.
	CacheControl string
	// ETagTTL is how long an original's current ETag is remembered.
	ETagTTL time.Duration
	// FailureTTL is how long a render's failure for its original's sake
	// is remembered (see render).
	FailureTTL time.Duration
	// MaxSourceBytes bounds the originals read.
	MaxSourceBytes int64
	// RenderTimeout bounds a render and the write of its result: the work
	// belongs to every request waiting on it, so no one request's end
	// stops it.
	RenderTimeout time.Duration
	// Qualities are the default qualities by format that the renderer
	// applies where a URL sets none (JPEG_QUALITY, WEBP_QUALITY,
	// AVIF_QUALITY): part of a derived image's name, since another default
	// makes another image of the same options.
	Qualities map[imageproc.Format]int
	// InvalidateVariants says that the CDN also serves the outputs, at
	// the paths of their public URLs (Presets.PublicURL): Settle then
	// invalidates the paths of variants written over or deleted.
	InvalidateVariants bool
}

// Deps are the parts delivery works with.
type Deps struct {
	Sources  Source // originals (the input store)
	Cache    Cache  // derived images (the output store)
	Renderer Renderer
	Presets  Presets
	// Invalidator, when not nil, is told the paths of what Purge deletes;
	// every path served is then recorded (see cache.go).
	Invalidator Invalidator
	// Logger logs what happens outside a request; inside one, the
	// request's own logger (zerolog.Ctx: its id) is used.
	Logger zerolog.Logger
	// Registry takes the metrics; nil records none.
	Registry prometheus.Registerer
}

// Service serves images by URL.
type Service struct {
	cfg      Config
	d        Deps
	flights  flights
	heads    singleflight.Group   // concurrent look-ups of one original's version
	markers  singleflight.Group   // concurrent writes of one marker
	versions *memo.Memo[version]  // key -> current version
	recorded *memo.Memo[struct{}] // markers written (see record)
	failures *memo.Memo[error]    // renders that failed for their original's sake (see render)
	timedOut *memo.Memo[struct{}] // renders that ran into the timeout once (see remember)
	verified *memo.Memo[struct{}] // derived images whose bytes were checked, as stored (see fromCache)
	metrics  *metrics
	// originals are the buffers misses read originals into: at most one
	// per place at the gate is in use, and reusing them spares the
	// collector an original's worth of garbage per render.
	originals sync.Pool
	// purgeListed, when set (tests), runs in Purge once it has listed
	// the derived images: what requests do meanwhile.
	purgeListed func()
}

// New returns a Service. It fails when a part is missing, the cache
// prefix is not a folder, or the registry refuses the metrics.
func New(cfg Config, d Deps) (*Service, error) {
	var bad []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Deps.Sources", d.Sources != nil}, {"Deps.Cache", d.Cache != nil}, {"Deps.Renderer", d.Renderer != nil},
		{"Deps.Presets", d.Presets != nil}, {"CachePrefix (a folder, ending in /)", strings.HasSuffix(cfg.CachePrefix, "/")},
		{"RenderTimeout", cfg.RenderTimeout > 0}, {"MaxSourceBytes", cfg.MaxSourceBytes > 0},
	} {
		if !f.ok {
			bad = append(bad, f.name)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("delivery: missing or out of range: %s", strings.Join(bad, ", "))
	}
	m, err := newMetrics(d.Registry)
	if err != nil {
		return nil, fmt.Errorf("delivery: metrics: %w", err)
	}
	return &Service{cfg: cfg, d: d, flights: flights{m: map[string]*flight{}},
		versions: memo.New[version](cfg.ETagTTL), recorded: memo.New[struct{}](recordedTTL), failures: memo.New[error](cfg.FailureTTL),
		timedOut: memo.New[struct{}](cfg.FailureTTL), verified: memo.New[struct{}](recordedTTL),
		metrics: m}, nil
}

// Request is one image asked for by URL.
type Request struct {
	// Key is the original's whole key.
	Key string
	// Options are what to make of it, Prefer set where the format is
	// negotiated; unused with a Preset.
	Options imageproc.Options
	// Preset names a variant of VARIANTS instead.
	Preset string
	// Version, when set, is the original's ETag (unquoted) that the URL
	// pins; otherwise the current one is served.
	Version string
	// Expires, when not zero, is when the URL stops working: no answer
	// may be kept longer.
	Expires time.Time
	// Path is the request's path, as a CDN caches it.
	Path string
	// DescribeOnly says the body is not needed (HEAD): a stored image is
	// then only looked up, not read.
	DescribeOnly bool
	// Holds, when set, says whether the client holds a copy with a given
	// ETag (its If-None-Match): a stored image is then looked up first,
	// and read only when the client does not hold it.
	Holds func(etag string) bool
}

// describe says whether a stored image is only looked up, at first.
func (r Request) describe() bool { return r.DescribeOnly || r.Holds != nil }

// Outcome says where an image came from.
type Outcome string

// The outcomes.
const (
	Hit      Outcome = "hit"      // the derived cache
	Variant  Outcome = "variant"  // a variant stored by the pipeline
	Rendered Outcome = "rendered" // made for this request
	Shared   Outcome = "shared"   // made for another request asking at the same time
)

// Image is the answer to a Request.
type Image struct {
	// Data is the image; nil for a stored image only looked up (for a
	// DescribeOnly request, or one whose client Holds it).
	Data         []byte
	Size         int64
	ContentType  string
	ETag         string // strong, quoted
	LastModified time.Time
	CacheControl string
	Outcome      Outcome
	// written is when the stored object served was written (zero for a
	// render).
	written time.Time
	// options are the canonical options a render was made with.
	options string
}

// Serve answers r: from the derived cache, or from the stored variant of a
// preset, or by rendering once (see render). Hits take no place at the
// gate and decode nothing.
//
// Errors: ErrNotServed; imageproc.ErrBadOption for an unknown preset;
// storage.ErrNotFound for an original (or the pinned version of one) that
// is not stored; storage's errors of reading; imageproc's of rendering,
// ErrBusy among them; the request's own end (ctx's cause).
func (s *Service) Serve(ctx context.Context, r Request) (Image, error) {
	img, e, err := s.serveCurrent(ctx, r)
	if err == nil && img.Data == nil && !r.DescribeOnly && r.Holds != nil && !r.Holds(img.ETag) {
		// The client's copy is another: the body after all.
		r.Holds = nil
		img, e, err = s.serveCurrent(ctx, r)
	}
	if err != nil {
		return Image{}, err
	}
	s.metrics.served(img.Outcome)
	img.CacheControl = cacheControl(s.cfg.CacheControl, r, time.Now())
	if err := s.record(ctx, r, e, img); err != nil {
		if ctx.Err() != nil {
			return Image{}, context.Cause(ctx) // the request is gone: nobody to answer
		}
		// A path that purges could not find must not be kept by a CDN.
		s.log(ctx).Warn().Err(err).Str("key", r.Key).Msg("served path not recorded: answered uncacheable")
		img.CacheControl = "private, no-store"
	}
	return img, nil
}

// serveCurrent is serve, once more when the original changed since its
// ETag was remembered.
func (s *Service) serveCurrent(ctx context.Context, r Request) (Image, entry, error) {
	img, e, err := s.serve(ctx, r)
	if errors.Is(err, errSuperseded) {
		// The original changed since its ETag was remembered: once more,
		// with the one it has now.
		s.versions.Forget(r.Key)
		img, e, err = s.serve(ctx, r)
	}
	if errors.Is(err, errSuperseded) {
		// Changed again meanwhile: worth a retry, as a full gate is.
		err = fmt.Errorf("%w: the original changed twice while it was served", imageproc.ErrBusy)
	}
	return img, e, err
}

// errSuperseded: the original's remembered ETag is no longer its own.
var errSuperseded = errors.New("original changed")

// serve finds or makes the image, and says which derived image's place
// (e) it is recorded under: its own, or for a stored variant the place a
// render of the preset would take.
func (s *Service) serve(ctx context.Context, r Request) (Image, entry, error) {
	if err := s.served(r.Key); err != nil {
		return Image{}, entry{}, err
	}
	var preset pipeline.Preset
	if r.Preset != "" {
		var ok bool
		if preset, ok = s.d.Presets.Preset(r.Key, r.Preset); !ok {
			return Image{}, entry{}, fmt.Errorf("%w: no preset %q", imageproc.ErrBadOption, r.Preset)
		}
	}
	v, err := s.version(ctx, r)
	if err != nil {
		return Image{}, entry{}, err
	}
	var e entry
	if r.Preset == "" {
		e = s.entry(r.Key, v.etag, r.Options)
	} else {
		e = s.presetEntry(r.Key, v, r.Preset, preset)
	}
	if err := s.fits(e, r); err != nil {
		return Image{}, entry{}, err
	}
	if r.Preset != "" {
		if img, ok, err := s.fromVariant(ctx, r, preset, v); ok || err != nil {
			return img, e, err
		}
	}
	img, err := s.fromCache(ctx, e, r.describe())
	if errors.Is(err, storage.ErrNotFound) {
		img, err = s.render(ctx, e, r.Version != "")
	}
	return img, e, err
}

// fits refuses, before anything is read or made, a request whose derived
// keys the store cannot hold (storage.ErrInvalidKey): the image's place
// and, with a CDN, the marker of its path, which is longer by a suffix
// (and a preset's name). An original whose key leaves room for the one
// but not the other would otherwise be rendered and served with no
// marker written, each answer uncacheable and a warning logged, where a
// key too long for the image's place is a 400; and a preset's stored
// variant, whose key is shorter, would be served where its options
// spelled out are a 400.
func (s *Service) fits(e entry, r Request) error {
	k := e.key
	if s.d.Invalidator != nil {
		k = marker(e.key, r.Path, r.Preset)
	}
	if err := storage.ValidateKey(k); err != nil {
		return fmt.Errorf("the derived images of %q: %w", r.Key, err)
	}
	return nil
}

// served refuses keys outside the prefixes, and the cache's own.
func (s *Service) served(key string) error { return Served(key, s.cfg.Prefixes, s.cfg.CachePrefix) }

// Served refuses, with ErrNotServed, what a Service of these Prefixes and
// CachePrefix never serves whatever is stored: a key outside the
// prefixes, or a derived image. server sign asks it before it signs.
func Served(key string, prefixes []string, cachePrefix string) error {
	if strings.HasPrefix(key, cachePrefix) {
		return fmt.Errorf("%w: %q is a derived image", ErrNotServed, key)
	}
	for _, p := range prefixes {
		if strings.HasPrefix(key, p) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is outside %s", ErrNotServed, key, strings.Join(prefixes, ", "))
}

// version is a version of an original: its ETag, unquoted, and, when
// known, its metadata (its focal point is there) and when it was stored.
type version struct {
	etag     string
	meta     map[string]string
	modified time.Time
}

// version is the version of the original r asks for: the current one, or
// the one it pins. A preset needs the pinned version's metadata too,
// which are known while it is the current one; an older version's are
// not (and it is seldom still stored: its render is then a 404).
func (s *Service) version(ctx context.Context, r Request) (version, error) {
	if r.Version == "" {
		return s.current(ctx, r.Key)
	}
	if r.Preset != "" {
		if v, err := s.current(ctx, r.Key); err == nil && v.etag == r.Version {
			return v, nil
		}
	}
	return version{etag: r.Version}, nil
}

// current is the original's current version, remembered for ETagTTL;
// concurrent look-ups of one key make one request to the store, which
// each leaves when its own request ends.
func (s *Service) current(ctx context.Context, key string) (version, error) {
	if v, ok := s.versions.Get(key); ok {
		return v, nil
	}
	looked := s.heads.DoChan(key, func() (any, error) {
		// Shared by every request asking now: not ended by the first one's
		// end.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RenderTimeout)
		defer cancel()
		v, err := s.look(ctx, key)
		if err != nil {
			return version{}, fmt.Errorf("original: %w", err)
		}
		s.versions.Put(key, v)
		return v, nil
	})
	select {
	case res := <-looked:
		return res.Val.(version), res.Err
	case <-ctx.Done():
		return version{}, context.Cause(ctx)
	}
}

// look is the version of the original key stored now, asked of the store
// (current remembers it). Errors are the store's.
func (s *Service) look(ctx context.Context, key string) (version, error) {
	obj, err := s.d.Sources.Head(ctx, key)
	if err != nil {
		return version{}, err
	}
	return version{etag: strings.Trim(obj.ETag, `"`), meta: obj.Metadata, modified: obj.LastModified}, nil
}

// fromVariant serves the preset r asks for from the variant the pipeline
// stored, when it was made from version v of the original, with v's focal
// point (the same picture stored again with another keeps its ETag), by
// the preset's current definition (after VARIANTS changes, the stored
// outputs are of the old one until they are made again). The variant is looked
// for where the original's key predicts it, and else (no extension, one
// that lies) where the original's manifest says it is.
func (s *Service) fromVariant(ctx context.Context, r Request, p pipeline.Preset, v version) (Image, bool, error) {
	key := p.Stored
	data, obj, err := s.read(ctx, key, r.describe())
	if key == "" || errors.Is(err, storage.ErrNotFound) {
		listed, lerr := s.d.Presets.StoredVariant(ctx, r.Key, r.Preset)
		switch {
		case lerr != nil:
			return Image{}, false, fmt.Errorf("variant: %w", lerr)
		case listed == "" || listed == key:
			return Image{}, false, nil
		}
		data, obj, err = s.read(ctx, listed, r.describe())
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Image{}, false, nil
	case err != nil:
		return Image{}, false, err
	case strings.Trim(obj.Metadata[metaSourceETag], `"`) != v.etag:
		return Image{}, false, nil // a variant of another version: not this one
	case obj.Metadata[pipeline.MetaSourceFocus] != pipeline.SourceFocus(v.meta):
		return Image{}, false, nil // made before the focal point changed
	case obj.Metadata[pipeline.MetaVariantDigest] != p.Digest:
		return Image{}, false, nil // made by another definition of the variant
	}
	// Last-Modified is the original's, as for a render, when it is known:
	// the variant's own changes with every run that writes it again.
	modified := v.modified
	if modified.IsZero() {
		modified = obj.LastModified
	}
	return Image{Data: data, Size: obj.Size, ContentType: obj.ContentType, ETag: obj.ETag, LastModified: modified,
		Outcome: Variant, written: obj.LastModified}, true, nil
}

// read gets an object, or only its description; no key is none.
func (s *Service) read(ctx context.Context, key string, describeOnly bool) ([]byte, storage.Object, error) {
	if key == "" {
		return nil, storage.Object{}, storage.ErrNotFound
	}
	if describeOnly {
		obj, err := s.d.Cache.Head(ctx, key)
		return nil, obj, err
	}
	return s.d.Cache.Get(ctx, key, storage.GetOptions{})
}

// log is the logger of ctx, the request's (with its id), or Deps.Logger
// when ctx carries none.
func (s *Service) log(ctx context.Context) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &s.d.Logger
}
