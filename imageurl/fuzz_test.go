package imageurl

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Whatever path arrives, Parse answers without panicking; a key it reads
// has no empty, "." or ".." segment; and what it reads, written again by
// a Signer, reads back the same and verifies.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"/img/85115453742d4cfabda94b12076d75cc10218bd708e2650de760a09aa47acc49/format=webp&width=800/uploads/cats/tom.jpg",
		"/img/_/preset=thumb&v=32268be4325293ad107c6f595607e7ba/uploads/a%20b+c/%C3%BC%3F%23%25.jpg",
		"/img/x/crop=10,20,300,200&exp=1900000000/uploads/a%2Fb",
		"/img/_/preset=thumb/uploads/../a.jpg",
		"/img/_/width=%zz/a",
		"/img//width=1/a",
		"/img/85115453742D4CFABDA94B12076D75CC10218BD708E2650DE760A09AA47ACC49/format=webp&width=800/uploads/cats/tom.jpg",
		"/img/_/pres%65t=th%75mb/uploads%2Fcats/tom%27s.jpg",
		"/img/x/exp=0&width=1/k",
		"/img/x/exp=-5&width=1/k",
		"/img/x/exp=%2B5&width=1/k",
		"/img/x/exp=9223372036854775807&width=1/k",
		"/img/x/width=1/uploads/a+b%20c%3F%23%3B%25%2A/%E5%86%99",
		"/img/x/width=1/uploads/%C3/x",
		"/img/x/watermark=logos%2Fa%26b%3Dc.png&width=1/k",
		"/img/x/width=1/a%2F%2E%2E",
		"/img/x/width=1/%2e%2e/k",
	} {
		f.Add(seed)
	}
	s := NewSigner(testKey)
	f.Fuzz(func(t *testing.T, p string) {
		u, err := Parse(p)
		if err != nil {
			return
		}
		for _, seg := range strings.Split(u.Key, "/") {
			if seg == "." || seg == ".." || seg == "" {
				t.Fatalf("%q: key %q", p, u.Key)
			}
		}
		if u.Signature == Unsigned {
			// The one spelling the server redirects an unsigned URL to is
			// its own one spelling: a redirect never leads to another.
			if c, err := UnsignedPath(u.Request); err == nil {
				v, err := Parse(c)
				if err != nil {
					t.Fatalf("%q spelled %q: %v", p, c, err)
				}
				if again, err := UnsignedPath(v.Request); err != nil || again != c || v.Key != u.Key {
					t.Fatalf("%q spelled %q, then %q (%v)", p, c, again, err)
				}
			}
		}
		again, err := s.Path(u.Request)
		if err != nil {
			return // a request Parse reads but Path will not write (a key with an encoded slash)
		}
		v, err := Parse(again)
		if err != nil {
			t.Fatalf("%q written as %q: %v", p, again, err)
		}
		if err := v.Verify([][]byte{[]byte(testKey)}, time.Unix(0, 0)); err != nil {
			t.Fatalf("%q: %v", again, err)
		}
		if v.Key != u.Key || v.Preset != u.Preset || v.Version != u.Version || !v.Expires.Equal(u.Expires) ||
			(len(u.Options) > 0 || len(v.Options) > 0) && !reflect.DeepEqual(v.Options, u.Options) {
			t.Fatalf("%q read %+v, written %q read %+v", p, u.Request, again, v.Request)
		}
	})
}

// Whatever a Signer is asked to write, it either refuses it or writes a
// path that Parse reads back as the same request, that verifies until its
// expiry and not a second after it: a path Path writes is never a 400.
func FuzzPath(f *testing.F) {
	for _, seed := range []struct {
		key, name, value, preset, version string
		exp                               int64
	}{
		{"uploads/cats/tom.jpg", "width", "800", "", "", 0},
		{"uploads/a b+c/ü?#%*(1);x,y.jpg", "background", "#ff0000", "", `"32268be4325293ad107c6f595607e7ba"`, 1_900_000_000},
		{"uploads/%2e%2E/..../;=@$&+:", "watermark", "logos/a&b=c.png", "", "", 1},
		{"k", "crop", "10,20,300,200", "", "", -5},
		{"k", "width", "1", "", "", 0},
		{"k", "", "", "thumb", "abc-3", 1},
		{"uploads/\x7f\x00\t/%zz", "a=b&c", "+ %20", "", "", 1 << 62},
		{"a//b", "width", "1", "", "", 0},
		{"uploads/写真 ünï.jpg", "format", "auto", "", "", -62_135_596_799},
	} {
		f.Add(seed.key, seed.name, seed.value, seed.preset, seed.version, seed.exp)
	}
	s := NewSigner(testKey)
	f.Fuzz(func(t *testing.T, key, name, value, preset, version string, exp int64) {
		r := Request{Key: key, Preset: preset, Version: version}
		if name != "" {
			r.Options = url.Values{name: {value}}
		}
		if exp != 0 {
			r.Expires = time.Unix(exp, 0)
		}
		p, err := s.Path(r)
		if err != nil {
			return
		}
		u, err := Parse(p)
		if err != nil {
			t.Fatalf("%+v written as %q, which Parse refuses: %v", r, p, err)
		}
		r.Version = strings.Trim(r.Version, `"`)
		if r.Expires.IsZero() {
			// Year 1 is the zero instant, "no expiry", whatever its
			// location: read back as time.Time{}.
			r.Expires = time.Time{}
		}
		if !reflect.DeepEqual(u.Request, r) || u.Path != p {
			t.Fatalf("%+v written as %q, read as %+v", r, p, u.Request)
		}
		at := time.Unix(1_800_000_000, 0)
		if !r.Expires.IsZero() {
			at = r.Expires
		}
		if err := u.Verify([][]byte{[]byte(testKey)}, at); err != nil {
			t.Fatalf("%q at %s: %v", p, at, err)
		}
		if !r.Expires.IsZero() {
			if err := u.Verify([][]byte{[]byte(testKey)}, at.Add(time.Second)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%q a second after its expiry: %v", p, err)
			}
		}
	})
}
