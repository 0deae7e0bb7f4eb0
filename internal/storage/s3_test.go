package storage

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/s3test"
)

// postForm uploads data through a presigned POST, the way a browser form
// does, and returns the status.
func postForm(t *testing.T, p Presigned, contentType string, data []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range p.Fields {
		if k == "Content-Type" {
			v = contentType
		}
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "upload")
	fw.Write(data)
	mw.Close()
	resp, err := http.Post(p.URL, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestS3PresignedPost(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	jpeg := bytes.Repeat([]byte{0xFF}, 1000)
	p, err := s.presignPost(ctx, "uploads/post.jpg", "image/jpeg", 2000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "POST" || p.Fields["key"] != "uploads/post.jpg" || p.Fields["Content-Type"] != "image/jpeg" || p.Fields["policy"] == "" {
		t.Fatalf("presigned %+v", p)
	}
	if code, body := postForm(t, p, "image/jpeg", jpeg); code/100 != 2 {
		t.Fatalf("upload within the policy: %d %s", code, body)
	}
	h, err := s.Head(ctx, "uploads/post.jpg")
	if err != nil || h.Size != 1000 || h.ContentType != "image/jpeg" {
		t.Fatalf("uploaded object %+v %v", h, err)
	}
	// S3 itself refuses what the policy does not allow.
	p2, _ := s.presignPost(ctx, "uploads/post2.jpg", "image/jpeg", 2000, time.Minute)
	if code, body := postForm(t, p2, "image/jpeg", bytes.Repeat([]byte{1}, 2001)); code != 400 || !strings.Contains(body, "EntityTooLarge") {
		t.Errorf("over the size limit: %d %s", code, body)
	}
	if code, body := postForm(t, p2, "text/html", jpeg); code != 403 {
		t.Errorf("wrong content type: %d %s", code, body)
	}
	if _, err := s.Head(ctx, "uploads/post2.jpg"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused upload left an object: %v", err)
	}
	expired, _ := s.presignPost(ctx, "uploads/post3.jpg", "image/jpeg", 2000, time.Second)
	time.Sleep(2100 * time.Millisecond)
	if code, body := postForm(t, expired, "image/jpeg", jpeg); code != 403 {
		t.Errorf("expired policy: %d %s", code, body)
	}
}

func TestS3PresignedPut(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte{7}, 500)
	p, err := s.presignPut(ctx, "uploads/put.png", "image/png", int64(len(data)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "PUT" || p.Headers["Content-Type"] != "image/png" || p.Headers["Content-Length"] != "500" {
		t.Fatalf("presigned %+v", p)
	}
	put := func(body []byte, ctype string) int {
		req, _ := http.NewRequest("PUT", p.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(bytes.Repeat([]byte{7}, 600), "image/png"); code != 403 {
		t.Errorf("other length: %d, want 403", code)
	}
	if code := put(data, "text/html"); code != 403 {
		t.Errorf("other content type: %d, want 403", code)
	}
	if code := put(data, "image/png"); code != 200 {
		t.Fatalf("signed put: %d", code)
	}
	if h, err := s.Head(ctx, "uploads/put.png"); err != nil || h.Size != 500 || h.ContentType != "image/png" {
		t.Fatalf("object %+v %v", h, err)
	}
}

// SDK errors come out as this package's.
func TestS3Errors(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	missing, _ := NewS3(S3Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err := missing.Check(ctx); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	cfg := srv.AWSConfig()
	wrong := cfg.Copy()
	wrong.Credentials = nil
	bad, _ := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, wrong)
	if _, err := bad.Put(ctx, "k", []byte("x"), PutOptions{}); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("anonymous put: %v", err)
	}
	down, _ := NewS3(S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true}, cfg)
	if _, err := down.Head(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable endpoint: %v", err)
	}
}
