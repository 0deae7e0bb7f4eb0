package httpapi

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/image/webp"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
)

// postInfo sends body to POST /info and decodes the answer, which do has
// checked against openapi.yaml.
func postInfo(t *testing.T, s *testServer, body []byte, header http.Header) api.ImageInfo {
	t.Helper()
	resp, out := s.do(t, "POST", "/info", body, header)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, out)
	}
	var info api.ImageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	return info
}

// rendered is the image as the service renders it (its own PNG of the
// image), for the formats the standard library cannot decode (AVIF) or
// decodes without colour management (CMYK).
func rendered(t *testing.T, s *testServer, b []byte) image.Image {
	t.Helper()
	resp, out := s.do(t, "POST", "/resize?format=png", b, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("render: status %d: %s", resp.StatusCode, out)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func decodeImage(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testJPEGOf(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The answer is the image's, for each kind a client sends: the format,
// the upright size, the orientation it had, alpha, frames, a ThumbHash
// that decodes to a placeholder of the image's mean colour and aspect
// ratio, and the dominant colour.
func TestInfo(t *testing.T) {
	s := newTestServer(t, nil)
	photo := testdata(t, "ladybird.jpg")
	resized := func(query string) []byte {
		resp, out := s.do(t, "POST", "/resize?"+query, photo, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d: %s", query, resp.StatusCode, out)
		}
		return out
	}
	webpPhoto, avifPhoto := resized("width=400&format=webp"), resized("width=400&format=avif")
	webpImage, err := webp.Decode(bytes.NewReader(webpPhoto))
	if err != nil {
		t.Fatal(err)
	}

	// A red disc, opaque, on a blue background that fades out to nothing
	// a third of the way across.
	disc := image.NewNRGBA(image.Rect(0, 0, 90, 60))
	for y := 0; y < 60; y++ {
		for x := 0; x < 90; x++ {
			c := color.NRGBA{30, 90, 200, uint8(max(0, 255-x*8))}
			if dx, dy := x-30, y-30; dx*dx+dy*dy < 400 {
				c = color.NRGBA{220, 30, 40, 255}
			}
			disc.SetNRGBA(x, y, c)
		}
	}
	anim := &gif.GIF{}
	for k := range 3 {
		frame := image.NewPaletted(image.Rect(0, 0, 48, 64), palette.WebSafe)
		for y := 0; y < 64; y++ {
			for x := 0; x < 48; x++ {
				frame.Set(x, y, color.RGBA{uint8(200 - k*60), uint8(y * 4), uint8(x * 5), 255})
			}
		}
		anim.Image, anim.Delay = append(anim.Image, frame), append(anim.Delay, 20)
	}
	var animGIF bytes.Buffer
	if err := gif.EncodeAll(&animGIF, anim); err != nil {
		t.Fatal(err)
	}
	cmyk := testdata(t, "cmyk.jpg")

	tests := []struct {
		name        string
		body        []byte
		format      string
		w, h        int
		orientation int
		alpha       bool // an alpha channel
		clear       bool // pixels that are not opaque
		frames      int
		source      image.Image // for the mean colour: the image upright, or any turn of it
		dominant    func(c [3]int) bool
	}{
		{"JPEG landscape", photo, "jpeg", 2560, 1600, 1, false, false, 1, decodeImage(t, photo), green},
		{"JPEG turned by EXIF", imagetest.JPEG(photo, 6, nil), "jpeg", 1600, 2560, 6, false, false, 1, decodeImage(t, photo), green},
		{"PNG with alpha", encodePNG(t, disc), "png", 90, 60, 1, true, true, 1, disc, red},
		{"animated GIF", animGIF.Bytes(), "gif", 48, 64, 1, false, false, 3, anim.Image[0], nil},
		{"WebP", webpPhoto, "webp", 400, 250, 1, false, false, 1, webpImage, green},
		{"AVIF", avifPhoto, "avif", 400, 250, 1, false, false, 1, rendered(t, s, avifPhoto), green},
		{"CMYK JPEG", cmyk, "jpeg", 160, 100, 1, false, false, 1, rendered(t, s, cmyk), green},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := postInfo(t, s, tt.body, nil)
			if string(info.Format) != tt.format || info.Width != tt.w || info.Height != tt.h ||
				info.Orientation != tt.orientation || info.Alpha != tt.alpha || info.Frames != tt.frames || info.Pages != 1 {
				t.Errorf("got %s %dx%d orientation %d alpha %v frames %d pages %d; want %s %dx%d orientation %d alpha %v frames %d pages 1",
					info.Format, info.Width, info.Height, info.Orientation, info.Alpha, info.Frames, info.Pages,
					tt.format, tt.w, tt.h, tt.orientation, tt.alpha, tt.frames)
			}
			imagetest.CheckThumbHash(t, info.Thumbhash, tt.w, tt.h, tt.clear, imagetest.MeanColour(tt.source), 10)
			if tt.dominant != nil {
				if c := hexColour(t, info.DominantColor); !tt.dominant(c) {
					t.Errorf("dominant colour %v", c)
				}
			}
		})
	}
}

func green(c [3]int) bool { return c[1] > c[0]+20 && c[1] > c[2]+20 }
func red(c [3]int) bool   { return c[0] > c[1]+100 && c[0] > c[2]+100 }

func hexColour(t *testing.T, s *string) [3]int {
	t.Helper()
	if s == nil {
		t.Fatal("no dominant colour")
	}
	v, err := strconv.ParseUint(*s, 16, 32)
	if err != nil || len(*s) != 6 {
		t.Fatalf("dominant colour %q", *s)
	}
	return [3]int{int(v >> 16), int(v >> 8 & 255), int(v & 255)}
}

// The dominant colour is the most common one: red for a mostly red picture
// with some blue, where the mean would be a purple it does not have.
func TestInfoDominantColour(t *testing.T) {
	s := newTestServer(t, nil)
	img := image.NewRGBA(image.Rect(0, 0, 200, 150))
	for y := 0; y < 150; y++ {
		for x := 0; x < 200; x++ {
			c := color.RGBA{210, 25, 35, 255}
			if x > 150 || (y > 100 && x < 40) {
				c = color.RGBA{25, 40, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	for name, body := range map[string][]byte{"PNG": encodePNG(t, img), "JPEG": testJPEGOf(t, img)} {
		info := postInfo(t, s, body, nil)
		c := hexColour(t, info.DominantColor)
		if d := max(abs(c[0]-210), abs(c[1]-25), abs(c[2]-35)); d > 6 {
			t.Errorf("%s: dominant colour %s, want about d21923 (red)", name, *info.DominantColor)
		}
	}
}

func abs(v int) int { return max(v, -v) }

// The body is taken as /resize takes it: a form's field "file" too.
func TestInfoMultipart(t *testing.T) {
	s := newTestServer(t, nil)
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	fw, _ := mw.CreateFormFile("file", "photo.jpg")
	fw.Write(testJPEG(t, 64, 32))
	mw.Close()
	info := postInfo(t, s, b.Bytes(), http.Header{"Content-Type": {mw.FormDataContentType()}})
	if info.Width != 64 || info.Height != 32 || info.Format != api.ImageInfoFormatJpeg {
		t.Fatalf("got %+v", info)
	}
}

// Bad input gets the statuses /resize gives it, and a parameter is
// refused: the route has none. (The API key is checked for every keyed
// route of openapi.yaml by TestEveryKeyedRouteRefusesMissingAndWrongKeys.)
func TestInfoErrors(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes = 1 << 20 })
	photo := testdata(t, "ladybird.jpg")
	small := testJPEG(t, 40, 30)
	tests := []struct {
		name   string
		query  string
		body   []byte
		status int
		slug   string
	}{
		{"empty body", "", nil, 400, "bad-request"},
		{"a parameter", "?width=10", small, 400, "bad-request"},
		{"malformed query", "?%zz", small, 400, "bad-request"},
		{"text named .jpg", "", []byte("just some text in a file named photo.jpg"), 415, "unsupported-format"},
		{"truncated jpeg", "", photo[:len(photo)/3], 422, "undecodable"},
		{"pixel flood", "", testdata(t, "flood.png"), 413, "too-large"},
		{"body over the limit", "", bytes.Repeat([]byte{0xFF}, 1<<20+1), 413, "too-large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := s.do(t, "POST", "/info"+tt.query, tt.body, nil)
			var p api.Problem
			if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != tt.status || p.Type != "urn:resizer:problem:"+tt.slug {
				t.Fatalf("status %d, want %d %s: %s", resp.StatusCode, tt.status, tt.slug, body)
			}
		})
	}
}

// Every file of the hostile corpus gets from /info the status /resize
// gives it when asked for a still (animated=false): /info decodes one
// frame, so the limits of animations that stay animated (MAX_FRAMES: the
// corpus's 413 for thousands of frames) are not its; and nothing is a 500.
func TestInfoHostileCorpus(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(hostileDir, "[0-9][0-9][0-9]-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no hostile corpus: %v", err)
	}
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.MaxBodyBytes = 8 << 20 })
	for _, f := range files {
		name := filepath.Base(f)
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := s.do(t, "POST", "/resize?width=100&animated=false", body, nil)
		if resp, out := s.do(t, "POST", "/info", body, nil); resp.StatusCode != want.StatusCode {
			t.Errorf("%s: status %d, /resize's %d: %.200s", name, resp.StatusCode, want.StatusCode, out)
		}
	}
	if strings.Contains(s.logs.String(), `"status":500`) {
		t.Error("a 500 in the log")
	}
}
