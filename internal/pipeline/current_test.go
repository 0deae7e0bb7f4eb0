package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resizer/resizer/internal/storage"
)

// traffic records the reads and writes of a store, by key.
type traffic struct {
	Store
	mu         sync.Mutex
	gets, puts []string
}

func (s *traffic) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	s.mu.Lock()
	s.gets = append(s.gets, key)
	s.mu.Unlock()
	return s.Store.Get(ctx, key, o)
}

func (s *traffic) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	s.mu.Lock()
	s.puts = append(s.puts, key)
	s.mu.Unlock()
	return s.Store.Put(ctx, key, data, o)
}

// reset forgets what was recorded.
func (s *traffic) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets, s.puts = nil, nil
}

// TestManifestOnlyStale: once VARIANTS_BASE_URL changes (the variants
// moved behind a CDN), or a variant is no longer configured, an original
// whose variants are current is not: the plan counts it to regenerate,
// its manifest only, and a run writes its manifest again, with the new
// URLs, without reading the original or writing a variant; then it is
// current.
func TestManifestOnlyStale(t *testing.T) {
	pr := proc(t)
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			tr := &traffic{Store: st}
			with := func(def, base string, n Notifier) *Pipeline {
				t.Helper()
				cfg := testConfig(t)
				var err error
				if cfg.Variants, err = ParseVariants(def, 8192); err != nil {
					t.Fatal(err)
				}
				cfg.PublicBaseURL, cfg.ObjectURL, cfg.Ready = base, storage.ObjectPath, n
				p, err := New(cfg, tr, tr, pr)
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			lister := st.(OutputLister)
			plan := func(p *Pipeline) Plan {
				t.Helper()
				plan, err := p.Plan(ctx, lister, lister, PlanOptions{Concurrency: 2})
				if err != nil {
					t.Fatal(err)
				}
				return plan
			}
			const defs = "thumb:40x40:cover,small:100x0,large:200x0:webp"
			key := "uploads/a/photo+1.jpg"
			before, err := with(defs, "", nil).Upload(ctx, key, grey(t, 400, 300), nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := "/objects/resized%2Fsmall%2Fa%2Fphoto"; !strings.HasPrefix(before.Manifest.Srcset, want) {
				t.Fatalf("srcset %q, want %s first", before.Manifest.Srcset, want)
			}

			n := &notes{}
			cdn := with(defs, "https://cdn.example.com/", n)
			if pl := plan(cdn); pl.Current != 0 || pl.Regenerate != 1 || pl.Manifests != 1 || pl.SourceBytes != 0 || !pl.Tasks[0].ManifestOnly {
				t.Fatalf("plan after the base URL changed: %+v", pl)
			}
			tr.reset()
			res, err := cdn.Run(ctx, key, "")
			if err != nil || res.Status != StatusProcessed || res.Manifest == nil {
				t.Fatalf("run: %+v %v", res, err)
			}
			if !slices.Equal(tr.puts, []string{cdn.ManifestKey(key)}) || slices.Contains(tr.gets, key) {
				t.Errorf("wrote %v and read %v, want the manifest written alone and the original unread", tr.puts, tr.gets)
			}
			m, ok, err := cdn.readManifest(ctx, key)
			if err != nil || !ok {
				t.Fatalf("stored manifest: %v %v", ok, err)
			}
			const want = "https://cdn.example.com/resized/small/a/photo%2B1.jpg 100w, https://cdn.example.com/resized/large/a/photo%2B1.jpg.webp 200w"
			if m.Srcset != want || m.Variants[0].URL != "https://cdn.example.com/resized/thumb/a/photo%2B1.jpg" {
				t.Errorf("stored manifest: srcset %q, thumb %q; want srcset %q", m.Srcset, m.Variants[0].URL, want)
			}
			// All else as the variants were made.
			if m.ETag != before.ETag || m.Width != 400 || m.Height != 300 || m.Format != "jpeg" || m.Bytes != before.Bytes ||
				!slices.Equal(m.ThumbHash, before.Manifest.ThumbHash) || m.DominantColor != before.Manifest.DominantColor {
				t.Errorf("stored manifest %+v, made as %+v", m, before.Manifest)
			}
			for i, v := range m.Variants {
				if w := before.Manifest.Variants[i]; v.Key != w.Key || v.Width != w.Width || v.Height != w.Height || v.Bytes != w.Bytes ||
					v.Format != w.Format || v.Digest != w.Digest {
					t.Errorf("variant %d: %+v, made as %+v", i, v, w)
				}
			}
			if len(n.ms) != 1 || n.ms[0].Srcset != want {
				t.Errorf("ready signals %+v", n.ms)
			}
			if pl := plan(cdn); pl.Current != 1 || pl.Regenerate != 0 || pl.Manifests != 0 {
				t.Errorf("plan after the run: %+v", pl)
			}
			if r, err := cdn.Run(ctx, key, ""); err != nil || r.Status != StatusUpToDate {
				t.Errorf("run again: %+v %v", r, err)
			}

			// A variant no longer configured: the manifest alone is
			// written again, and the retired output deleted.
			fewer := with("thumb:40x40:cover,small:100x0", "https://cdn.example.com/", nil)
			if pl := plan(fewer); pl.Regenerate != 1 || pl.Manifests != 1 {
				t.Fatalf("plan with a variant retired: %+v", pl)
			}
			tr.reset()
			res, err = fewer.Run(ctx, key, "")
			if err != nil || res.Status != StatusProcessed || !slices.Equal(res.Pruned, []string{"resized/large/a/photo+1.jpg.webp"}) ||
				len(res.Manifest.Variants) != 2 {
				t.Fatalf("run with a variant retired: %+v %v", res, err)
			}
			if !slices.Equal(tr.puts, []string{fewer.ManifestKey(key)}) {
				t.Errorf("wrote %v, want the manifest alone", tr.puts)
			}
			if _, err := st.Head(ctx, "resized/large/a/photo+1.jpg.webp"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("retired output: %v, want deleted", err)
			}

			// A changed definition is no manifest's alone.
			changed := with("thumb:40x40:cover,small:120x0", "https://cdn.example.com/", nil)
			if pl := plan(changed); pl.Regenerate != 1 || pl.Manifests != 0 || pl.SourceBytes == 0 {
				t.Fatalf("plan with a changed definition: %+v", pl)
			}
		})
	}
}

// Everything a manifest's content depends on besides its outputs changes
// its digest, and nothing else does.
func TestManifestDigest(t *testing.T) {
	d := func(cfg Config) string { return (&Pipeline{cfg: cfg}).manifestDigest() }
	base := d(Config{})
	for _, tc := range []struct {
		name    string
		cfg     Config
		changes bool
	}{
		{"a base URL", Config{PublicBaseURL: "https://cdn.example.com/"}, true},
		{"the same without its slash", Config{PublicBaseURL: "https://cdn.example.com"}, true},
		{"the local store's object URLs", Config{ObjectURL: storage.ObjectPath}, true},
		{"another output prefix", Config{OutputPrefix: "out/"}, false},
	} {
		if got := d(tc.cfg) != base; got != tc.changes {
			t.Errorf("%s changes the digest: %v, want %v", tc.name, got, tc.changes)
		}
	}
	if d(Config{PublicBaseURL: "https://cdn.example.com/"}) != d(Config{PublicBaseURL: "https://cdn.example.com"}) {
		t.Error("one base URL with and without its slash: two digests, for one manifest")
	}
}
