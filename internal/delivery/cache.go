package delivery

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// The derived cache, in the output store:
//
//	{OUTPUT_PREFIX}_cache/{original's key}/{its ETag}/{options digest}
//	{OUTPUT_PREFIX}_cache/{original's key}/{its ETag}/{options digest}.path-{path digest}
//	{OUTPUT_PREFIX}_cache/{original's key}/{its ETag}/{options digest}.preset-{name}.path-{path digest}
//
// The first is a derived image; the digest is of the options' canonical
// form (imageproc's Options.Canonical, and for a negotiated format the
// formats the client takes), so that two spellings of the same options
// share one image; for a preset, of its name and definition (presetEntry). The
// second, written only with a CDN to invalidate, is a marker whose body is
// one request path the image was served under: a signed URL's spellings,
// keys, expiry times and the unsigned preset all lead to one image, and a
// CDN keeps each path apart, so each must be invalidated. Everything
// derived from one original lies under one folder, to be listed and
// deleted together (Purge), and the original's version is a folder of its
// own, so that a replaced original's images can go while the new ones stay.
// The marker of a path that asked for a preset names it, so that when the
// preset's definition changes, the paths that served the old one are
// found (their options digest is no longer the preset's) and invalidated.

// Metadata written on a derived image.
const (
	metaSourceKey      = pipeline.MetaSourceKey  // the original's key, escaped
	metaSourceETag     = pipeline.MetaSourceETag // its ETag, unquoted
	metaOptions        = "options"               // the canonical options
	metaDigest         = "digest"                // MD5 of the image, hex: its ETag
	metaSourceModified = "source-modified"       // the original's Last-Modified, Unix seconds
)

// metaExpires, on a marker, is when its path stops working (Unix
// seconds), for a path that expires: no cache keeps it past then.
const metaExpires = "expires"

// markerInfix separates a derived image's name from its markers'.
const markerInfix = ".path-"

// recordedTTL is how long a marker written is remembered before it is
// written again when its path is served: the cache's lifecycle rule counts
// an object's age from its last write, and must not expire a marker while
// a CDN may still hold its path (docs/delivery.md).
const recordedTTL = 24 * time.Hour

// entry is one derived image's place in the cache.
type entry struct {
	source string // the original's key
	etag   string // the version it is made from, unquoted
	key    string // where it is kept
	// options are what the image is made with: for a preset, those it
	// takes for the original as it was looked at (its focal point is in
	// its metadata), which the original as read must give again.
	options imageproc.Options
	preset  *pipeline.Preset
}

// plainETag is an ETag that can be a key segment as it is: one an S3
// store gives (hex, "-N" for a multipart upload).
var plainETag = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// etagSegment is an ETag as a key segment: as it is when it is plain,
// else a digest of it.
func etagSegment(etag string) string {
	if plainETag.MatchString(etag) {
		return etag
	}
	sum := sha256.Sum256([]byte(etag))
	return "h" + hex.EncodeToString(sum[:16])
}

// folder is where everything derived from the original key lies.
func (s *Service) folder(key string) string { return s.cfg.CachePrefix + key + "/" }

func (s *Service) entry(key, etag string, o imageproc.Options) entry {
	c := o.Canonical()
	if len(o.Prefer) > 0 {
		names := make([]string, len(o.Prefer))
		for i, f := range o.Prefer {
			names[i] = f.String()
		}
		c += "\nprefer=" + strings.Join(names, ",")
	}
	c += s.made(o)
	return entry{source: key, etag: etag, options: o, key: s.place(key, etag, c)}
}

// made is what, besides its options, decides the image an entry holds:
// the default quality of each format it may be written in, when o sets
// none, and the way this program writes images (pipeline.EncoderVersion).
// Each is named only where it is not the first: a default quality that is
// the format's own, and the first encoder version, name nothing, so the
// entries made before either was part of the name are still found.
func (s *Service) made(o imageproc.Options) string {
	var b strings.Builder
	if v := pipeline.EncoderVersion; v != "1" {
		b.WriteString("\nencoder=" + v)
	}
	if o.Quality != 0 {
		return b.String()
	}
	for _, f := range slices.Sorted(maps.Keys(s.cfg.Qualities)) {
		q := s.cfg.Qualities[f]
		if q == 0 || q == f.DefaultQuality() {
			continue
		}
		if o.Format == imageproc.FormatUnknown || o.Format == f {
			fmt.Fprintf(&b, "\nquality.%s=%d", f, q)
		}
	}
	return b.String()
}

// place is where the image named by form (its canonical options, or its
// preset) of version etag of the original key is kept.
func (s *Service) place(key, etag, form string) string {
	sum := sha256.Sum256([]byte(form))
	return s.folder(key) + etagSegment(etag) + "/" + hex.EncodeToString(sum[:16])
}

// presetEntry is the place of preset name's image, made from version v
// of the original key: apart from the same options spelled out, since a
// preset is cut around the original's focal point as its stored variant
// is; named by the preset's definition, so that a definition changed
// since is another image; and by the options it takes for v when they
// differ from the definition's (cut around v's focal point), so that the
// same picture stored again with another focal point (the same ETag) is
// another image too.
func (s *Service) presetEntry(key string, v version, name string, p pipeline.Preset) entry {
	form := "preset " + name + "\n" + p.Digest
	opts := p.OptionsFor(v.meta)
	if c := opts.Canonical(); c != p.Options.Canonical() {
		form += "\n" + c
	}
	return entry{source: key, etag: v.etag, options: opts, preset: &p, key: s.place(key, v.etag, form)}
}

// presetInfix precedes, in the name of a marker of a preset's path, the
// preset's name: the path serves whatever the preset's definition is, so
// that a marker of a definition since changed is found stale (Purge).
const presetInfix = ".preset-"

// marker is where the path of a request served from the entry at
// entryKey is recorded, with the name of the preset it asked for, if any.
func marker(entryKey, path, preset string) string {
	sum := sha256.Sum256([]byte(path))
	if preset != "" {
		entryKey += presetInfix + preset
	}
	return entryKey + markerInfix + hex.EncodeToString(sum[:8])
}

// fromCache serves the derived image e, or fails with storage.ErrNotFound.
func (s *Service) fromCache(ctx context.Context, e entry, describeOnly bool) (Image, error) {
	data, obj, err := s.read(ctx, e.key, describeOnly)
	if err != nil {
		return Image{}, fmt.Errorf("derived image: %w", err)
	}
	d := obj.Metadata[metaDigest]
	if d == "" || obj.ContentType == "" {
		// Not whole yet: the local store renames an object's file into
		// place before its metadata. Absent, then: the render writing it
		// is still in flight, and is joined.
		return Image{}, fmt.Errorf("derived image %q without its metadata: %w", e.key, storage.ErrNotFound)
	}
	if data != nil {
		// Not the bytes the render made: a file a power loss left its size
		// but not its data (it is written without waiting for the disk),
		// or something else written in its place. Never served under the
		// ETag that names other bytes: a miss, made again and written over.
		// The check (an MD5, 67 µs for a 40 KB image, a sixth of a hit's
		// cost) is made once per object as the store stands: a version
		// checked is remembered, and any write makes another.
		stored := e.key + "\n" + obj.ETag + "\n" + strconv.FormatInt(obj.LastModified.UnixNano(), 10) + "\n" + strconv.FormatInt(obj.Size, 10)
		if _, ok := s.verified.Get(stored); !ok {
			if digestETag(data) != `"`+d+`"` {
				s.log(ctx).Warn().Str("key", e.key).Msg("derived image does not match its digest: made again")
				return Image{}, fmt.Errorf("derived image %q does not match its digest: %w", e.key, storage.ErrNotFound)
			}
			s.verified.Put(stored, struct{}{})
		}
	}
	// The ETag is the one the render gave, whatever ETags the store makes
	// (S3's are not an MD5 under KMS encryption).
	img := Image{Data: data, Size: obj.Size, ContentType: obj.ContentType, ETag: `"` + d + `"`, LastModified: obj.LastModified,
		Outcome: Hit, written: obj.LastModified}
	if n, err := strconv.ParseInt(obj.Metadata[metaSourceModified], 10, 64); err == nil {
		img.LastModified = time.Unix(n, 0)
	}
	return img, nil
}

// keep writes a rendered image to the cache.
func (s *Service) keep(ctx context.Context, e entry, img Image) error {
	_, err := s.d.Cache.Put(ctx, e.key, img.Data, storage.PutOptions{
		ContentType: img.ContentType,
		Rebuildable: true, // a torn one, without its metadata, is a miss (fromCache)
		Metadata: map[string]string{
			metaSourceKey:      (&url.URL{Path: e.source}).EscapedPath(),
			metaSourceETag:     e.etag,
			metaOptions:        img.options,
			metaDigest:         strings.Trim(img.ETag, `"`),
			metaSourceModified: strconv.FormatInt(img.LastModified.Unix(), 10),
		},
	})
	return err
}

// digestETag is the strong ETag of bytes: their MD5, as S3 and the local
// store give it for an object written whole.
func digestETag(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// record writes, before a path is answered, a marker that it was served,
// so that Purge can invalidate it; only when there is a CDN to invalidate.
// A marker written too late for the purge of its version to find fails
// (recordedInTime): the answer is then made uncacheable.
// A marker written is remembered for recordedTTL with the object it was
// served from (when it was written, or rendered): an image written again
// (after a purge, which deleted the markers too) is recorded again.
// Requests recording the same at once write once: the write is theirs
// together, so the end of the one that started it ends neither the write
// nor the others' wait (each leaves when its own request ends).
func (s *Service) record(ctx context.Context, r Request, e entry, img Image) error {
	if s.d.Invalidator == nil {
		return nil
	}
	path := r.Path
	m := marker(e.key, path, r.Preset)
	seen := m + "\x00" + img.written.UTC().Format(time.RFC3339Nano)
	if _, ok := s.recorded.Get(seen); ok {
		return nil
	}
	written := s.markers.DoChan(seen, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RenderTimeout)
		defer cancel()
		opts := storage.PutOptions{ContentType: "text/plain"}
		if !r.Expires.IsZero() {
			opts.Metadata = map[string]string{metaExpires: strconv.FormatInt(r.Expires.Unix(), 10)}
		}
		if _, err := s.d.Cache.Put(ctx, m, []byte(path), opts); err != nil {
			return nil, fmt.Errorf("record path: %w", err)
		}
		if err := s.recordedInTime(ctx, e); err != nil {
			return nil, err
		}
		s.recorded.Put(seen, struct{}{})
		return nil, nil
	})
	select {
	case res := <-written:
		return res.Err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// recordedInTime fails, once the marker of a path served from e is
// written, when the original is no longer the version e was made from (or,
// for a preset, no longer has its focal point), or cannot be looked at.
//
// A purge lists the markers of a version only after the original was
// replaced (or deleted): the webhook, an upload and reconcile purge once
// they have seen the change. A request that read the old image before the
// purge deleted it may write its marker after the listing; that path would
// be neither invalidated nor deleted, and the CDN would keep the old
// picture under it for as long as s-maxage allows. The store is
// read-after-write consistent (S3's list and head are), so looking at the
// original after the marker is written closes it: if the original is
// still e's version, the look came before the change, the write before
// the look, and so before any listing of the purge that follows the
// change, which then finds the marker; if it is not, the path is answered
// uncacheable and no CDN keeps it. Listing again after a purge would not
// do: a request that read the image before the delete may write its
// marker after any listing. It costs one HEAD per marker written (at most
// one per path a day, recordedTTL), none per hit.
func (s *Service) recordedInTime(ctx context.Context, e entry) error {
	v, err := s.look(ctx, e.source)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("record path: %w: deleted", errSuperseded)
	case err != nil:
		return fmt.Errorf("record path: look at the original: %w", err)
	case v.etag != e.etag, !e.takes(v.meta):
		return fmt.Errorf("record path: %w: version %s replaced", errSuperseded, e.etag)
	}
	return nil
}
