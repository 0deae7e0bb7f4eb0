package httpapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/pipeline"
)

// spelling is one value of an option: plain, as the documentation writes
// it, and fancy, another spelling of the same value; valid says whether
// the documentation allows it (when not, plain is unused).
type spelling struct {
	plain, fancy string
	valid        bool
}

// badValues are values no option takes: empty, padded, non-ASCII digits,
// numbers beyond any range or not numbers at all.
var badValues = []string{"", " ", "1 ", " 1", "\t2", "５", "٥", "1\x00", "NaN", "nan", "Inf", "-Inf", "+Inf", "1e400",
	"99999999999999999999999", "-1", "0x10", "1,", ",", "true1", "\u00a01"}

// optionSpellings draws a value of each option, usually valid, in a plain
// and a fancy spelling, for an image of sw x sh: the validity is known by
// construction, from the documentation, independently of the parser.
func optionSpellings(r *rand.Rand, sw, sh int) map[string]func() spelling {
	same := func(s string) spelling { return spelling{s, s, true} }
	integer := func(lo, hi int) func() spelling {
		return func() spelling {
			n := lo + r.IntN(hi-lo+1)
			switch r.IntN(6) { // the bounds, often
			case 0:
				n = lo
			case 1:
				n = hi
			}
			if r.IntN(3) == 0 {
				return spelling{strconv.Itoa(n), "0" + strconv.Itoa(n), true} // a leading zero is still n
			}
			return same(strconv.Itoa(n))
		}
	}
	number := func(lo, hi float64) func() spelling {
		return func() spelling {
			f := lo + r.Float64()*(hi-lo)
			f = max(lo, min(float64(int(f*100))/100, hi))
			switch r.IntN(6) { // the bounds, often
			case 0, 1:
				f = lo
			case 2:
				f = hi
			}
			p := strconv.FormatFloat(f, 'f', -1, 64)
			switch {
			case f == 0 && r.IntN(2) == 0:
				return spelling{p, "-0", true} // negative zero is zero
			case f == float64(int(f)):
				return spelling{p, p + ".0", true}
			}
			return spelling{p, p + "0", true} // a trailing zero in the fraction
		}
	}
	enum := func(names ...string) func() spelling {
		return func() spelling { return same(names[r.IntN(len(names))]) }
	}
	boolean := func() spelling {
		b := r.IntN(2) == 0
		return spelling{strconv.FormatBool(b), map[bool]string{true: "1", false: "0"}[b], true}
	}
	return map[string]func() spelling{
		"width":   integer(1, 300),
		"height":  integer(1, 300),
		"fit":     enum("inside", "cover", "contain", "fill"),
		"gravity": enum("center", "north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"),
		"enlarge": boolean,
		"format": func() spelling {
			if r.IntN(4) == 0 {
				return spelling{"jpeg", "jpg", true}
			}
			return same([]string{"original", "jpeg", "png", "webp", "gif"}[r.IntN(5)])
		},
		"quality": integer(1, 100),
		"background": func() spelling {
			c := fmt.Sprintf("%02x%02x%02x", r.IntN(256), r.IntN(256), r.IntN(256))
			if r.IntN(2) == 0 {
				return spelling{c, "#" + strings.ToUpper(c), true}
			}
			return same(c)
		},
		"crop": func() spelling {
			w, h := 1+r.IntN(sw), 1+r.IntN(sh)
			x, y := r.IntN(sw-w+1), r.IntN(sh-h+1)
			return same(fmt.Sprintf("%d,%d,%d,%d", x, y, w, h))
		},
		"trim":        number(0, 60),
		"rotate":      enum("0", "90", "180", "270"),
		"flip":        enum("none", "horizontal", "vertical", "both"),
		"blur":        number(0.3, 3),
		"sharpen":     number(0.3, 10),
		"pad":         func() spelling { return same(fmt.Sprintf("%d,%d,%d,%d", r.IntN(9), r.IntN(9), r.IntN(9), r.IntN(9))) },
		"dpr":         number(1, 4),
		"max_bytes":   integer(1, 40000),
		"keep":        enum("none", "copyright", "icc"),
		"progressive": boolean,
		"animated":    boolean,
	}
}

// randomQuery draws options for an image of sw x sh: a few of them, each
// valid or (now and then) not, named once or (rarely) twice. It returns the
// fancy query as sent, the plain one in another order, and whether the
// documentation allows it.
func randomQuery(r *rand.Rand, sw, sh int) (fancy, plain string, valid bool) {
	gens := optionSpellings(r, sw, sh)
	names := make([]string, 0, len(gens))
	for n := range gens {
		names = append(names, n)
	}
	// Map order is random: sort for a run that the seed repeats.
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if names[j] < names[i] {
				names[i], names[j] = names[j], names[i]
			}
		}
	}
	valid = true
	var f, p []string
	for _, n := range names {
		if r.IntN(4) != 0 {
			continue
		}
		s := gens[n]()
		if r.IntN(12) == 0 {
			s = spelling{fancy: badValues[r.IntN(len(badValues))]}
		}
		valid = valid && s.valid
		f = append(f, url.QueryEscape(n)+"="+url.QueryEscape(s.fancy))
		p = append(p, n+"="+url.QueryEscape(s.plain))
		if r.IntN(25) == 0 {
			f = append(f, url.QueryEscape(n)+"="+url.QueryEscape(s.fancy)) // named twice, even alike
			valid = false
		}
	}
	if r.IntN(20) == 0 {
		f = append(f, "colour=red") // unknown
		valid = false
	}
	r.Shuffle(len(f), func(i, j int) { f[i], f[j] = f[j], f[i] })
	r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return strings.Join(f, "&"), strings.Join(p, "&"), valid
}

// Random combinations of every option of POST /resize, in odd spellings
// and with bad values, duplicates and unknown names among them: an option
// the documentation refuses is a 400 bad-option problem; every other
// answer is an image or a 413 or 422 problem (a crop outside what a trim
// leaves, a max_bytes too small, a 400), never a 500; and an image asked in
// one spelling is byte for byte the image of the plain spelling, and of a
// VARIANTS entry and a signed URL with the same options.
func TestResizeOptionsProperty(t *testing.T) {
	s := newTestServer(t, nil)
	seed := uint64(20261203)
	if v := os.Getenv("RESIZER_OPTIONS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	t.Logf("seed %d (RESIZER_OPTIONS_SEED)", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	const sw, sh = 64, 48
	photo := testJPEG(t, sw, sh)
	s.putOriginal(t, "uploads/p.jpg", photo)
	n := 100
	if testing.Short() {
		n = 40
	}
	statuses := map[int]int{}
	for i := range n {
		fancy, plain, valid := randomQuery(r, sw, sh)
		what := fmt.Sprintf("seed %d #%d: %q", seed, i, fancy)
		resp, body := s.do(t, "POST", "/resize?"+fancy, photo, nil)
		statuses[resp.StatusCode]++
		if resp.StatusCode != 200 {
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != resp.StatusCode {
				t.Errorf("%s: %d, not a problem document: %s", what, resp.StatusCode, body)
				continue
			}
			switch {
			case !valid && (resp.StatusCode != 400 || p.Type != "urn:resizer:problem:bad-option"):
				t.Errorf("%s: refused by the documentation, answered %d %s", what, resp.StatusCode, p.Type)
			case valid && resp.StatusCode != 400 && resp.StatusCode != 413 && resp.StatusCode != 422:
				t.Errorf("%s: %d %s", what, resp.StatusCode, p.Detail)
			case valid && resp.StatusCode == 400 && !strings.Contains(p.Detail, "trim leave nothing"):
				t.Errorf("%s: valid options refused: %s", what, p.Detail)
			}
			continue
		}
		if !valid {
			t.Errorf("%s: refused by the documentation, answered 200", what)
			continue
		}
		// The plain spelling is the same image, byte for byte.
		resp2, body2 := s.do(t, "POST", "/resize?"+plain, photo, nil)
		if resp2.StatusCode != 200 || !bytes.Equal(body, body2) {
			t.Errorf("%s: %d bytes, but %q gives %d and %d bytes", what, len(body), plain, resp2.StatusCode, len(body2))
			continue
		}
		if i%4 != 0 {
			continue
		}
		q, err := url.ParseQuery(fancy)
		if err != nil {
			t.Fatal(err)
		}
		// As a VARIANTS entry (its options in query form) the fancy and the
		// plain spelling are one definition.
		vf, errF := pipeline.ParseVariants("v:0x0?"+fancy, 8192)
		vp, errP := pipeline.ParseVariants("v:0x0?"+plain, 8192)
		if q.Get("width") != "" || q.Get("height") != "" {
			// The entry's size is in its head: move it there.
			vf, errF = pipeline.ParseVariants(variantEntry(q), 8192)
			pq, _ := url.ParseQuery(plain)
			vp, errP = pipeline.ParseVariants(variantEntry(pq), 8192)
		}
		if q.Get("width") == "" && q.Get("height") == "" {
			// A variant needs a side: 0x0 is refused, as documented.
			if errF == nil || errP == nil {
				t.Errorf("%s: a variant of no size taken", what)
			}
		} else if errF != nil || errP != nil || vf[0].Digest() != vp[0].Digest() {
			t.Errorf("%s: as variants %v, %v, digests differ", what, errF, errP)
		}
		if len(q) == 0 {
			continue // a URL names options: format=original, at least
		}
		// As signed URLs, the two spellings are one image, the second a
		// hit on the first's render.
		pq, _ := url.ParseQuery(plain)
		u1 := sign(t, testSigningKey, imageurl.Request{Key: "uploads/p.jpg", Options: q})
		u2 := sign(t, testSigningKey, imageurl.Request{Key: "uploads/p.jpg", Options: pq})
		resp3, body3 := s.do(t, "GET", u1, nil, nil)
		if resp3.StatusCode != 200 || !bytes.Equal(body3, body) {
			t.Errorf("%s: by URL %d, %d bytes, not the image of POST /resize", what, resp3.StatusCode, len(body3))
			continue
		}
		s.settled(t, u1)
		if resp4, _ := s.do(t, "GET", u2, nil, nil); resp4.Header.Get("ETag") != resp3.Header.Get("ETag") ||
			resp4.Header.Get("Cache-Status") != "resizer; hit" {
			t.Errorf("%s: the plain spelling by URL: %d %s, ETag %s, first %s", what, resp4.StatusCode,
				resp4.Header.Get("Cache-Status"), resp4.Header.Get("ETag"), resp3.Header.Get("ETag"))
		}
	}
	t.Logf("statuses: %v", statuses)
	if statuses[200] == 0 || statuses[400] == 0 {
		t.Errorf("statuses %v: the draw made no image, or nothing refused", statuses)
	}
	if resp, _ := s.do(t, "POST", "/resize?width=10", photo, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the draw: %d", resp.StatusCode)
	}
}

// variantEntry writes options q as a VARIANTS entry, its size in its head.
func variantEntry(q url.Values) string {
	w, h := q.Get("width"), q.Get("height")
	rest := url.Values{}
	for k, v := range q {
		if k != "width" && k != "height" {
			rest[k] = v
		}
	}
	return "v:" + cmp.Or(w, "0") + "x" + cmp.Or(h, "0") + "?" + rest.Encode()
}
