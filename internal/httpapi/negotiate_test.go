package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/resizer/resizer/internal/imageproc"
)

func TestNegotiate(t *testing.T) {
	tests := []struct {
		accept string
		want   imageproc.Format
	}{
		{"", imageproc.FormatUnknown},
		{"*/*", imageproc.FormatUnknown},
		{"image/webp,*/*", imageproc.FormatWebP},
		{"image/avif,image/webp,image/apng,image/*,*/*;q=0.8", imageproc.FormatAVIF},
		{"image/avif;q=0, image/webp", imageproc.FormatWebP},
		{"IMAGE/WEBP", imageproc.FormatWebP},
		{"image/avif;q=0.0", imageproc.FormatUnknown},
		// Parameter names are case-insensitive (RFC 9110 5.6.6): Q=0
		// refuses as q=0 does.
		{"image/webp;Q=0", imageproc.FormatUnknown},
		{"image/avif; Q=0, image/webp", imageproc.FormatWebP},
		{"text/html", imageproc.FormatUnknown},
	}
	for _, tt := range tests {
		got := imageproc.FormatUnknown
		if fs := negotiate(tt.accept); len(fs) > 0 {
			got = fs[0]
		}
		if got != tt.want {
			t.Errorf("negotiate(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

// A format the request may not have is refused naming every one it may,
// auto included (imageproc's own refusal, for VARIANTS, has no auto);
// every one it names is taken.
func TestFormatRefusalNamesAuto(t *testing.T) {
	for _, v := range []string{"foo", "heic", "pdf", "svg", "AUTO", "jpg2"} {
		_, _, err := imageOptions("format="+v, "", 1000)
		msg := fmt.Sprint(err)
		if !errors.Is(err, imageproc.ErrBadOption) || !strings.Contains(msg, "auto, original, jpeg") {
			t.Fatalf("format=%s: %v", v, err)
		}
		_, list, _ := strings.Cut(msg, "is not one of ")
		for _, name := range strings.Split(list, ", ") {
			if _, _, err := imageOptions("format="+name, "", 1000); err != nil {
				t.Errorf("format=%s, named as allowed, refused: %v", name, err)
			}
		}
	}
}

// The CDN's Accept function (deploy/cloudformation.yaml) reduces a
// browser's Accept header to what the service reads of it, so that the
// cache holds few copies of a negotiated image: run under Node on
// thousands of headers (real browsers' and random mixes of types and q
// values), its reduction must negotiate exactly what the header itself
// does, and be one of the four reductions; a header sent over two field
// lines is read as one list, as the service reads it.
func TestCDNAcceptFunction(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is needed to run the CDN's function (scripts/setup.sh test installs it)")
	}
	code := cloudFrontFunction(t, "AcceptFunction")
	headers := []string{"", "*/*", "image/avif;q=0.0000",
		"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",                                                             // Chrome
		"image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",                                                        // Firefox
		"image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", // Safari
	}
	types := []string{"image/avif", "image/webp", "IMAGE/WEBP", "Image/Avif", "image/png", "image/*", "*/*", "text/html", "image/avif ", " image/webp"}
	params := []string{"", "", ";q=0", ";q=0.0", ";Q=0", "; q=0", ";q =0", ";q=1", ";q=0.8", ";q=0.001", ";q=-0", ";q=+0", ";q=1e-3", ";q=0e0",
		";q=", ";q=abc", ";q=.0", ";q=0.", ";level=1;q=0", ";q=0;level=1", ";q"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 3000 {
		parts := make([]string, 1+rng.IntN(4))
		for i := range parts {
			parts[i] = types[rng.IntN(len(types))] + params[rng.IntN(len(params))]
		}
		headers = append(headers, strings.Join(parts, []string{",", ", "}[rng.IntN(2)]))
	}
	// Each header as its field lines: one, or (some of the random ones)
	// split over two, which CloudFront gives the function as multiValue.
	lines := make([][]string, len(headers))
	for i, a := range headers {
		lines[i] = []string{a}
		if parts := strings.Split(a, ","); len(parts) > 1 && rng.IntN(3) == 0 {
			cut := 1 + rng.IntN(len(parts)-1)
			lines[i] = []string{strings.Join(parts[:cut], ","), strings.Join(parts[cut:], ",")}
		}
	}
	in, err := json.Marshal(lines)
	if err != nil {
		t.Fatal(err)
	}
	harness := code + `
var input = JSON.parse(require("fs").readFileSync(0, "utf8"));
console.log(JSON.stringify(input.map(function (lines) {
  var headers = {};
  if (lines.length > 1) {
    headers.accept = {value: lines[0], multiValue: lines.map(function (v) { return {value: v}; })};
  } else if (lines[0] !== "") {
    headers.accept = {value: lines[0]};
  }
  return handler({request: {headers: headers}}).headers.accept.value; // the request, as CloudFront takes it
})));
`
	file := filepath.Join(t.TempDir(), "accept.js")
	if err := os.WriteFile(file, []byte(harness), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, file)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.Bytes())
	}
	var reduced []string
	if err := json.Unmarshal(out, &reduced); err != nil || len(reduced) != len(headers) {
		t.Fatalf("node's answer: %v, %d of %d: %.200s", err, len(reduced), len(headers), out)
	}
	seen := map[string]int{}
	for i, a := range headers {
		r := reduced[i]
		seen[r]++
		if !slices.Contains([]string{"image/avif,image/webp", "image/avif", "image/webp", "*/*"}, r) {
			t.Fatalf("Accept %q reduced to %q, not one of the four", a, r)
		}
		if got, want := negotiate(r), negotiate(a); !slices.Equal(got, want) {
			t.Errorf("Accept %q (lines %q) reduced to %q: the service negotiates %v of it, %v of the header", a, lines[i], r, got, want)
		}
	}
	if len(seen) != 4 {
		t.Errorf("reductions seen: %v, want all four", seen)
	}
}

// cloudFrontFunction is the code of the CloudFront function resource name
// of the stack's template.
func cloudFrontFunction(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/cloudformation.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	n := &doc
	for _, k := range []string{"", "Resources", name, "Properties", "FunctionCode"} {
		if k == "" {
			n = n.Content[0]
			continue
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			t.Fatalf("no %s in the template's %s", k, name)
		}
		n = next
	}
	return n.Value
}
