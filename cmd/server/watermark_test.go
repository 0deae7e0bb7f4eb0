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

	"github.com/resizer/resizer/api"
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
