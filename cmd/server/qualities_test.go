package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// The qualities reach the encoder end to end: JPEG_QUALITY is what
// /resize and a variant without quality write, and a VARIANTS entry's own
// quality (through the option parser) what that variant writes. The
// encoders are deterministic, so equal settings give equal bytes.
func TestRunQualities(t *testing.T) {
	s := start(t, map[string]string{"JPEG_QUALITY": "50", "VARIANTS": "low:200x0?quality=20;plain:200x0"})
	resize := func(query string) []byte {
		t.Helper()
		resp, b := post(t, s.url+"/resize?"+query, imagetest.Photo(t))
		if resp.StatusCode != 200 {
			t.Fatalf("/resize?%s: %d %s", query, resp.StatusCode, b)
		}
		return b
	}
	at20, at50, byDefault := resize("width=200&quality=20"), resize("width=200&quality=50"), resize("width=200")
	if !bytes.Equal(byDefault, at50) || bytes.Equal(at20, at50) {
		t.Fatalf("/resize: default %d bytes, quality=50 %d, quality=20 %d: want the default to be JPEG_QUALITY=50",
			len(byDefault), len(at50), len(at20))
	}
	resp, b := post(t, s.url+"/uploads?key=q/photo.jpg", imagetest.Photo(t))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	var up struct{ Variants []struct{ Name, Key string } }
	if err := json.Unmarshal(b, &up); err != nil || len(up.Variants) != 2 {
		t.Fatalf("upload answer %s: %v", b, err)
	}
	want := map[string][]byte{"low": at20, "plain": at50}
	for _, v := range up.Variants {
		resp, err := http.Get(s.url + "/objects/" + url.PathEscape(v.Key))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(got, want[v.Name]) {
			t.Errorf("variant %s: %d bytes, not the %d of /resize at its quality", v.Name, len(got), len(want[v.Name]))
		}
	}
	t.Logf("200 px JPEG: quality 20 %d bytes, 50 %d bytes", len(at20), len(at50))
}
