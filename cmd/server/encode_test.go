package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// max_bytes and keep in VARIANTS entries, end to end through run: each
// variant of an upload fits its budget and keeps what its entry says and
// nothing else; a variant whose budget cannot be met fails the upload
// with a 422 problem and writes nothing.
func TestRunVariantsEncodeOptions(t *testing.T) {
	p3, err := os.ReadFile("../../testdata/p3.jpg")
	if err != nil {
		t.Fatal(err)
	}
	original := imagetest.JPEG(imagetest.Photo(t), 1, imagetest.JPEGICC(p3)) // EXIF with GPS and a MakerNote, XMP, IPTC, a profile
	s := start(t, map[string]string{
		"VARIANTS": "small:400x0?max_bytes=9000;credit:200x0:webp?keep=copyright;wide:200x0:png?keep=icc;plain:200x0:avif",
	})
	resp, b := post(t, s.url+"/uploads?key=enc/photo.jpg", original)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var up struct {
		Variants []struct {
			Name, Key string
			Bytes     int
		}
	}
	if err := json.Unmarshal(b, &up); err != nil || len(up.Variants) != 4 {
		t.Fatalf("upload answer %s: %v", b, err)
	}
	got := map[string][]byte{}
	for _, v := range up.Variants {
		resp, err := http.Get(s.url + "/objects/" + url.PathEscape(v.Key))
		if err != nil {
			t.Fatal(err)
		}
		got[v.Name], _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(got[v.Name]) != v.Bytes {
			t.Fatalf("%s: %d, %d bytes where the answer says %d", v.Key, resp.StatusCode, len(got[v.Name]), v.Bytes)
		}
	}
	if n := len(got["small"]); n > 9000 {
		t.Errorf("small: %d bytes, over max_bytes=9000", n)
	}
	imagetest.CheckClean(t, map[string][]byte{"small": got["small"], "plain": got["plain"]})
	imagetest.CheckCleanBut(t, map[string][]byte{"credit": got["credit"]}, "IFD0:Artist", "IFD0:Copyright")
	imagetest.CheckCleanBut(t, map[string][]byte{"wide": got["wide"]}, "ICC-header:*", "ICC_Profile:*")
	tags := imagetest.Exiftool(t, map[string][]byte{"credit": got["credit"], "wide": got["wide"]})
	if c := tags["credit"]; c["IFD0:Artist"] != imagetest.Markers[0] || c["IFD0:Copyright"] != imagetest.Markers[3] {
		t.Errorf("credit: Artist %v, Copyright %v: want the original's", c["IFD0:Artist"], c["IFD0:Copyright"])
	}
	if tags["wide"]["ICC-header:ProfileID"] == nil {
		t.Error("wide: no profile")
	}
	t.Logf("small: %d bytes in max_bytes=9000", len(got["small"]))

	tight := start(t, map[string]string{"VARIANTS": "fine:200x0;tiny:400x0?max_bytes=100"})
	resp, b = post(t, tight.url+"/uploads?key=enc/tight.jpg", original)
	var problem struct{ Type string }
	if resp.StatusCode != http.StatusUnprocessableEntity || json.Unmarshal(b, &problem) != nil ||
		problem.Type != "urn:resizer:problem:unsatisfiable" {
		t.Fatalf("upload with max_bytes=100: %d %s, want a 422 unsatisfiable problem", resp.StatusCode, b)
	}
	for _, key := range []string{"resized/fine/tight.jpg", "resized/tiny/tight.jpg"} {
		resp, err := http.Get(tight.url + "/objects/" + url.PathEscape(key))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d after a failed upload, want 404", key, resp.StatusCode)
		}
	}
}
