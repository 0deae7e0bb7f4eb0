package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resizer/resizer/imageurl"
)

// A page of another origin whose <img srcset> is built from signed URLs,
// in a real browser: Chromium picks the width the layout needs (400 CSS
// pixels at a device pixel ratio of 1: the 640w candidate) and shows it
// (its naturalWidth is then 640 pixels at a density of 640/400, so 400),
// and the service serves that URL at 640 pixels.
func TestDeliverSrcsetInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/page/ladybird.jpg", testdata(t, "ladybird.jpg"))
	var candidates []string
	for _, w := range []int{320, 640, 960} {
		p := sign(t, testSigningKey, imageurl.Request{Key: "uploads/page/ladybird.jpg",
			Options: opts("width", fmt.Sprint(w), "format", "auto")})
		candidates = append(candidates, fmt.Sprintf("%s%s %dw", s.URL, p, w))
	}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta name="viewport" content="width=device-width">
<img id="photo" alt="a ladybird" sizes="400px" srcset="%s" style="width:400px">`, strings.Join(candidates, ", "))
	}))
	defer page.Close()
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(page.URL))
	got := run(t, ctx, chromedp.Poll[[]any](`(() => { const i = document.getElementById("photo");
		return i.complete && i.naturalWidth > 0 ? [i.naturalWidth, i.currentSrc] : null })()`, chromedp.WithPollingTimeout(30*time.Second)))
	if len(got) != 2 || got[0] != float64(400) || !strings.Contains(got[1].(string), "width=640") {
		t.Fatalf("the browser shows %v, want the 640w candidate", got)
	}
	resp, body := s.do(t, "GET", strings.TrimPrefix(got[1].(string), s.URL), nil, http.Header{"Accept": {"image/webp,*/*"}})
	if w, _, f := imageSize(t, body); resp.StatusCode != 200 || w != 640 || f != "webp" {
		t.Fatalf("%d: %s %d wide", resp.StatusCode, f, w)
	}
	screenshot(t, ctx, "srcset.png")
}
