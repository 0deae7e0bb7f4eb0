package pipeline

import (
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/imageproc"
)

// optionWords are spellings of every option, some of them odd (aliases,
// defaults written out, # colours, spaces in lists).
var optionWords = map[string][]string{
	"width": {"1", "200", "0800"}, "height": {"1", "150", "8192"}, "fit": {"inside", "cover", "contain", "fill"},
	"gravity": {"center", "north", "southwest", "smart"}, "enlarge": {"true", "1", "false", "0"},
	"format": {"jpg", "jpeg", "png", "webp", "gif", "avif", "original"}, "quality": {"1", "80", "100"},
	"background": {"#fff", "abc", "A0B0C0"}, "crop": {"0,0,10,10", "1, 2, 3, 4"}, "trim": {"0", "10.5", "-0"},
	"rotate": {"0", "90", "270"}, "flip": {"none", "both", "vertical"}, "blur": {"0.3", "2"}, "sharpen": {"1", "10"},
	"pad": {"0,0,0,0", "1,2,3,4"}, "dpr": {"1", "1.0", "2", "3.3"}, "max_bytes": {"1", "50000"},
	"keep": {"none", "icc", "copyright"}, "progressive": {"true", "false"}, "animated": {"true", "false"},
	"watermark": {"logo.png", "a b;c,d.png"}, "watermark_position": {"northwest", "southeast", "center"},
	"watermark_opacity": {"1", "0.5", "0"}, "watermark_scale": {"0.01", "1"}, "watermark_margin": {"0", "16"},
}

// The three ways of asking for options read one spelling the same way: a
// POST /resize query, a VARIANTS entry (name:WxH[:fit][:format]?rest) and
// an image URL's options segment, as imageurl writes and reads it; and the
// canonical form of what they read reads back the same.
func TestEntryPointsReadOptionsAlike(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 37))
	names := make([]string, 0, len(optionWords))
	for n := range optionWords {
		names = append(names, n)
	}
	read := 0
	for range 4000 {
		q := url.Values{}
		for _, n := range names {
			if r.IntN(4) == 0 {
				ws := optionWords[n]
				q.Set(n, ws[r.IntN(len(ws))])
			}
		}
		if q.Get("width") == "" && q.Get("height") == "" {
			q.Set("width", "300")
		}
		want, err := imageproc.ParseOptions(q, 8192)
		if err != nil {
			continue
		}
		read++
		// As a VARIANTS entry: the size, fit and format in the head.
		rest := url.Values{}
		for k, v := range q {
			rest[k] = v
		}
		side := func(k string) string {
			v := rest.Get(k)
			rest.Del(k)
			if v == "" {
				return "0"
			}
			return v
		}
		head := "v:" + side("width") + "x" + side("height")
		for _, k := range []string{"fit", "format"} {
			if v := rest.Get(k); v != "" && r.IntN(2) == 0 {
				head += ":" + v
				rest.Del(k)
			}
		}
		entry := head
		if len(rest) > 0 {
			entry += "?" + rest.Encode()
		}
		vs, err := ParseVariants(entry, 8192)
		if err != nil || len(vs) != 1 || !reflect.DeepEqual(vs[0].Options, want) {
			t.Errorf("query %s: VARIANTS %q reads %+v (%v), the query %+v", q.Encode(), entry, vs, err, want)
		}
		// As an image URL: written by imageurl, read back by it.
		path, err := imageurl.NewSigner("k").Path(imageurl.Request{Key: "a/b.jpg", Options: q})
		if err != nil {
			t.Fatalf("%s: %v", q.Encode(), err)
		}
		u, err := imageurl.Parse(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, err := imageproc.ParseOptions(u.Options, 8192)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("query %s: URL %s reads %+v (%v), the query %+v", q.Encode(), path, got, err, want)
		}
		// The canonical form reads back as the same options.
		c, _ := url.ParseQuery(want.Canonical())
		if back, err := imageproc.ParseOptions(c, 8192); err != nil || !reflect.DeepEqual(back, want) {
			t.Errorf("query %s: canonical %s reads %+v (%v)", q.Encode(), want.Canonical(), back, err)
		}
		if strings.Contains(want.Canonical(), ";") {
			t.Errorf("canonical %s holds a ;", want.Canonical())
		}
	}
	t.Logf("%d option sets read three ways", read)
	if read < 200 {
		t.Fatalf("only %d valid option sets", read)
	}
}
