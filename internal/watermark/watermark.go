// Package watermark keeps the images that the watermark option names:
// objects under one prefix of the store (WATERMARK_PREFIX), read once and
// held in memory, within a bound in bytes, for every request and variant
// that names them. A Cache is the service's imageproc.Watermarks.
//
// It is a package of its own, not a part of pipeline or storage: the
// pipeline turns originals into variants and POST /resize needs the
// watermarks without it, and storage knows nothing of what objects mean.
// This package is the one place where a watermark name becomes a key, and
// where the store's errors become imageproc's (a missing watermark is an
// unusable watermark, imageproc.ErrBadWatermark, not a missing object).
package watermark

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// Store is what the cache needs of a store.
type Store interface {
	Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error)
	Head(ctx context.Context, key string) (storage.Object, error)
}

// Config is where watermarks are kept and how many bytes of them are held.
type Config struct {
	// Prefix is the key prefix of watermarks; a watermark's name is the
	// rest of its key.
	Prefix string
	// MaxBytes bounds one watermark file; CacheBytes all those held at
	// once, at least MaxBytes.
	MaxBytes, CacheBytes int64
	// Apart are the prefixes of the store's other objects (originals,
	// variants, rejected originals), which Prefix must not overlap: a
	// watermark name could otherwise read one of them, or an upload's
	// key become a watermark.
	Apart []string
}

// ErrOverlap is a watermark prefix that overlaps the prefix of other
// objects of its store.
var ErrOverlap = errors.New("watermarks would share keys with other objects")

// Validate reports, with ErrOverlap, a Prefix that is empty or that
// contains, or lies inside, one of the Apart prefixes (an empty one holds
// every key).
func (cfg Config) Validate() error {
	if cfg.Prefix == "" {
		return fmt.Errorf("%w: an empty prefix holds every key", ErrOverlap)
	}
	var errs []error
	for _, p := range cfg.Apart {
		if strings.HasPrefix(p, cfg.Prefix) || strings.HasPrefix(cfg.Prefix, p) {
			errs = append(errs, fmt.Errorf("%w: prefix %q and %q overlap", ErrOverlap, cfg.Prefix, p))
		}
	}
	return errors.Join(errs...)
}

// refreshAfter is how long a watermark is used before the store is asked
// whether it changed (a HEAD; the bytes are read again only when its ETag
// did): an operator who replaces a watermark sees it used within a
// minute, for one small request a minute per watermark and server.
const refreshAfter = time.Minute

// checkWait bounds how long a request waits for the check of a watermark
// it holds (HEAD, and a read when it changed) before it uses the one held:
// a store that answers slowly or not at all would otherwise hold every
// request that names the watermark for up to loadTimeout, once a minute,
// or for ever behind one another while it does not answer, with its bytes
// in memory. The check goes on, and the requests after it use its answer.
const checkWait = 2 * time.Second

// loadTimeout bounds one read of a watermark. The read is shared by every
// request waiting for it, so it runs on when the request that started it
// ends, and the next request finds the watermark held.
const loadTimeout = 30 * time.Second

// Cache reads watermarks from a store and holds the most recently used,
// up to CacheBytes. It is safe for concurrent use; concurrent requests for
// a watermark that is not held share one read.
type Cache struct {
	cfg     Config
	st      Store
	now     func() time.Time
	flights singleflight.Group
	wait    time.Duration // checkWait

	mu    sync.Mutex
	held  map[string]*list.Element // of *entry, by name
	order *list.List               // most recently used first
	bytes int64
}

// entry is one watermark held.
type entry struct {
	name    string
	data    []byte
	etag    string
	checked time.Time // when the store last said it was current
}

// New returns a cache of the watermarks of st. It fails as Validate does,
// and when MaxBytes is not positive or CacheBytes is under it.
func New(cfg Config, st Store) (*Cache, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("watermark: %w", err)
	}
	if cfg.MaxBytes <= 0 || cfg.CacheBytes < cfg.MaxBytes {
		return nil, fmt.Errorf("watermark: cache of %d bytes for watermarks of up to %d", cfg.CacheBytes, cfg.MaxBytes)
	}
	return &Cache{cfg: cfg, st: st, now: time.Now, wait: checkWait, held: map[string]*list.Element{}, order: list.New()}, nil
}

// Watermark returns the bytes of the watermark called name: the object
// Prefix+name, held or read. The bytes are shared and must not be written
// to.
//
// Errors: imageproc.ErrBadWatermark (an imageproc.ErrBadOption) when
// there is no such watermark, when name is not a valid key (empty,
// absolute, with a "." or ".." segment) or when the file is over
// MaxBytes; the store's own error, wrapped, when it cannot be reached
// (storage.ErrUnavailable) or refuses; ctx's error.
func (c *Cache) Watermark(ctx context.Context, name string) ([]byte, error) {
	// The whole key too, as the pipeline checks an upload's: a name that
	// is a valid key may not be one under the prefix (over S3's 1,024
	// bytes), which S3 answers with an error of its own (a 500 here).
	if storage.ValidateKey(name) != nil || storage.ValidateKey(c.cfg.Prefix+name) != nil {
		return nil, fmt.Errorf("%w: watermark %q is not a valid name", imageproc.ErrBadWatermark, name)
	}
	held, fresh := c.fresh(name)
	if fresh {
		return held, nil
	}
	ch := c.flights.DoChan(name, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		return c.load(ctx, name)
	})
	var late <-chan time.Time
	if held != nil {
		t := time.NewTimer(c.wait)
		defer t.Stop()
		late = t.C
	}
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.([]byte), nil
	case <-late:
		return held, nil // the check is slow: the one held, as when it fails
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// fresh returns the watermark when it is held (nil when not), and whether
// it was checked recently.
func (c *Cache) fresh(name string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.held[name]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	e := el.Value.(*entry)
	return e.data, c.now().Sub(e.checked) < refreshAfter
}

// load reads a watermark, or checks that the one held is current. A held
// watermark that the store cannot be asked about is used as it is: it
// was right a minute ago, and the next request asks again.
func (c *Cache) load(ctx context.Context, name string) ([]byte, error) {
	key := c.cfg.Prefix + name
	if old, ok := c.entry(name); ok {
		// Read or checked by a load that finished between this request's
		// look and its flight: nothing to ask the store.
		if c.now().Sub(old.checked) < refreshAfter {
			return old.data, nil
		}
		obj, err := c.st.Head(ctx, key)
		switch {
		case err == nil && obj.ETag == old.etag:
			c.checked(name, old.etag)
			return old.data, nil
		case errors.Is(err, storage.ErrNotFound):
			c.drop(name)
		case err != nil:
			return old.data, nil
		}
	}
	data, obj, err := c.st.Get(ctx, key, storage.GetOptions{MaxBytes: c.cfg.MaxBytes})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("%w: no watermark %q", imageproc.ErrBadWatermark, name)
	case errors.Is(err, storage.ErrTooLarge):
		return nil, fmt.Errorf("%w: watermark %q is larger than the %d bytes a watermark may have", imageproc.ErrBadWatermark, name, c.cfg.MaxBytes)
	case errors.Is(err, storage.ErrInvalidKey):
		return nil, fmt.Errorf("%w: watermark %q is not a valid name", imageproc.ErrBadWatermark, name)
	case err != nil:
		return nil, fmt.Errorf("watermark %q: %w", name, err)
	}
	c.hold(&entry{name: name, data: data, etag: obj.ETag, checked: c.now()})
	return data, nil
}

// entry returns a copy of the entry held for name.
func (c *Cache) entry(name string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.held[name]; ok {
		return *el.Value.(*entry), true
	}
	return entry{}, false
}

// checked notes that the store still has the watermark held for name.
func (c *Cache) checked(name, etag string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.held[name]; ok && el.Value.(*entry).etag == etag {
		el.Value.(*entry).checked = c.now()
	}
}

// hold keeps e, in place of any entry of its name, and lets go of the
// least recently used until the bytes held are within CacheBytes.
func (c *Cache) hold(e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(e.name)
	c.held[e.name] = c.order.PushFront(e)
	c.bytes += int64(len(e.data))
	for c.bytes > c.cfg.CacheBytes {
		c.dropLocked(c.order.Back().Value.(*entry).name)
	}
}

func (c *Cache) drop(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(name)
}

func (c *Cache) dropLocked(name string) {
	if el, ok := c.held[name]; ok {
		c.order.Remove(el)
		delete(c.held, name)
		c.bytes -= int64(len(el.Value.(*entry).data))
	}
}

// usage returns the number of watermarks held and their bytes.
func (c *Cache) usage() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held), c.bytes
}
