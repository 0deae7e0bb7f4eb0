package httpapi

import (
	"regexp"
	"slices"
	"testing"

	"github.com/resizer/resizer/internal/imageproc"
)

// The try-it page offers, besides original and auto, exactly the output
// formats a server with the default INPUT_FORMATS writes: a format it
// leaves out cannot be tried (gif was), one more would be a 400 on most
// servers (jxl, which only INPUT_FORMATS enables; the page cannot know).
func TestTryItFormatsAreTheOutputs(t *testing.T) {
	page, err := webFiles.ReadFile("web/index.html")
	if err != nil {
		t.Fatal(err)
	}
	sel := regexp.MustCompile(`(?s)<select id="format">(.*?)</select>`).FindSubmatch(page)
	if sel == nil {
		t.Fatal(`index.html has no <select id="format">`)
	}
	var offered []string
	for _, m := range regexp.MustCompile(`<option>([^<]*)</option>`).FindAllSubmatch(sel[1], -1) {
		offered = append(offered, string(m[1]))
	}
	want := []string{"original"}
	for _, f := range imageproc.OutputFormats {
		if f.Writable(imageproc.DefaultInputFormats) {
			want = append(want, f.String())
		}
	}
	want = append(want, "auto")
	if !slices.Equal(offered, want) {
		t.Errorf("the page offers the formats %v, want %v", offered, want)
	}
}
