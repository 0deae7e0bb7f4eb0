package pipeline

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/storage"
)

func TestDigest(t *testing.T) {
	parse := func(s string) Variant {
		t.Helper()
		vs, err := ParseVariants(s, 8192)
		if err != nil {
			t.Fatal(err)
		}
		return vs[0]
	}
	base := parse("medium:800x0").Digest()
	for _, tc := range []struct {
		def  string
		same bool
	}{
		{"medium:800x0:inside", true}, // the default fit spelt out
		{"other:800x0", true},         // the name is the key, not the definition
		{"medium:800x0?quality=70", false},
		{"medium:300x0", false},
		{"medium:800x0:webp", false},
		{"medium:800x0:cover", false},
		{"medium:800x0?sharpen=1", false},
	} {
		if got := parse(tc.def).Digest(); (got == base) != tc.same {
			t.Errorf("%s: digest %s, medium:800x0's %s, want same=%v", tc.def, got, base, tc.same)
		}
	}
	// The default qualities count where they apply: a changed WEBP_QUALITY
	// makes a WebP variant out of date, and one that keeps the source's
	// format; neither a JPEG variant nor one that sets its quality.
	with := func(def string, jpeg, webp int) string {
		v := parse(def)
		v.Qualities = map[imageproc.Format]int{imageproc.FormatJPEG: jpeg, imageproc.FormatWebP: webp}
		return v.Digest()
	}
	for _, tc := range []struct {
		def     string
		changes bool
	}{
		{"w:800x0:webp", true},
		{"any:800x0", true},
		{"j:800x0:jpeg", false},
		{"q:800x0:webp?quality=70", false},
	} {
		if changed := with(tc.def, 80, 75) != with(tc.def, 80, 60); changed != tc.changes {
			t.Errorf("%s: WEBP_QUALITY 75 to 60 changes the digest: %v, want %v", tc.def, changed, tc.changes)
		}
	}
}

// notes records ready signals.
type notes struct {
	mu sync.Mutex
	ms []Manifest
}

func (n *notes) Ready(_ context.Context, m Manifest) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ms = append(n.ms, m)
	return nil
}

// TestDefinitionChange: outputs made under one VARIANTS are out of date
// under another that changes a definition; the run remakes them, deletes
// the variant no longer configured (and nothing in a reserved segment),
// writes the manifest and signals once.
func TestDefinitionChange(t *testing.T) {
	ctx := t.Context()
	st := dirStore(t)
	pr := proc(t)
	withVariants := func(def string, n Notifier) *Pipeline {
		t.Helper()
		cfg := testConfig(t)
		vs, err := ParseVariants(def, 8192)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Variants, cfg.Ready, cfg.PublicBaseURL = vs, n, "https://cdn.example/"
		p, err := New(cfg, st, st, pr)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	oldP := withVariants("thumb:200x200:cover,medium:800x0,old:100x0", nil)
	key := "uploads/a/photo.jpg"
	res, err := oldP.Upload(ctx, key, imagetest.Photo(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest == nil || len(res.Manifest.Variants) != 3 || res.Manifest.Srcset !=
		"https://cdn.example/resized/old/a/photo.jpg 100w, https://cdn.example/resized/medium/a/photo.jpg 800w" /* not the square thumb */ ||
		len(res.Manifest.ThumbHash) < 5 || len(res.Manifest.DominantColor) != 6 {
		t.Fatalf("manifest %+v", res.Manifest)
	}
	// Something of delivery by URL's in the reserved segment.
	if _, err := st.Put(ctx, "resized/_cache/old/a/photo.jpg", []byte("x"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if r, err := oldP.Run(ctx, key, ""); err != nil || r.Status != StatusUpToDate {
		t.Fatalf("same definitions: %+v %v", r, err)
	}

	n := &notes{}
	newP := withVariants("thumb:200x200:cover,medium:300x0,large:600x0:webp", n)
	r, err := newP.Run(ctx, key, "")
	if err != nil || r.Status != StatusProcessed {
		t.Fatalf("changed definitions: %+v %v", r, err)
	}
	if !slices.Equal(r.Pruned, []string{"resized/old/a/photo.jpg"}) {
		t.Errorf("pruned %v", r.Pruned)
	}
	for _, k := range []string{"resized/old/a/photo.jpg"} {
		if _, err := st.Head(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want gone", k, err)
		}
	}
	for i, k := range []string{"resized/thumb/a/photo.jpg", "resized/medium/a/photo.jpg", "resized/large/a/photo.jpg.webp", "resized/_cache/old/a/photo.jpg"} {
		obj, err := st.Head(ctx, k)
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if i < 3 && obj.Metadata[MetaVariantDigest] != newP.cfg.Variants[i].Digest() {
			t.Errorf("%s: digest %q, want %q", k, obj.Metadata[MetaVariantDigest], newP.cfg.Variants[i].Digest())
		}
	}
	if r.Outputs[1].Width != 300 {
		t.Errorf("medium is %dpx wide, want 300", r.Outputs[1].Width)
	}
	if len(n.ms) != 1 || n.ms[0].Key != key || len(n.ms[0].Variants) != 3 {
		t.Fatalf("ready signals %+v", n.ms)
	}
	m, ok, err := newP.readManifest(ctx, key)
	if err != nil || !ok || m.Variants[2].Key != "resized/large/a/photo.jpg.webp" || m.Variants[2].Digest != newP.cfg.Variants[2].Digest() {
		t.Fatalf("stored manifest %+v %v %v", m, ok, err)
	}
	if r, err := newP.Run(ctx, key, ""); err != nil || r.Status != StatusUpToDate || len(n.ms) != 1 {
		t.Fatalf("rerun: %+v %v, %d signals", r, err, len(n.ms))
	}
	// Deleting the original deletes its variants and manifest, and
	// nothing reserved.
	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := newP.Remove(ctx, key); err != nil {
		t.Fatal(err)
	}
	left, err := st.List(ctx, "resized/", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || !strings.HasPrefix(left[0].Key, "resized/_cache/") {
		t.Errorf("left after removal: %+v", left)
	}
}

func TestSrcset(t *testing.T) {
	v := func(name string, w, h int) ManifestVariant { return ManifestVariant{URL: name, Width: w, Height: h} }
	for _, tc := range []struct {
		vs   []ManifestVariant
		w, h int
		want string
	}{
		{[]ManifestVariant{v("l", 1600, 1000), v("sq", 200, 200), v("s", 40, 25), v("m", 800, 500)}, 2560, 1600, "s 40w, m 800w, l 1600w"},
		{[]ManifestVariant{v("a", 800, 500), v("b", 800, 501)}, 1600, 1000, "a 800w"},         // one URL a width
		{[]ManifestVariant{v("t", 7, 5)}, 1000, 666, "t 7w"},                                  // rounding at small sizes
		{[]ManifestVariant{v("sq", 200, 200), v("x", 100, 100)}, 300, 200, "x 100w, sq 200w"}, // no whole picture: all
	} {
		if got := srcset(tc.vs, nil, tc.w, tc.h); got != tc.want {
			t.Errorf("%v of %dx%d: %q, want %q", tc.vs, tc.w, tc.h, got, tc.want)
		}
	}
	// A variant of the original's aspect that does not show the whole
	// picture as it is (a crop of its middle, the picture upside down or
	// mirrored, a trim of its border, a pad, a blur) is no candidate: a
	// browser would show it at the widths it picks that one for.
	vs, err := ParseVariants("m:800x0;l:1600x0;"+
		"zoom:850x0?crop=640,400,1280,800;"+ // the middle half, of the aspect of the whole
		"upside:400x0?rotate=180;mirror:500x0?flip=horizontal;"+
		"trimmed:600x0?trim=10;padded:700x0?pad=1,1,1,1;soft:200x0?blur=20;"+
		"marked:900x0?watermark=logo.png&sharpen=1&format=webp&background=fff", 8192)
	if err != nil {
		t.Fatal(err)
	}
	var mv []ManifestVariant
	var opts []imageproc.Options
	for _, v := range vs {
		w, h := v.Options.Width, v.Options.Width*1000/1600
		if v.Options.Height > 0 {
			h = v.Options.Height
		}
		mv, opts = append(mv, ManifestVariant{URL: v.Name, Width: w, Height: h}), append(opts, v.Options)
	}
	if got, want := srcset(mv, opts, 2560, 1600), "m 800w, marked 900w, l 1600w"; got != want {
		t.Errorf("srcset %q, want %q", got, want)
	}
}

// A manifest's URLs name their outputs as a CDN or S3 in front of the
// bucket reads paths: every character a path cannot hold escaped, and "+"
// too, which S3 takes for a space.
func TestPublicURLs(t *testing.T) {
	p := &Pipeline{cfg: Config{PublicBaseURL: "https://cdn.example/"}}
	for key, want := range map[string]string{
		"resized/thumb/a.jpg":        "https://cdn.example/resized/thumb/a.jpg",
		"resized/thumb/a+b.jpg":      "https://cdn.example/resized/thumb/a%2Bb.jpg",
		"resized/thumb/a b.jpg":      "https://cdn.example/resized/thumb/a%20b.jpg",
		"resized/thumb/ü/%41?#.jpg":  "https://cdn.example/resized/thumb/%C3%BC/%2541%3F%23.jpg",
		"resized/thumb/tom's (1).jp": "https://cdn.example/resized/thumb/tom%27s%20%281%29.jp",
	} {
		got := p.PublicURL(key)
		if got != want {
			t.Errorf("%q: %s, want %s", key, got, want)
			continue
		}
		u, err := url.Parse(got)
		if err != nil || strings.TrimPrefix(u.Path, "/") != key {
			t.Errorf("%s reads back as %q (%v)", got, u.Path, err)
		}
	}
}
