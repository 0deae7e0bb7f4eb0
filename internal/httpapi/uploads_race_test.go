package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"sync"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// Twenty uploads of twenty pictures to one key at once: each answer is a
// 201, as docs/api.md says of an upload that another replaced; and the
// original that stands, its variants and its manifest are of one
// upload, whose answer said so. Before, the uploads whose conditional
// writes lost three times in a row to the others' (12 of 20 on MinIO, 3
// on the local store, in one run against the server) answered 500.
func TestConcurrentUploadsToOneKey(t *testing.T) {
	const n = 20
	pics := make([][]byte, n)
	for i := range pics {
		img := image.NewRGBA(image.Rect(0, 0, 300+7*i, 200))
		for j := range img.Pix {
			img.Pix[j] = uint8(j*(i+3)) | 3
		}
		img.Set(0, 0, color.RGBA{uint8(i), 0, 0, 255})
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, nil); err != nil {
			t.Fatal(err)
		}
		pics[i] = b.Bytes()
	}
	wide := func(_ *Config, p *imageproc.Config) { p.Concurrency, p.QueueSize = 4, n }
	stores := map[string]func() (*testServer, pipeline.Store){
		"dir": func() (*testServer, pipeline.Store) { s := newTestServer(t, wide); return s, s.local },
		"s3": func() (*testServer, pipeline.Store) {
			_, _, st := newS3TestServer(t)
			return newTestServerOn(t, st, wide), st
		},
	}
	for name, mk := range stores {
		t.Run(name, func(t *testing.T) {
			s, st := mk()
			codes := make([]int, n)
			answers := make([]api.Upload, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, body := s.do(t, "POST", "/uploads?key=race.jpg", pics[i], nil)
					codes[i] = resp.StatusCode
					switch resp.StatusCode {
					case 201:
						answers[i] = decodeJSON[api.Upload](t, body)
					default:
						t.Errorf("upload %d: %d %s", i, resp.StatusCode, body)
					}
				}()
			}
			wg.Wait()
			ctx := t.Context()
			orig, err := st.Head(ctx, "uploads/race.jpg")
			if err != nil {
				t.Fatal(err)
			}
			etag := strings.Trim(orig.ETag, `"`)
			won := -1
			for i, u := range answers {
				if codes[i] == 201 && strings.Trim(u.Etag, `"`) == etag {
					won = i
				}
			}
			if won < 0 {
				t.Fatalf("the stored original %s is no 201's: %v", etag, codes)
			}
			data, _, err := st.Get(ctx, "resized/_manifest/race.jpg.json", storage.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var m pipeline.Manifest
			if err := json.Unmarshal(data, &m); err != nil || strings.Trim(m.ETag, `"`) != etag || m.Width != 300+7*won {
				t.Fatalf("manifest %s %v, want the original %s of upload %d", data, err, etag, won)
			}
			for _, v := range m.Variants {
				obj, err := st.Head(ctx, v.Key)
				if err != nil || obj.Metadata[pipeline.MetaSourceETag] != etag {
					t.Errorf("%s: %v, made from %q, want %q", v.Key, err, obj.Metadata[pipeline.MetaSourceETag], etag)
				}
			}
			t.Log(fmt.Sprint("answers: ", codes))
		})
	}
}
