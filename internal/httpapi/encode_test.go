package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// outputFormats are the formats POST /resize writes by default.
var outputFormats = []string{"jpeg", "png", "webp", "gif", "avif"}

// keep through POST /resize, as a property over every output format and
// every value: without keep (or keep=none) nothing of the uploader's
// metadata survives; keep=copyright leaves the source's EXIF Artist and
// Copyright and nothing else (no GPS, no MakerNote, no orientation, no
// profile), in every format that carries EXIF; keep=icc leaves the colour
// profile and nothing else, in every format that carries one. A GIF
// carries neither, whatever keep says.
func TestResizeKeepProperty(t *testing.T) {
	s := newTestServer(t, nil)
	icc := imagetest.JPEGICC(testdata(t, "p3.jpg"))
	original := imagetest.JPEG(testJPEG(t, 300, 200), 6, icc) // every kind of metadata, a GPS position and a MakerNote included
	byKeep := map[string]map[string][]byte{}
	for _, keep := range []string{"", "none", "copyright", "icc"} {
		byKeep[keep] = map[string][]byte{}
		for _, f := range outputFormats {
			q := "/resize?width=80&format=" + f
			if keep != "" {
				q += "&keep=" + keep
			}
			resp, b := s.do(t, "POST", q, original, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
			}
			if f != "avif" { // Go reads no AVIF
				if w, h, _ := imageSize(t, b); w != 80 || h != 120 {
					t.Errorf("%s: %dx%d, want 80x120 (upright)", q, w, h)
				}
			}
			byKeep[keep][q] = b
		}
	}
	imagetest.CheckClean(t, byKeep[""])
	imagetest.CheckClean(t, byKeep["none"])
	imagetest.CheckCleanBut(t, byKeep["copyright"], "IFD0:Artist", "IFD0:Copyright")
	imagetest.CheckCleanBut(t, byKeep["icc"], "ICC-header:*", "ICC_Profile:*")
	for q, tags := range imagetest.Exiftool(t, byKeep["copyright"]) {
		gif := strings.HasSuffix(q, "format=gif&keep=copyright")
		artist, copyright := tags["IFD0:Artist"], tags["IFD0:Copyright"]
		if gif && (artist != nil || copyright != nil) {
			t.Errorf("%s: Artist %v, Copyright %v in a GIF", q, artist, copyright)
		}
		if !gif && (artist != imagetest.Markers[0] || copyright != imagetest.Markers[3]) {
			t.Errorf("%s: Artist %v, Copyright %v: want the source's", q, artist, copyright)
		}
		for k := range tags {
			if strings.HasPrefix(k, "ICC") {
				t.Errorf("%s: keep=copyright keeps the profile (%s)", q, k)
			}
		}
	}
	for q, tags := range imagetest.Exiftool(t, byKeep["icc"]) {
		gif := strings.HasSuffix(q, "format=gif&keep=icc")
		if id := tags["ICC-header:ProfileID"]; gif != (id == nil) {
			t.Errorf("%s: profile %v", q, id)
		}
	}
}

// max_bytes through POST /resize, as a property over several images,
// formats and budgets: a 200 is never over the budget, and a budget that
// cannot be met is a 422 problem+json (unsatisfiable), never anything
// else. Both answers occur, or the budgets prove nothing.
func TestResizeMaxBytesProperty(t *testing.T) {
	s := newTestServer(t, nil)
	images := map[string][]byte{
		"photo":     testdata(t, "ladybird.jpg"),
		"p3":        testdata(t, "p3.jpg"),
		"synthetic": testJPEG(t, 600, 400),
	}
	budgets := []int{1, 300, 1500, 4000, 12_000, 40_000, 400_000}
	answers := map[int]int{}
	for name, img := range images {
		for _, f := range []string{"jpeg", "webp", "avif", "png"} {
			for _, budget := range budgets {
				q := fmt.Sprintf("/resize?width=300&format=%s&max_bytes=%d", f, budget)
				resp, b := s.do(t, "POST", q, img, nil)
				answers[resp.StatusCode]++
				switch resp.StatusCode {
				case http.StatusOK:
					if len(b) > budget {
						t.Errorf("%s %s: %d bytes", name, q, len(b))
					}
				case http.StatusUnprocessableEntity:
					var p struct {
						Type   string
						Status int
					}
					if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" ||
						json.Unmarshal(b, &p) != nil || p.Type != "urn:resizer:problem:unsatisfiable" || p.Status != 422 {
						t.Errorf("%s %s: 422 %s %s, want an unsatisfiable problem", name, q, resp.Header.Get("Content-Type"), b)
					}
				default:
					t.Errorf("%s %s: %d %s", name, q, resp.StatusCode, b)
				}
			}
		}
	}
	t.Logf("answers: %v", answers)
	if answers[http.StatusOK] == 0 || answers[http.StatusUnprocessableEntity] == 0 {
		t.Errorf("answers %v: want both fits and 422s", answers)
	}
}
