package imageproc

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseOptions(t *testing.T) {
	red := Color{255, 0, 0}
	tests := []struct {
		query   string
		want    Options
		wantErr string // substring; "" means success
	}{
		{"", Options{}, ""},
		{"width=800", Options{Width: 800}, ""},
		{"width=800&height=600&fit=cover&gravity=smart", Options{Width: 800, Height: 600, Fit: FitCover, Gravity: GravitySmart}, ""},
		{"fit=contain&background=ff0000", Options{Fit: FitContain, Background: &red}, ""},
		{"background=%23f00", Options{Background: &red}, ""},
		{"fit=fill&enlarge=true", Options{Fit: FitFill, Enlarge: true}, ""},
		{"enlarge=0", Options{}, ""},
		{"format=webp&quality=70", Options{Format: FormatWebP, Quality: 70}, ""},
		{"format=jpg", Options{Format: FormatJPEG}, ""},
		{"format=original", Options{}, ""},
		{"format=auto", Options{}, "not one of"}, // the HTTP layer's word, from Accept
		{"width=8192&height=1", Options{Width: 8192, Height: 1}, ""},
		{"quality=1", Options{Quality: 1}, ""},
		{"quality=100", Options{Quality: 100}, ""},
		// the operations
		{"crop=10,20,300,200", Options{Crop: &Region{10, 20, 300, 200}}, ""},
		{"gravity=northeast", Options{Gravity: GravityNorthEast}, ""},
		{"fit=cover&gravity=focus&focus=0.25,0.75", Options{Fit: FitCover, Gravity: GravityFocus, Focus: &Point{0.25, 0.75}}, ""},
		{"rotate=90&flip=both", Options{Rotate: 90, Flip: FlipBoth}, ""},
		{"blur=2.5&sharpen=1", Options{Blur: 2.5, Sharpen: 1}, ""},
		{"trim=10", Options{Trim: ptr(10.0)}, ""},
		{"trim=0", Options{Trim: ptr(0.0)}, ""},
		{"pad=10,20,10,20", Options{Pad: [4]int{10, 20, 10, 20}}, ""},
		{"dpr=2", Options{DPR: 2}, ""},
		{"max_bytes=20000&format=webp", Options{MaxBytes: 20000, Format: FormatWebP}, ""},
		{"keep=copyright", Options{Keep: KeepCopyright}, ""},
		{"keep=icc", Options{Keep: KeepICC}, ""},
		{"progressive=true", Options{Progressive: true}, ""},
		{"animated=false", Options{Still: true}, ""},
		{"animated=true", Options{}, ""},
		{"watermark=logo.png", Options{Watermark: &Watermark{Key: "logo.png", Position: GravitySouthEast, Opacity: 1}}, ""},
		{"watermark=logo.png&watermark_position=north&watermark_opacity=0.5&watermark_scale=0.25&watermark_margin=8",
			Options{Watermark: &Watermark{Key: "logo.png", Position: GravityNorth, Opacity: 0.5, Scale: 0.25, Margin: 8}}, ""},
		{"crop=1,2,3", Options{}, "want 4 comma-separated integers"},
		{"crop=0,0,0,10", Options{}, "at least 1"},
		{"crop=-1,0,5,5", Options{}, "out of range"},
		{"gravity=focus", Options{}, "needs focus"},
		{"focus=0.5,0.5", Options{}, "needs gravity=focus"},
		{"gravity=focus&focus=1.5,0", Options{}, "out of range 0..1"},
		{"rotate=45", Options{}, "not one of 0, 90, 180, 270"},
		{"flip=diagonal", Options{}, "not one of none"},
		{"blur=0.1", Options{}, "out of range 0.3..100"},
		{"blur=NaN", Options{}, "not a number"},
		{"sharpen=11", Options{}, "out of range"},
		{"trim=256", Options{}, "out of range"},
		{"pad=1,2,3", Options{}, "want 4"},
		{"dpr=5", Options{}, "out of range 1..4"},
		{"dpr=0.5", Options{}, "out of range"},
		{"max_bytes=0", Options{}, "out of range"},
		{"keep=all", Options{}, "not one of none, copyright, icc"},
		{"animated=maybe", Options{}, "not true or false"},
		{"watermark=http://evil.example/x.png", Options{}, "not the name of a stored watermark"},
		{"watermark_opacity=0.5", Options{}, "need watermark=NAME"},
		{"watermark=a.png&watermark_position=smart", Options{}, "not one of center, north, south, east, west, northeast, northwest, southeast, southwest"},
		{"watermark=a.png&watermark_position=foo", Options{}, `"foo" is not one of center, north, south, east, west, northeast, northwest, southeast, southwest`},
		{"watermark=a.png&watermark_opacity=2", Options{}, "out of range 0..1"},
		// every error row
		{"size=10", Options{}, `unknown parameter "size"`},
		{"Width=10", Options{}, `unknown parameter "Width"`},
		{"width=10&width=20", Options{}, "width: given 2 times"},
		{"width=", Options{}, `width: "" is not an integer`},
		{"width=abc", Options{}, "not an integer"},
		{"width=1.5", Options{}, "not an integer"},
		{"width=0", Options{}, "out of range 1..8192"},
		{"width=-5", Options{}, "out of range"},
		{"width=8193", Options{}, "out of range 1..8192"},
		{"height=99999999999999999999", Options{}, "not an integer"},
		{"quality=0", Options{}, "out of range 1..100"},
		{"quality=101", Options{}, "out of range"},
		{"fit=crop", Options{}, "not one of inside, cover, contain, fill"},
		{"gravity=up", Options{}, "not one of center"},
		{"enlarge=yes", Options{}, "not true or false"},
		{"format=bmp", Options{}, "not one of original, jpeg, png, webp, gif, avif"},
		{"format=gif", Options{Format: FormatGIF}, ""},
		{"format=tiff", Options{}, "not one of"},
		{"background=red", Options{}, "not a hex colour"},
		{"background=ff00", Options{}, "not a hex colour"},
		{"background=gg0000", Options{}, "not a hex colour"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseOptions(q, 8192)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadOption) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrBadOption containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{"width=800", "width=1&height=2&fit=cover&gravity=smart&enlarge=1&format=auto&quality=5&background=abc",
		"width=0", "a=b", "width=%zz", "background=%23ffffff&format=webp",
		"crop=1,2,3,4&trim=5&rotate=90&flip=both&blur=1&sharpen=2&pad=1,2,3,4&dpr=2.5&max_bytes=9&keep=icc&progressive=1&animated=0",
		"fit=cover&gravity=focus&focus=0.1,0.9", "watermark=w.png&watermark_position=northwest&watermark_opacity=0.3&watermark_scale=0.2&watermark_margin=4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o, err := ParseOptions(q, 8192)
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not wrap ErrBadOption", err)
			}
			return
		}
		if o.Width < 0 || o.Width > 8192 || o.Height < 0 || o.Height > 8192 || o.Quality < 0 || o.Quality > 100 {
			t.Fatalf("accepted out-of-range options %+v from %q", o, raw)
		}
		if o.Fit.String() == "unknown" || o.Gravity.String() == "unknown" || o.Flip.String() == "unknown" || o.Keep.String() == "unknown" {
			t.Fatalf("accepted an unknown name %+v", o)
		}
		if o.DPR != 0 && (o.DPR < 1 || o.DPR > 4) || o.Blur != 0 && o.Blur < 0.3 || o.Rotate%90 != 0 ||
			o.Crop != nil && (o.Crop.W < 1 || o.Crop.H < 1) || o.Focus != nil && (o.Focus.X < 0 || o.Focus.X > 1) {
			t.Fatalf("accepted out-of-range options %+v from %q", o, raw)
		}
		// Its canonical form reads back as the same options.
		q2, err := url.ParseQuery(o.Canonical())
		if err != nil {
			t.Fatalf("canonical %q: %v", o.Canonical(), err)
		}
		if back, err := ParseOptions(q2, 8192); err != nil || !reflect.DeepEqual(back, o) {
			t.Fatalf("%q: canonical %q reads back as %+v (%v), want %+v", raw, o.Canonical(), back, err, o)
		}
	})
}

func ptr[T any](v T) *T { return &v }

// Canonical is the one spelling of a set of options: parsed back it gives
// the same options, and two spellings of the same options (order, aliases,
// defaults written out) give the same canonical form.
func TestCanonical(t *testing.T) {
	same := [][]string{
		{"width=800&format=jpg", "format=jpeg&width=800", "width=800&format=jpeg&fit=inside&gravity=center&enlarge=false"},
		{"background=%23F00&fit=contain", "fit=contain&background=ff0000", "background=f00&fit=contain"},
		{"watermark=w.png", "watermark=w.png&watermark_position=southeast&watermark_opacity=1"},
		{"watermark=w.png&watermark_position=center", "watermark_position=center&watermark=w.png"},
		{"dpr=1&width=10", "width=10"},
		{"animated=true&width=1", "width=1"},
		{"gravity=focus&focus=0,0.5&width=9", "gravity=focus&focus=-0,0.5&width=9", "gravity=focus&focus=-0e3,0.5&width=9"},
	}
	for _, group := range same {
		var first string
		for i, query := range group {
			q, _ := url.ParseQuery(query)
			o, err := ParseOptions(q, 8192)
			if err != nil {
				t.Fatalf("%s: %v", query, err)
			}
			c := o.Canonical()
			if i == 0 {
				first = c
			} else if c != first {
				t.Errorf("%q gives %q, %q gave %q", query, c, group[0], first)
			}
			q2, _ := url.ParseQuery(c)
			back, err := ParseOptions(q2, 8192)
			if err != nil || !reflect.DeepEqual(back, o) {
				t.Errorf("%q: canonical %q reads back as %+v (%v), want %+v", query, c, back, err, o)
			}
		}
	}
}
