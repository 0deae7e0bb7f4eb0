package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// What reaches a client, from POST /resize in every format (format=auto
// included) and from the variants of POST /uploads, carries none of the
// uploader's metadata: no EXIF (GPS, Artist, MakerNote), XMP, IPTC, ICC
// profile, comment, or orientation tag.
func TestResponsesCarryNoMetadata(t *testing.T) {
	s := newTestServer(t, nil)
	base := testJPEG(t, 300, 200)
	icc := imagetest.JPEGICC(testdata(t, "p3.jpg"))
	original := imagetest.JPEG(base, 6, icc)
	outs := map[string][]byte{}
	for _, q := range []string{"format=jpeg", "format=png", "format=webp", "format=avif", "format=original", "format=auto"} {
		for _, accept := range []string{"", "image/webp", "image/avif,image/webp"} {
			if accept != "" && q != "format=auto" {
				continue
			}
			resp, b := s.do(t, "POST", "/resize?width=80&"+q, original, http.Header{"Accept": {accept}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
			}
			outs[fmt.Sprintf("/resize?%s (Accept %q): %s", q, accept, resp.Header.Get("Content-Type"))] = b
		}
	}
	resp, b := s.do(t, "POST", "/uploads?key=privacy/meta.jpg", original, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var up struct {
		Variants []struct{ Key, Format string }
	}
	if err := json.Unmarshal(b, &up); err != nil || len(up.Variants) == 0 {
		t.Fatalf("upload answer %s: %v", b, err)
	}
	for _, v := range up.Variants {
		resp, b := s.do(t, "GET", "/objects/"+url.PathEscape(v.Key), nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", v.Key, resp.StatusCode)
		}
		outs["variant "+v.Key] = b
	}
	imagetest.CheckClean(t, outs)
}
