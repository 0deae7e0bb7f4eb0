package httpapi

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

// nameOf returns a name of n bytes ending in ".jpg", of segments of at
// most seg bytes.
func nameOf(n, seg int) string {
	b := make([]byte, n-len(".jpg"))
	for i := range b {
		b[i] = "abcdefghij"[i%10]
		if (i+1)%(seg+1) == 0 && i != len(b)-1 {
			b[i] = '/'
		}
	}
	return string(b) + ".jpg"
}

// A presigned upload is made straight to the store, and the service sees
// it only when its event comes: a key whose variants or manifest the
// store cannot hold (their keys, longer than the original's, over S3's
// 1,024 bytes or a directory's file name) would be stored and then
// rejected, for good. The presign refuses exactly the names that an
// upload through the service refuses, before a URL is issued.
func TestPresignRefusesWhatAnUploadWould(t *testing.T) {
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	photo := testdata(t, "ladybird.jpg")
	for _, tt := range []struct {
		store    string
		s        *testServer
		from, to int // name lengths
		seg      int // the longest segment
	}{
		// MinIO takes segments of 255 bytes at most: these stay under.
		{"S3", newTestServerOn(t, st, nil), 990, 1016, 200},
		{"local", newTestServer(t, nil), 230, 252, 255},
	} {
		taken, refused := 0, 0
		for n := tt.from; n <= tt.to; n++ {
			name := nameOf(n, tt.seg)
			if tt.store == "local" {
				name = nameOf(n, n) // one segment, near a file name's limit
			}
			if len(name) != n {
				t.Fatalf("name of %d bytes: %d", n, len(name))
			}
			resp, body := presign(t, tt.s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "key": name, "method": "PUT"}, nil)
			presigned := resp.StatusCode
			resp, ubody := tt.s.do(t, "POST", "/uploads?key="+url.QueryEscape(name), photo, nil)
			switch {
			case presigned == 200 && resp.StatusCode == 201:
				taken++
			case presigned == 400 && resp.StatusCode == 400:
				refused++
			default:
				t.Errorf("%s, a name of %d bytes: presign %d (%.200s), upload %d (%.200s)",
					tt.store, n, presigned, body, resp.StatusCode, ubody)
			}
		}
		if taken == 0 || refused == 0 {
			t.Errorf("%s: %d names taken, %d refused: the range misses the limit", tt.store, taken, refused)
		}
	}
}

// A name a client chooses holds no bidirectional control, which would
// make "tom\u202Egpj.exe" read as "tomexe.jpg" wherever the name is shown:
// every such character is refused by an upload and by a presign alike,
// while names of other scripts and of emoji (with their joiners) are
// taken.
func TestChosenNamesHoldNoBidiControl(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	n := 0
	for _, rt := range unicode.Bidi_Control.R16 {
		for r := rt.Lo; r <= rt.Hi; r += rt.Stride {
			n++
			name := "tom" + string(rune(r)) + "gpj.exe.jpg"
			if resp, body := s.do(t, "POST", "/uploads?key="+url.QueryEscape(name), photo, nil); resp.StatusCode != 400 ||
				!strings.Contains(string(body), "bidirectional") {
				t.Errorf("upload of %+q: %d %.200s", name, resp.StatusCode, body)
			}
			if resp, body := presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(photo), "key": name}, nil); resp.StatusCode != 400 {
				t.Errorf("presign of %+q: %d %.200s", name, resp.StatusCode, body)
			}
		}
	}
	if n < 10 {
		t.Fatalf("%d bidirectional controls: the table is not the one meant", n)
	}
	for _, name := range []string{"日本/猫.jpg", "عربي/قطة.jpg", "family 👨\u200d👩\u200d👧.jpg", "café.jpg"} {
		if resp, body := s.do(t, "POST", "/uploads?key="+url.QueryEscape(name), photo, nil); resp.StatusCode != 201 {
			t.Errorf("upload of %q: %d %.200s", name, resp.StatusCode, body)
		}
	}
}
