package imageurl

import (
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
