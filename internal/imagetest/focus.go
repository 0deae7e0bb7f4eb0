package imagetest

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // MarkerCentre reads GIF and JPEG outputs too
	_ "image/jpeg"
	"image/png"
	"testing"
)

// Images with a marker region, to see where a crop was made: a grey PNG
// with one red rectangle, and a way to find that red again in an output.

var (
	grey = color.RGBA{128, 128, 128, 255}
	red  = color.RGBA{255, 0, 0, 255}
)

// Marked returns a PNG of w x h grey pixels with the rectangle marker red.
// PNG keeps its format through a variant (format original) and loses
// nothing, so the red found in an output is where the crop put it.
func Marked(t testing.TB, w, h int, marker image.Rectangle) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(grey), image.Point{}, draw.Src)
	draw.Draw(img, marker, image.NewUniform(red), image.Point{}, draw.Src)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// MarkerCentre decodes an image (PNG, JPEG or GIF) and returns its size
// and the centre of the bounding box of its red pixels, ok false when it
// has none. Red is counted loosely, to survive resampling at the edges
// and lossy encoders.
func MarkerCentre(t testing.TB, data []byte) (size image.Point, x, y float64, ok bool) {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an image: %v", err)
	}
	b := img.Bounds()
	box := image.Rectangle{}
	for py := b.Min.Y; py < b.Max.Y; py++ {
		for px := b.Min.X; px < b.Max.X; px++ {
			r, g, bl, _ := img.At(px, py).RGBA()
			if r>>8 > 200 && g>>8 < 80 && bl>>8 < 80 {
				box = box.Union(image.Rect(px, py, px+1, py+1))
			}
		}
	}
	if box.Empty() {
		return b.Size(), 0, 0, false
	}
	return b.Size(), float64(box.Min.X+box.Max.X) / 2, float64(box.Min.Y+box.Max.Y) / 2, true
}
