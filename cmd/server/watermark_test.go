package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/webhook"
)

// solidImage is a w x h image of one colour.
func solidImage(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, c.A
	}
	return img
}

// redAt reports whether the image b is red at x, y (and grey otherwise).
func redAt(t *testing.T, b []byte, x, y int) bool {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA)
	return c.R > 200 && c.G < 60
}

// The operator's way: a file copied under DATA_DIR/watermarks/ (no
// metadata file of the store's) is a watermark that POST /resize and a
// VARIANTS entry, so POST /uploads, put on; one that is not there is a
// 400.
func TestRunWatermarks(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "watermarks"), 0o755); err != nil {
		t.Fatal(err)
	}
	var logo bytes.Buffer
	png.Encode(&logo, solidImage(40, 20, color.NRGBA{255, 0, 0, 255}))
	if err := os.WriteFile(filepath.Join(dir, "watermarks", "logo.png"), logo.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, map[string]string{"DATA_DIR": dir,
		"VARIANTS": "thumb:200x200:cover?watermark=logo.png&watermark_position=northwest;plain:100x0"})
	var grey bytes.Buffer
	jpeg.Encode(&grey, solidImage(400, 300, color.NRGBA{100, 100, 100, 255}), &jpeg.Options{Quality: 95})

	resp, body := post(t, s.url+"/resize?format=png&watermark=logo.png&watermark_position=southeast&watermark_margin=10", grey.Bytes())
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if !redAt(t, body, 400-10-20, 300-10-10) || redAt(t, body, 20, 20) {
		t.Error("POST /resize: the watermark is not in the bottom-right corner alone")
	}
	for _, name := range []string{"missing.png", "../uploads/x.jpg"} {
		resp, body = post(t, s.url+"/resize?watermark="+url.QueryEscape(name), grey.Bytes())
		if resp.StatusCode != 400 || !strings.Contains(string(body), "bad-option") {
			t.Errorf("watermark=%s: %d %s, want 400 bad-option", name, resp.StatusCode, body)
		}
	}

	resp, body = post(t, s.url+"/uploads", grey.Bytes())
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	var u api.Upload
	if err := json.Unmarshal(body, &u); err != nil || len(u.Variants) != 2 {
		t.Fatalf("%s: %v", body, err)
	}
	get := func(key string) []byte {
		r, err := http.Get(s.url + "/objects/" + url.PathEscape(key))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %d", key, r.StatusCode)
		}
		return b
	}
	if !redAt(t, get(u.Variants[0].Key), 10, 5) {
		t.Error("the thumb variant has no watermark in its top-left corner")
	}
	if redAt(t, get(u.Variants[1].Key), 5, 5) {
		t.Error("the plain variant has a watermark")
	}
}

// Watermarks never share keys with originals: a prefix among them does
// not start, and each line of the error names both variables.
func TestRunRefusesWatermarksAmongOriginals(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "WATERMARK_PREFIX": "uploads/marks/"}
	err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WATERMARK_PREFIX and INPUT_PREFIX:") {
		t.Fatalf("err = %v", err)
	}
	env = map[string]string{"DATA_DIR": t.TempDir(), "WATERMARK_PREFIX": "out/", "OUTPUT_PREFIX": "out/small/",
		"REJECTED_PREFIX": "out/"}
	err = run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	for _, want := range []string{"WATERMARK_PREFIX and OUTPUT_PREFIX:", "WATERMARK_PREFIX and REJECTED_PREFIX:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want a line starting %q", err, want)
		}
	}
	env = map[string]string{"DATA_DIR": t.TempDir(), "INPUT_PREFIX": "/", "WATERMARK_PREFIX": "marks/"}
	if err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "WATERMARK_PREFIX") {
		t.Fatalf("whole bucket of originals: err = %v", err)
	}
}

// A watermark that VARIANTS names and DATA_DIR lacks stops the server
// before it listens, naming the variable and the watermark: every upload
// would otherwise fail. So does a VARIANTS watermark with watermarks off.
func TestRunRefusesMissingVariantWatermark(t *testing.T) {
	for _, tt := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"VARIANTS": "thumb:200x200:cover?watermark=missing.png;plain:100x0"},
			[]string{"VARIANTS", `"missing.png"`, `"watermarks/"`}},
		{map[string]string{"VARIANTS": "thumb:200x200:cover?watermark=logo.png", "WATERMARK_PREFIX": "off"},
			[]string{"VARIANTS", `"thumb"`, `"logo.png"`, "WATERMARK_PREFIX"}},
	} {
		tt.env["DATA_DIR"] = t.TempDir()
		tt.env["ADDR"] = "127.0.0.1:0"
		// A server that starts serves until its context ends, then returns
		// nil: the refusal is an error within the time.
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		err := run(ctx, []string{"server"}, func(k string) string { return tt.env[k] }, io.Discard)
		cancel()
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("VARIANTS=%s: err = %v, want it to name %s", tt.env["VARIANTS"], err, w)
			}
		}
	}
}

// With S3, a watermark that VARIANTS names and the bucket lacks is the
// configuration's fault, to be mended by storing it: the server starts
// not ready and says why; an upload is a 503 to retry, not the uploader's
// 400; an original's event is a 503 for its sender to retry, and the
// original stays where it is, not rejected; a preset by URL is a 503. A
// watermark that a request names is still the client's 400. Once the
// watermark is stored, all of it works without a restart.
func TestRunMissingWatermarkWithS3(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	const secret = "missing-watermark-secret"
	s := start(t, map[string]string{
		"S3_BUCKET": bucket, "S3_ENDPOINT": srv.Endpoint, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": srv.Region, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		"ALLOW_ANONYMOUS": "true", "WEBHOOK_SECRETS": secret, "REJECTED_PREFIX": "rejected/", "DELIVERY_UNSIGNED_PRESETS": "true",
		"VARIANTS": "marked:200x200:cover?watermark=logo.png;plain:100x0",
	})
	ctx := t.Context()
	s3c := srv.Client()
	put := func(key string, data []byte) string {
		t.Helper()
		out, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		return *out.ETag
	}
	exists := func(key string) bool {
		t.Helper()
		_, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
		return err == nil
	}
	ready := func() (int, string) {
		t.Helper()
		r, err := http.Get(s.url + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b)
	}
	event := func(key, etag string) (*http.Response, []byte) {
		t.Helper()
		rec := map[string]any{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": time.Now().UTC(),
			"s3": map[string]any{"bucket": map[string]any{"name": bucket},
				"object": map[string]any{"key": url.QueryEscape(key), "eTag": strings.Trim(etag, `"`)}}}
		body, _ := json.Marshal(map[string]any{"Records": []any{rec}})
		r, _ := http.NewRequest("POST", s.url+"/webhooks/s3", bytes.NewReader(body))
		r.Header.Set(webhook.Header, webhook.Sign([]byte(secret), body, time.Now()))
		return contract.Do(t, nil, r)
	}
	var photo bytes.Buffer
	jpeg.Encode(&photo, solidImage(400, 300, color.NRGBA{100, 100, 100, 255}), &jpeg.Options{Quality: 90})

	if code, body := ready(); code != 503 || !strings.Contains(body, "VARIANTS") || !strings.Contains(body, `\"logo.png\"`) {
		t.Errorf("readyz with the watermark missing: %d %s, want 503 naming VARIANTS and logo.png", code, body)
	}
	if !strings.Contains(s.logs.String(), "logo.png") {
		t.Errorf("the missing watermark is not in the log:\n%s", s.logs.String())
	}

	resp, body := post(t, s.url+"/uploads?key=a.jpg", photo.Bytes())
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "urn:resizer:problem:misconfigured") ||
		strings.Contains(string(body), "logo.png") {
		t.Errorf("upload with the watermark missing: %d (Retry-After %q) %s, want 503 misconfigured, the watermark's name kept from the client",
			resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if exists("uploads/a.jpg") {
		t.Error("the refused upload was stored")
	}
	resp, body = post(t, s.url+"/resize?watermark=other.png", photo.Bytes())
	if resp.StatusCode != 400 || !strings.Contains(string(body), "bad-option") {
		t.Errorf("a request's own missing watermark: %d %s, want 400 bad-option", resp.StatusCode, body)
	}

	etag := put("uploads/b.jpg", photo.Bytes())
	for range 2 { // as the sender retries
		if resp, body = event("uploads/b.jpg", etag); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("event with the watermark missing: %d %s, want 503 to retry", resp.StatusCode, body)
		}
	}
	if !exists("uploads/b.jpg") || exists("rejected/b.jpg") {
		t.Errorf("the original was moved: under uploads/ %v, under rejected/ %v", exists("uploads/b.jpg"), exists("rejected/b.jpg"))
	}
	req, _ := http.NewRequest("GET", s.url+"/img/_/preset=marked/uploads/b.jpg", nil)
	if resp, body = contract.Do(t, nil, req); resp.StatusCode != 503 || !strings.Contains(string(body), "urn:resizer:problem:misconfigured") {
		t.Errorf("preset with the watermark missing: %d %s, want 503 misconfigured", resp.StatusCode, body)
	}

	var logo bytes.Buffer
	png.Encode(&logo, solidImage(40, 20, color.NRGBA{255, 0, 0, 255}))
	put("watermarks/logo.png", logo.Bytes())
	if code, body := ready(); code != 200 {
		t.Errorf("readyz once the watermark is stored: %d %s", code, body)
	}
	if resp, body = event("uploads/b.jpg", etag); resp.StatusCode != 200 || !strings.Contains(string(body), `"processed"`) {
		t.Errorf("event once the watermark is stored: %d %s", resp.StatusCode, body)
	}
	if !exists("resized/marked/b.jpg") {
		t.Error("no variant made once the watermark is stored")
	}
	if resp, body = post(t, s.url+"/uploads?key=a.jpg", photo.Bytes()); resp.StatusCode != 201 {
		t.Errorf("upload once the watermark is stored: %d %s", resp.StatusCode, body)
	}
}
