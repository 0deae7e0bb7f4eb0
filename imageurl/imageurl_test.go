package imageurl

import (
	"errors"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testKey = "test-key-0123456789abcdef0123456789"

// The paths, signatures included, as openssl computes them:
//
//	printf '%s' '/format=webp&width=800/uploads/cats/tom.jpg' | openssl dgst -sha256 -hmac "$KEY"
func TestPathGolden(t *testing.T) {
	s := NewSigner(testKey)
	for _, c := range []struct {
		r    Request
		want string
	}{
		{Request{Key: "uploads/cats/tom.jpg", Options: url.Values{"width": {"800"}, "format": {"webp"}}},
			"/img/85115453742d4cfabda94b12076d75cc10218bd708e2650de760a09aa47acc49/format=webp&width=800/uploads/cats/tom.jpg"},
		{Request{Key: "uploads/a b+c/ü?#%.jpg", Options: url.Values{"crop": {"10,20,300,200"}}, Version: `"32268be4325293ad107c6f595607e7ba"`},
			"/img/74c80501389b565d432fb0650e50786cf121458f25ebb11568a418a38cd60a00/crop=10,20,300,200&v=32268be4325293ad107c6f595607e7ba/uploads/a%20b+c/%C3%BC%3F%23%25.jpg"},
	} {
		got, err := s.Path(c.r)
		if err != nil || got != c.want {
			t.Errorf("%+v:\n got %s %v\nwant %s", c.r, got, err, c.want)
		}
	}
}

// What Path writes, Parse reads back the same, and it verifies.
func TestRoundTrip(t *testing.T) {
	s := NewSigner(testKey)
	exp := time.Unix(1_900_000_000, 0)
	for _, r := range []Request{
		{Key: "uploads/cats/tom.jpg", Options: url.Values{"width": {"800"}}},
		{Key: "uploads/x.jpg", Options: url.Values{"format": {"auto"}, "background": {"#ff8800"}, "watermark": {"logos/a&b=c.png"}}},
		{Key: "uploads/trip/a b+c ünï 写真.jpg", Options: url.Values{"focus": {"0.3,0.25"}, "gravity": {"focus"}}},
		{Key: "uploads/%2F/;,=@$*!'().jpg", Options: url.Values{"width": {"1"}}, Expires: exp},
		{Key: "uploads/p.png", Preset: "thumb", Version: "abc-3"},
		{Key: "k", Options: url.Values{"format": {"original"}}},
	} {
		p, err := s.Path(r)
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		// The path is one a URL carries as it is: net/url keeps it.
		if u, err := url.Parse("https://cdn.example.com" + p); err != nil || u.EscapedPath() != p {
			t.Errorf("%s: net/url makes it %q (%v)", p, u.EscapedPath(), err)
		}
		got, err := Parse(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		r.Version = strings.Trim(r.Version, `"`)
		if !reflect.DeepEqual(got.Request, r) || got.Path != p {
			t.Errorf("%s:\n got %+v\nwant %+v", p, got.Request, r)
		}
		if err := got.Verify([][]byte{[]byte(testKey)}, exp.Add(-time.Second)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestVerify(t *testing.T) {
	oldKey, newKey := []byte("old-key-0123456789abcdef0123456789"), []byte("new-key-0123456789abcdef0123456789")
	now := time.Unix(1_800_000_000, 0)
	r := Request{Key: "uploads/cats/tom.jpg", Options: url.Values{"width": {"800"}}, Expires: now.Add(time.Hour)}
	byOld, _ := NewSigner(string(oldKey)).Path(r)
	byNew, _ := NewSigner(string(newKey)).Path(r)
	unsigned, _ := UnsignedPath(Request{Key: "uploads/cats/tom.jpg", Preset: "thumb"})
	for _, c := range []struct {
		name string
		path string
		keys [][]byte
		at   time.Time
		ok   bool
	}{
		{"signed with the first key", byNew, [][]byte{newKey, oldKey}, now, true},
		{"signed with an older key still listed", byOld, [][]byte{newKey, oldKey}, now, true},
		{"signed with a key no longer listed", byOld, [][]byte{newKey}, now, false},
		{"no keys", byNew, nil, now, false},
		{"expired", byNew, [][]byte{newKey}, now.Add(time.Hour + time.Second), false},
		{"at its expiry", byNew, [][]byte{newKey}, now.Add(time.Hour), true},
		{"another width", strings.Replace(byNew, "width=800", "width=801", 1), [][]byte{newKey}, now, false},
		{"a later expiry", strings.Replace(byNew, "exp=18000036", "exp=18000037", 1), [][]byte{newKey}, now, false},
		{"another key", strings.Replace(byNew, "cats", "dogs", 1), [][]byte{newKey}, now, false},
		{"the same key spelled otherwise", strings.Replace(byNew, "cats", "c%61ts", 1), [][]byte{newKey}, now, false},
		{"a signature cut short", byNew[:5] + byNew[7:], [][]byte{newKey}, now, false},
		{"the signature in upper case", upperSignature(byNew), [][]byte{newKey}, now, false},
		{"unsigned", unsigned, [][]byte{newKey}, now, false},
	} {
		u, err := Parse(c.path)
		if err == nil {
			err = u.Verify(c.keys, c.at)
		}
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, p := range []string{
		"/img/sig/width=800", "/img//width=800/k", "/img/sig//k", "/other/sig/width=800/k",
		"/img/sig/width=800/a//b", "/img/sig/width=800/a/../b", "/img/sig/width=800/a/%2e%2e/b", "/img/sig/width=800/a%ZZ",
		"/img/sig/width=1&width=2/k", "/img/sig/width=1;height=2/k", "/img/sig/exp=soon/k", "/img/sig/v=%22x%22/k",
		"/img/sig/preset=thumb&width=8/k", "/img/sig/width=8/a*b.jpg",
		"/img/sig/width=8/a/%2E%2E%2Fb", "/img/sig/width=8/a%2F..%2Fb", "/img/sig/width=8/a%2F%2Fb", "/img/sig/width=8/%2Fa",
		"/img/sig/width=8/a%2F.%2Fb", "/img/sig/width=8/a%2F",
		"/img/sig/exp=9223372036854775807/k", "/img/sig/exp=9223372036854775806&width=1/k", "/img/sig/exp=0/k", "/img/sig/exp=-5/k",
	} {
		if _, err := Parse(p); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", p, err)
		}
	}
}

func TestPathRefuses(t *testing.T) {
	s := NewSigner(testKey)
	for _, r := range []Request{
		{Key: "k"},
		{Key: "", Options: url.Values{"width": {"1"}}},
		{Key: "/abs", Options: url.Values{"width": {"1"}}},
		{Key: "a/../b", Options: url.Values{"width": {"1"}}},
		{Key: "k", Options: url.Values{"width": {"1", "2"}}},
		{Key: "k", Options: url.Values{"v": {"abc"}}},
		{Key: "k", Options: url.Values{"width": {"1"}}, Preset: "thumb"},
		{Key: "k", Preset: "thumb", Version: "W/\"weak\""},
		// Not after the epoch: Parse would refuse exp=0 or exp=-5.
		{Key: "k", Options: url.Values{"width": {"1"}}, Expires: time.Unix(0, 0)},
		{Key: "k", Options: url.Values{"width": {"1"}}, Expires: time.Unix(0, 999_999_999)},
		{Key: "k", Options: url.Values{"width": {"1"}}, Expires: time.Unix(-5, 0)},
		{Key: "k", Options: url.Values{"width": {"1"}}, Expires: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC)},
	} {
		if p, err := s.Path(r); err == nil {
			t.Errorf("%+v: %s", r, p)
		}
	}
	if p, err := UnsignedPath(Request{Key: "k", Options: url.Values{"width": {"1"}}}); err == nil {
		t.Errorf("unsigned options: %s", p)
	}
}

func TestSrcset(t *testing.T) {
	s := NewSigner(testKey)
	got, err := s.Srcset(Request{Key: "uploads/a.jpg", Options: url.Values{"format": {"auto"}}}, 400, 800)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(got, ", ")
	if len(parts) != 2 || !strings.HasSuffix(parts[0], "/format=auto&width=400/uploads/a.jpg 400w") ||
		!strings.HasSuffix(parts[1], "/format=auto&width=800/uploads/a.jpg 800w") {
		t.Fatalf("srcset %q", got)
	}
}

// Applications import this package without a C compiler: it builds with
// cgo off and depends on the standard library alone.
func TestPlainGo(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if deps := strings.Fields(string(out)); len(deps) != 1 || deps[0] != "github.com/resizer/resizer/imageurl" {
		t.Fatalf("imports beyond the standard library: %v", deps)
	}
	cmd = exec.Command("go", "build", "-o", "/dev/null", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
}

// The Python signer of docs/delivery.md writes the same paths as Path.
func TestPythonExampleAgrees(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	doc, err := os.ReadFile("../docs/delivery.md")
	if err != nil {
		t.Fatal(err)
	}
	_, code, found := strings.Cut(string(doc), "```python\n")
	code, _, closed := strings.Cut(code, "```")
	if !found || !closed {
		t.Fatal("no python block in docs/delivery.md")
	}
	code, _, _ = strings.Cut(code, "\nprint(") // the function only
	code += `
print(image_path("` + testKey + `", "uploads/cats/tom.jpg", {"width": 800, "format": "webp"}))
print(image_path("` + testKey + `", "uploads/a b+c/ü?#%*(1);x,y.jpg", {"crop": "10,20,300,200", "background": "#ff0000"}, version='"32268be4325293ad107c6f595607e7ba"', expires=1900000000))
print(image_path("` + testKey + `", "uploads/cats/tom.jpg", {}, preset="thumb"))
`
	out, err := exec.Command(py, "-c", code).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := NewSigner(testKey)
	var want []string
	for _, r := range []Request{
		{Key: "uploads/cats/tom.jpg", Options: url.Values{"width": {"800"}, "format": {"webp"}}},
		{Key: "uploads/a b+c/ü?#%*(1);x,y.jpg", Options: url.Values{"crop": {"10,20,300,200"}, "background": {"#ff0000"}},
			Version: `"32268be4325293ad107c6f595607e7ba"`, Expires: time.Unix(1_900_000_000, 0)},
		{Key: "uploads/cats/tom.jpg", Preset: "thumb"},
	} {
		p, err := s.Path(r)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !reflect.DeepEqual(got, want) {
		t.Fatalf("python:\n%s\ngo:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// upperSignature writes the signature of path in upper-case hex: the same
// bytes, another path.
func upperSignature(path string) string {
	rest := strings.TrimPrefix(path, Prefix)
	sig, tail, _ := strings.Cut(rest, "/")
	return Prefix + strings.ToUpper(sig) + "/" + tail
}
