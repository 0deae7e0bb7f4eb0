package imageproc

import (
	"encoding/base64"
	"image"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
)

// testPixels draws w x h RGBA pixels from f, which may add noise (0..40,
// from a fixed generator, each call its own) to each channel: a DCT term
// that is exactly zero (a symmetric or separable picture makes some) sits
// on a rounding boundary, where the last bit of a cosine decides the
// nibble and two correct encoders may differ.
func testPixels(w, h int, f func(x, y int, noise func() int) [4]int) []byte {
	seed := uint32(1)
	noise := func() int {
		seed = seed*1664525 + 1013904223
		return int(seed>>24) % 41
	}
	px := make([]byte, 4*w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := f(x, y, noise)
			for i := range c {
				px[4*(y*w+x)+i] = byte(min(max(c[i], 0), 255))
			}
		}
	}
	return px
}

// nrgba wraps pixels as an image, for the helpers that take one.
func nrgba(w, h int, px []byte) *image.NRGBA {
	return &image.NRGBA{Pix: px, Stride: 4 * w, Rect: image.Rect(0, 0, w, h)}
}

// thumbHashCases are pictures of each shape the format distinguishes:
// landscape and portrait, opaque and with alpha.
var thumbHashCases = []struct {
	name string
	w, h int
	f    func(x, y int, n func() int) [4]int
	// want is the reference implementation's hash of the same pixels
	// (rgbaToThumbHash of evanw's thumbhash 0.1.1 on npm), run once.
	want string
}{
	{"landscape gradient", 32, 24, func(x, y int, n func() int) [4]int { return [4]int{x*6 + n(), y*9 + n(), 100 + n(), 255} },
		"3ecJLZaBd3dwd3eId3d4d3GAF/d3"},
	{"portrait stripes", 18, 32, func(x, y int, n func() int) [4]int {
		if (y/4)%2 == 0 {
			return [4]int{210 + n(), 170 + n(), 20 + n(), 255}
		}
		return [4]int{20 + n(), 60 + n(), 100 + x*6 + n(), 255}
	}, "3/gFJAJz13iHd42H+Hh8f4j3hw=="},
	{"disc on transparency", 32, 32, func(x, y int, n func() int) [4]int {
		if dx, dy := x-12, y-18; dx*dx+dy*dy < 100 {
			return [4]int{200 + n(), x*6 + n(), 40 + n(), 255}
		}
		return [4]int{n(), n(), n(), 0}
	}, "3vqCBQIkAO6XaciMhgCX93+GHHR0iVCreA=="},
	{"alpha ramp", 24, 30, func(x, y int, n func() int) [4]int { return [4]int{40 + n(), 90 + n(), 200 + n(), y*8 + n()} },
		"4JOBBAA4+0RXu1inClDH/xaIeAeHh3eHBw=="},
}

// The encoder writes, byte for byte, what the format's reference
// implementation writes for the same pixels.
func TestThumbHashMatchesReference(t *testing.T) {
	for _, tt := range thumbHashCases {
		t.Run(tt.name, func(t *testing.T) {
			got := base64.StdEncoding.EncodeToString(thumbHash(tt.w, tt.h, testPixels(tt.w, tt.h, tt.f)))
			if got != tt.want {
				t.Errorf("thumbhash %s, reference %s", got, tt.want)
			}
		})
	}
}

// A hash decodes to a placeholder with the picture's mean colour and
// aspect ratio, for the extreme shapes too (one pixel; one row).
func TestThumbHashRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		w, h int
		f    func(x, y int, n func() int) [4]int
	}{
		{"one pixel", 1, 1, func(x, y int, n func() int) [4]int { return [4]int{200, 30, 90, 255} }},
		{"one row", 32, 1, func(x, y int, n func() int) [4]int { return [4]int{x * 8, 100, 50 + n(), 255} }},
		{"one column", 1, 32, func(x, y int, n func() int) [4]int { return [4]int{100, y * 8, 50 + n(), 255} }},
		{"wide", 32, 9, func(x, y int, n func() int) [4]int { return [4]int{x * 8, 200 - y*20, 90 + n(), 255} }},
		{"flat grey", 20, 20, func(x, y int, n func() int) [4]int { return [4]int{128, 128, 128, 255} }},
		{"half transparent", 24, 32, func(x, y int, n func() int) [4]int { return [4]int{30 + n(), 160, 220, 128} }},
		{"all transparent", 16, 16, func(x, y int, n func() int) [4]int { return [4]int{n(), n(), n(), 0} }},
	}
	for _, tt := range thumbHashCases {
		cases = append(cases, struct {
			name string
			w, h int
			f    func(x, y int, n func() int) [4]int
		}{tt.name, tt.w, tt.h, tt.f})
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			px := testPixels(tt.w, tt.h, tt.f)
			alpha := false
			for i := 3; i < len(px); i += 4 {
				alpha = alpha || px[i] < 255
			}
			hash := thumbHash(tt.w, tt.h, px)
			if len(hash) > 32 {
				t.Errorf("%d bytes", len(hash))
			}
			imagetest.CheckThumbHash(t, hash, tt.w, tt.h, alpha, imagetest.MeanColour(nrgba(tt.w, tt.h, px)), 8)
		})
	}
}
