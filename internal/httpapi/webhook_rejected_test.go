package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

// putPresigned uploads body straight to storage with a presigned PUT, as
// a browser would, and returns S3's status and ETag.
func putPresigned(t *testing.T, p api.Presigned, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("PUT", p.Url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range *p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("ETag")
}

// An original replaced, straight to S3 with a presigned URL, by a file
// that can never have variants (not an image, a pixel flood, a truncated
// one, each declared image/jpeg) is rejected when its event comes; the
// variants and manifest of the version it replaced must not stand for it
// (served, listed, and telling a browser that polls the manifest of
// another upload), whether the rejected file is moved aside or left in
// place.
func TestWebhookRejectedReplacementLeavesNoOldOutputs(t *testing.T) {
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*testServer{
		"":          newTestServerOn(t, st, nil),
		"rejected/": newTestServerWith(t, st, nil, func(c *pipeline.Config) { c.RejectedPrefix = "rejected/" }),
	}
	entries, err := os.ReadDir(hostileDir)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "413-") || strings.HasPrefix(n, "415-") || strings.HasPrefix(n, "422-") {
			bad = append(bad, n)
		}
	}
	if len(bad) < 20 {
		t.Fatalf("%d hostile files that can never have variants", len(bad))
	}
	bad = append(bad, "") // and a text file
	photo := testdata(t, "ladybird.jpg")
	ctx := t.Context()
	for i, name := range bad {
		junk := []byte(strings.Repeat("<html>not a picture</html>\n", 40))
		if name != "" {
			if junk, err = os.ReadFile(filepath.Join(hostileDir, name)); err != nil {
				t.Fatal(err)
			}
		}
		rejected := []string{"", "rejected/"}[i%2]
		s := servers[rejected]
		rel := fmt.Sprintf("replaced/%d.jpg", i)
		key := "uploads/" + rel
		resp, body := s.do(t, "POST", "/uploads?key="+rel, photo, nil)
		if resp.StatusCode != 201 {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		old := decodeJSON[api.Upload](t, body)
		outputs := []string{"resized/_manifest/" + rel + ".json"}
		for _, v := range old.Variants {
			outputs = append(outputs, v.Key)
		}
		resp, body = presign(t, s, map[string]any{"content_type": "image/jpeg", "size": len(junk), "key": rel, "method": "PUT"}, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("presign: %d %s", resp.StatusCode, body)
		}
		code, etag := putPresigned(t, decodeJSON[api.Presigned](t, body), junk)
		if code != 200 {
			t.Fatalf("%s: presigned PUT %d", name, code)
		}
		resp, r := s.event(t, s3Event("ObjectCreated:Put", st.Bucket(), key, etag), nil)
		if resp.StatusCode != 200 || len(r.Records) != 1 || r.Records[0].Status != "rejected" {
			t.Fatalf("%s: event %d %+v, want a rejection", name, resp.StatusCode, r)
		}
		for _, k := range outputs {
			if obj, err := st.Head(ctx, k); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("%s (REJECTED_PREFIX %q): %s of the replaced version still stands (%v, etag %s)",
					name, rejected, k, err, obj.Metadata[pipeline.MetaSourceETag])
			}
		}
		// The rejected file itself: left in place, or moved aside.
		obj, err := st.Head(ctx, key)
		moved, _, merr := st.Get(ctx, "rejected/"+rel, storage.GetOptions{})
		switch {
		case rejected == "" && (err != nil || obj.ETag != etag):
			t.Errorf("%s: the rejected original is not left in place: %+v %v", name, obj, err)
		case rejected != "" && (!errors.Is(err, storage.ErrNotFound) || merr != nil || !bytes.Equal(moved, junk)):
			t.Errorf("%s: the rejected original is not moved aside: %v, %v", name, err, merr)
		}
		if t.Failed() {
			return
		}
	}
	// Nothing else was written under the outputs.
	left, err := st.List(ctx, "resized/", 0)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(left, func(o storage.Object) bool { return strings.Contains(o.Key, "replaced/") }); i >= 0 {
		t.Errorf("%s left under the outputs", left[i].Key)
	}
}
