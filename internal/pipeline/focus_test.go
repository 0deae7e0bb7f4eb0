package pipeline

import (
	"errors"
	"image"
	"math"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/storage"
)

func TestParseFocus(t *testing.T) {
	for _, tt := range []struct {
		in, want string // want empty: refused
	}{
		{"0.3,0.25", "0.3,0.25"},
		{"0.30, 0.250", "0.3,0.25"},
		{"0,1", "0,1"},
		{"-0,-0.0", "0,0"},
		{"1e-1,0.5", "0.1,0.5"},
		{"", ""},
		{"0.5", ""},
		{"0.5,0.5,0.5", ""},
		{"1.5,0.5", ""},
		{"-0.1,0.5", ""},
		{"NaN,0.5", ""},
		{"left,top", ""},
	} {
		p, err := ParseFocus(tt.in)
		switch {
		case tt.want == "" && !errors.Is(err, imageproc.ErrBadOption):
			t.Errorf("%q: %v, %v, want ErrBadOption", tt.in, p, err)
		case tt.want != "" && (err != nil || FormatFocus(p) != tt.want):
			t.Errorf("%q: %v (%q), %v, want %s", tt.in, p, FormatFocus(p), err, tt.want)
		}
	}
}

// The rule: a cover variant that sets no gravity of its own is cut around
// the focus; every other keeps its definition.
func TestWithFocus(t *testing.T) {
	focus := &imageproc.Point{X: 0.8, Y: 0.2}
	for _, tt := range []struct {
		def       string
		focus     *imageproc.Point
		wantFocus bool
	}{
		{"v:100x100:cover", focus, true},
		{"v:100x0:cover", focus, true},
		{"v:100x100:cover?gravity=center", focus, true}, // center is the default: nothing says otherwise
		{"v:100x100:cover", nil, false},
		{"v:100x100:cover?gravity=north", focus, false},
		{"v:100x100:cover?gravity=smart", focus, false},
		{"v:100x100:cover?gravity=southwest", focus, false},
		{"v:100x100:cover?gravity=focus&focus=0.1,0.1", focus, false}, // its own focus
		{"v:100x100", focus, false},
		{"v:100x100:contain", focus, false},
		{"v:100x100:fill", focus, false},
	} {
		vs, err := ParseVariants(tt.def, 8192)
		if err != nil {
			t.Fatal(err)
		}
		got := withFocus(vs[0], tt.focus)
		if tt.wantFocus {
			if got.Gravity != imageproc.GravityFocus || got.Focus == nil || *got.Focus != *focus {
				t.Errorf("%s: %s, want gravity=focus at %v", tt.def, got.Canonical(), *focus)
			}
			continue
		}
		if got.Canonical() != vs[0].Options.Canonical() {
			t.Errorf("%s: %s, want the definition unchanged", tt.def, got.Canonical())
		}
	}
}

// The marked original: 800x200 grey with a red square centred at
// (680, 100), a focal point of 0.85,0.5. A 100x100 cover thumb scales it
// to 400x100; cut at the centre it keeps x 150..250 and no red, cut
// around the focus it keeps x 290..390, the red square in its middle.
var (
	markerRect  = image.Rect(650, 70, 710, 130)
	markerFocus = imageproc.Point{X: 0.85, Y: 0.5}
)

func focusConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	vs, err := ParseVariants("thumb:100x100:cover;west:100x100:cover?gravity=west;wide:200x0", 8192)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Variants = vs
	return cfg
}

// checkMarker reads the output key of st and checks where its red is:
// at (x, y) within a pixel, or nowhere when want is false.
func checkMarker(t *testing.T, st Store, key string, want bool, x, y float64) {
	t.Helper()
	data, _, err := st.Get(t.Context(), key, storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, gx, gy, ok := imagetest.MarkerCentre(t, data)
	switch {
	case ok != want:
		t.Errorf("%s: marker seen %v, want %v", key, ok, want)
	case ok && (math.Abs(gx-x) > 1 || math.Abs(gy-y) > 1):
		t.Errorf("%s: marker centred at (%g, %g), want (%g, %g)", key, gx, gy, x, y)
	}
}

// Upload makes the variants with the focus it stores; a bad value is no
// focus, logged, and no failure.
func TestUploadWithFocus(t *testing.T) {
	src := imagetest.Marked(t, 800, 200, markerRect)
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p, err := New(focusConfig(t), st, st, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				name   string
				meta   map[string]string
				marker bool   // in the middle of the thumb
				logged string // a warning that names the value
			}{
				{"on the marker", FocusMetadata(&markerFocus), true, ""},
				{"none", nil, false, ""},
				{"not a focus", map[string]string{MetaFocus: "left"}, false, "left"},
				{"out of range", map[string]string{MetaFocus: "1.5,0.5"}, false, "1.5"},
			} {
				var logs logbuf.Buffer
				ctx := zerolog.New(&logs).WithContext(t.Context())
				key := "uploads/" + strings.ReplaceAll(tt.name, " ", "-") + ".png"
				res, err := p.Upload(ctx, key, src, tt.meta)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				checkMarker(t, st, res.Outputs[0].Key, tt.marker, 50, 50)
				// An explicit gravity, and a variant that is not cut, ignore the focus.
				checkMarker(t, st, res.Outputs[1].Key, false, 0, 0)
				checkMarker(t, st, res.Outputs[2].Key, true, 170, 25)

				orig, err := st.Head(t.Context(), key)
				if err != nil || orig.Metadata[MetaFocus] != tt.meta[MetaFocus] {
					t.Errorf("%s: original stored with %v %v, want %v", tt.name, orig.Metadata, err, tt.meta)
				}
				thumb, _ := st.Head(t.Context(), res.Outputs[0].Key)
				if want := FormatFocus(markerFocus); tt.marker && (res.Focus == nil || *res.Focus != markerFocus || thumb.Metadata[MetaSourceFocus] != want) ||
					!tt.marker && (res.Focus != nil || thumb.Metadata[MetaSourceFocus] != "") {
					t.Errorf("%s: result focus %v, output's %q", tt.name, res.Focus, thumb.Metadata[MetaSourceFocus])
				}
				if l := logs.String(); tt.logged == "" && l != "" || tt.logged != "" && !strings.Contains(l, "stored focus ignored") || !strings.Contains(l, tt.logged) {
					t.Errorf("%s: log %q, want a warning with %s", tt.name, l, tt.logged)
				}
			}
		})
	}
}

// Run reads the focus from the stored original. The same bytes stored
// again with another focus keep their ETag, and are made again all the
// same; a stored focus that does not parse counts as none.
func TestRunWithFocus(t *testing.T) {
	src := imagetest.Marked(t, 800, 200, markerRect)
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			cs := &counting{Store: st}
			p, err := New(focusConfig(t), cs, st, proc(t))
			if err != nil {
				t.Fatal(err)
			}
			const key = "uploads/run.png"
			var etag string
			for _, tt := range []struct {
				name   string
				meta   map[string]string
				status Status
				marker bool
			}{
				{"without a focus", nil, StatusProcessed, false},
				{"with one", FocusMetadata(&markerFocus), StatusProcessed, true},
				{"with one that does not parse", map[string]string{MetaFocus: "9,9"}, StatusProcessed, false},
				// The outputs were made without a focus just now.
				{"without one again", nil, StatusUpToDate, false},
			} {
				obj, err := st.Put(ctx, key, src, storage.PutOptions{ContentType: "image/png", Metadata: tt.meta})
				if err != nil {
					t.Fatal(err)
				}
				if etag != "" && obj.ETag != etag {
					t.Fatalf("%s: the same bytes stored again have ETag %s, not %s", tt.name, obj.ETag, etag)
				}
				etag = obj.ETag
				gets := cs.gets.Load()
				res, err := p.Run(ctx, key, obj.ETag)
				if err != nil || res.Status != tt.status {
					t.Fatalf("%s: %+v %v, want %s", tt.name, res, err, tt.status)
				}
				if tt.status == StatusUpToDate && cs.gets.Load() != gets {
					t.Errorf("%s: current outputs, but the source was read", tt.name)
				}
				checkMarker(t, st, "resized/thumb/run.png", tt.marker, 50, 50)
				checkMarker(t, st, "resized/west/run.png", false, 0, 0)
				// Run again: current, not read.
				gets = cs.gets.Load()
				if res, err := p.Run(ctx, key, obj.ETag); err != nil || res.Status != StatusUpToDate || cs.gets.Load() != gets {
					t.Fatalf("%s, run again: %+v %v, %d reads", tt.name, res, err, cs.gets.Load()-gets)
				}
			}
		})
	}
}
