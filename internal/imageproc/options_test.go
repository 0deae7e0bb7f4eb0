package imageproc

import (
	"errors"
	"net/url"
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
		{"gravity=northeast", Options{}, "not one of center"},
		{"enlarge=yes", Options{}, "not true or false"},
		{"format=bmp", Options{}, "not one of original, jpeg, png, webp, avif"},
		{"format=gif", Options{}, "not one of"},
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
			if (got.Background == nil) != (tt.want.Background == nil) ||
				got.Background != nil && *got.Background != *tt.want.Background {
				t.Fatalf("background = %v, want %v", got.Background, tt.want.Background)
			}
			got.Background, tt.want.Background = nil, nil
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{"width=800", "width=1&height=2&fit=cover&gravity=smart&enlarge=1&format=auto&quality=5&background=abc",
		"width=0", "a=b", "width=%zz", "background=%23ffffff&format=webp"} {
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
		if o.Fit.String() == "unknown" || o.Gravity.String() == "unknown" {
			t.Fatalf("accepted unknown fit or gravity %+v", o)
		}
	})
}
