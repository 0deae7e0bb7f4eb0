package httpapi

import (
	"bytes"
	"errors"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/storage"
)

// form is a multipart body whose parts are given as name, file name (""
// for a plain field) and content.
func form(t *testing.T, parts ...[3]string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var err error
		if p[1] == "" {
			err = mw.WriteField(p[0], p[2])
		} else {
			var w interface{ Write([]byte) (int, error) }
			if w, err = mw.CreateFormFile(p[0], p[1]); err == nil {
				_, err = w.Write([]byte(p[2]))
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

// A form holds one file, and nothing after it: a second file (or a field)
// was never read, and the first stored with 201, so that a client that
// sent two pictures was told both were taken. It is a 400 and nothing is
// stored, on POST /uploads as on POST /resize.
func TestFormHoldsOneFile(t *testing.T) {
	s, _, st := newS3TestServer(t)
	photo := string(testdata(t, "ladybird.jpg"))
	ctx := t.Context()
	for i, tt := range []struct {
		name  string
		parts [][3]string
	}{
		{"two files", [][3]string{{"file", "a.jpg", photo}, {"file", "b.jpg", photo}}},
		{"two files, the second by another name", [][3]string{{"file", "a.jpg", photo}, {"file2", "b.jpg", photo}}},
		{"a field after the file", [][3]string{{"file", "a.jpg", photo}, {"focus", "", "0.5,0.5"}}},
	} {
		body, ct := form(t, tt.parts...)
		key := "form/" + string(rune('a'+i)) + ".jpg"
		for _, path := range []string{"/uploads?key=" + key, "/resize?width=50"} {
			resp, b := s.do(t, "POST", path, body, http.Header{"Content-Type": {ct}})
			if resp.StatusCode != 400 || !strings.Contains(string(b), "one file") {
				t.Errorf("%s, %s: %d %.200s, want 400", tt.name, path, resp.StatusCode, b)
			}
		}
		if _, err := st.Head(ctx, "uploads/"+key); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: stored (%v)", tt.name, err)
		}
	}
	body, ct := form(t, [3]string{"file", "a.jpg", photo})
	// The same form whole is taken.
	resp, b := s.do(t, "POST", "/uploads?key=form/whole.jpg", body, http.Header{"Content-Type": {ct}})
	if resp.StatusCode != 201 {
		t.Fatalf("a whole form: %d %.200s", resp.StatusCode, b)
	}
}
