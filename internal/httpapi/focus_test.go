package httpapi

import (
	"bytes"
	"image"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// The marked original: 800x200 grey with a red square centred at
// (680, 100), the focal point 0.85,0.5. The test server's thumb is
// 100x100 cover: cut at the centre it shows no red, cut around the focus
// it has the square in its middle.
const markerFocus = "0.85,0.5"

func markedPNG(t *testing.T) []byte {
	t.Helper()
	return imagetest.Marked(t, 800, 200, image.Rect(650, 70, 710, 130))
}

// checkFocus checks the original key in st and its thumb: with focus, the
// original carries it as metadata and the thumb is centred on the marker;
// without, neither has it and the thumb, cut at the centre, shows no red.
func checkFocus(t *testing.T, st pipeline.Store, key, focus string) {
	t.Helper()
	orig, err := st.Head(t.Context(), key)
	if err != nil || orig.Metadata["focus"] != focus {
		t.Errorf("original %s: metadata %v %v, want focus %q", key, orig.Metadata, err, focus)
	}
	thumb, _, err := st.Get(t.Context(), "resized/thumb/"+strings.TrimPrefix(key, "uploads/"), storage.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, x, y, ok := imagetest.MarkerCentre(t, thumb)
	switch {
	case ok != (focus != ""):
		t.Errorf("%s: thumb shows the marker: %v, with focus %q", key, ok, focus)
	case ok && (math.Abs(x-50) > 1 || math.Abs(y-50) > 1):
		t.Errorf("%s: marker at (%g, %g) of the thumb, want its centre (50, 50)", key, x, y)
	}
}

// POST /uploads?focus= stores the original with its focus and makes its
// variants around it, on either store; a bad focus is a 400 and stores
// nothing.
func TestUploadFocus(t *testing.T) {
	local := newTestServer(t, nil)
	s3srv, _, bucket := newS3TestServer(t)
	src := markedPNG(t)
	for _, c := range []struct {
		name string
		s    *testServer
		st   pipeline.Store
	}{
		{"local", local, local.local},
		{"s3", s3srv, bucket},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, tt := range []struct {
				name, query, focus string
			}{
				{"focus", "key=f.png&focus=" + markerFocus, markerFocus},
				{"focus in another spelling", "key=g.png&focus=" + url.QueryEscape("0.850, 0.50"), markerFocus},
				{"no focus", "key=n.png", ""},
			} {
				resp, body := c.s.do(t, "POST", "/uploads?"+tt.query, src, nil)
				if resp.StatusCode != 201 {
					t.Fatalf("%s: %d %s", tt.name, resp.StatusCode, body)
				}
				u := decodeJSON[api.Upload](t, body)
				if got := u.Focus; tt.focus == "" && got != nil || tt.focus != "" && (got == nil || *got != tt.focus) {
					t.Errorf("%s: answer's focus %v, want %q", tt.name, got, tt.focus)
				}
				checkFocus(t, c.st, u.Key, tt.focus)
			}
			for _, tt := range []struct{ name, query, want string }{
				{"out of range", "focus=1.5,0.5", "bad-option"},
				{"one number", "focus=0.5", "bad-option"},
				{"not numbers", "focus=left,top", "bad-option"},
				{"empty", "focus=", "bad-option"},
				{"twice", "focus=0.1,0.1&focus=0.2,0.2", "bad-request"},
			} {
				resp, body := c.s.do(t, "POST", "/uploads?key=bad.png&"+tt.query, src, nil)
				if resp.StatusCode != 400 || !strings.Contains(string(body), "urn:resizer:problem:"+tt.want) {
					t.Errorf("%s: %d %s, want 400 %s", tt.name, resp.StatusCode, body, tt.want)
				}
			}
			if _, err := c.st.Head(t.Context(), "uploads/bad.png"); err == nil {
				t.Error("an upload with a bad focus was stored")
			}
		})
	}
}

// A presigned upload to S3 carries its focus to the original, which the
// webhook's run then makes its variants with; S3 refuses a form or a PUT
// that changes it.
func TestPresignFocusS3(t *testing.T) {
	s, _, st := newS3TestServer(t)
	src := markedPNG(t)
	for _, method := range []string{"POST", "PUT"} {
		t.Run(method, func(t *testing.T) {
			key := "uploads/presigned-" + strings.ToLower(method) + ".png"
			resp, body := presign(t, s, map[string]any{"content_type": "image/png", "size": len(src),
				"key": strings.TrimPrefix(key, "uploads/"), "method": method, "focus": "0.850,0.5"}, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("presign: %d %s", resp.StatusCode, body)
			}
			p := decodeJSON[api.Presigned](t, body)
			// send uploads the file as p says, with the focus field or
			// header set to focus.
			send := func(focus string) int {
				t.Helper()
				var req *http.Request
				if method == "POST" {
					if (*p.Fields)["x-amz-meta-focus"] != markerFocus {
						t.Fatalf("form fields %v", *p.Fields)
					}
					var form bytes.Buffer
					mw := multipart.NewWriter(&form)
					for k, v := range *p.Fields {
						if k == "x-amz-meta-focus" {
							v = focus
						}
						mw.WriteField(k, v)
					}
					fw, _ := mw.CreateFormFile("file", "marked.png")
					fw.Write(src)
					mw.Close()
					req, _ = http.NewRequest("POST", p.Url, &form)
					req.Header.Set("Content-Type", mw.FormDataContentType())
				} else {
					if (*p.Headers)["X-Amz-Meta-Focus"] != markerFocus {
						t.Fatalf("headers %v", *p.Headers)
					}
					req, _ = http.NewRequest("PUT", p.Url, bytes.NewReader(src))
					for k, v := range *p.Headers {
						req.Header.Set(k, v)
					}
					req.Header.Set("X-Amz-Meta-Focus", focus)
				}
				r, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
				return r.StatusCode
			}
			if code := send("0.1,0.5"); code != 403 {
				t.Fatalf("upload with another focus: %d, want 403", code)
			}
			if code := send(markerFocus); code/100 != 2 {
				t.Fatalf("upload as signed: %d", code)
			}
			obj, err := st.Head(t.Context(), key)
			if err != nil {
				t.Fatal(err)
			}
			resp, r := s.event(t, s3Event("ObjectCreated:"+map[string]string{"POST": "Post", "PUT": "Put"}[method], st.Bucket(), key, obj.ETag), nil)
			if resp.StatusCode != 200 || len(r.Records) != 1 || r.Records[0].Status != "processed" {
				t.Fatalf("event: %d %+v", resp.StatusCode, r)
			}
			checkFocus(t, st, key, markerFocus)
		})
	}
	if resp, body := presign(t, s, map[string]any{"content_type": "image/png", "size": 10, "focus": "2,2"}, nil); resp.StatusCode != 400 ||
		!strings.Contains(string(body), "bad-option") {
		t.Errorf("presign with a bad focus: %d %s", resp.StatusCode, body)
	}
}

// The local store signs the focus into its upload URL and stores it with
// the upload; a URL whose focus was changed, dropped or added is refused.
func TestPresignFocusLocal(t *testing.T) {
	s := newTestServer(t, nil)
	src := markedPNG(t)
	signed := func(req map[string]any) string {
		t.Helper()
		resp, body := presign(t, s, req, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("presign: %d %s", resp.StatusCode, body)
		}
		return strings.TrimPrefix(decodeJSON[api.Presigned](t, body).Url, s.URL)
	}
	withFocus := signed(map[string]any{"content_type": "image/png", "size": len(src), "key": "local.png", "focus": markerFocus})
	without := signed(map[string]any{"content_type": "image/png", "size": len(src), "key": "plain.png"})
	edit := func(u, k, v string) string {
		path, query, _ := strings.Cut(u, "?")
		q, _ := url.ParseQuery(query)
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return path + "?" + q.Encode()
	}
	png := http.Header{"Content-Type": {"image/png"}}
	for _, tt := range []struct{ name, url string }{
		{"focus changed", edit(withFocus, "meta-focus", "0.1,0.5")},
		{"focus dropped", edit(withFocus, "meta-focus", "")},
		{"focus added", edit(without, "meta-focus", "0.1,0.5")},
	} {
		if resp, body := s.do(t, "PUT", tt.url, src, png); resp.StatusCode != 403 {
			t.Errorf("%s: %d %s, want 403", tt.name, resp.StatusCode, body)
		}
	}
	for _, tt := range []struct{ url, key, focus string }{
		{withFocus, "uploads/local.png", markerFocus},
		{without, "uploads/plain.png", ""},
	} {
		resp, body := s.do(t, "PUT", tt.url, src, png)
		if resp.StatusCode != 201 {
			t.Fatalf("signed upload: %d %s", resp.StatusCode, body)
		}
		if u := decodeJSON[api.Upload](t, body); tt.focus != "" && (u.Focus == nil || *u.Focus != tt.focus) || tt.focus == "" && u.Focus != nil {
			t.Errorf("%s: answer's focus %v, want %q", tt.key, u.Focus, tt.focus)
		}
		checkFocus(t, s.local, tt.key, tt.focus)
	}
}
