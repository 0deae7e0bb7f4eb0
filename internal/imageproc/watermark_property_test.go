package imageproc

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
)

// twoTone is a w x h opaque watermark whose left half is red and right
// half blue: a watermark turned or mirrored shows it.
func twoTone(w, h int) *image.NRGBA {
	img := solid(w, h, opaqueRed)
	for y := range h {
		for x := w / 2; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{0, 0, 255, 255})
		}
	}
	return img
}

// markWhere is where docs/api.md puts a watermark of mw x mh over an
// output of W x H (padding included), written from the documentation
// alone: watermark_scale of the output's width, its height following (its
// own size without a scale), made smaller, aspect kept, to fit the output
// less its margins; against the edges its position names, the margin
// away, centred along the others. ok is false when the margin leaves no
// room, where the documentation says only that the margin shrinks.
func markWhere(W, H, mw, mh int, wm Watermark) (x, y, w, h float64, ok bool) {
	m := float64(wm.Margin)
	roomW, roomH := float64(W)-2*m, float64(H)-2*m
	if roomW < 1 || roomH < 1 {
		return 0, 0, 0, 0, false
	}
	w, h = float64(mw), float64(mh)
	if wm.Scale > 0 {
		w, h = wm.Scale*float64(W), wm.Scale*float64(W)*float64(mh)/float64(mw)
	}
	if f := math.Min(roomW/w, roomH/h); f < 1 {
		w, h = w*f, h*f
	}
	w, h = math.Max(w, 1), math.Max(h, 1)
	x, y = (float64(W)-w)/2, (float64(H)-h)/2
	switch wm.Position {
	case GravityWest, GravityNorthWest, GravitySouthWest:
		x = m
	case GravityEast, GravityNorthEast, GravitySouthEast:
		x = float64(W) - w - m
	}
	switch wm.Position {
	case GravityNorth, GravityNorthWest, GravityNorthEast:
		y = m
	case GravitySouth, GravitySouthWest, GravitySouthEast:
		y = float64(H) - h - m
	}
	return x, y, w, h, true
}

// markPixels finds the watermark in img, whose own pixels are grey or
// transparent: the box of the pixels in colour, and the mean x of its red
// and of its blue ones.
func markPixels(img image.Image) (box rect, redX, blueX float64) {
	b := img.Bounds()
	x0, y0, x1, y1 := b.Dx(), b.Dy(), -1, -1
	var nr, nb int
	for y := range b.Dy() {
		for x := range b.Dx() {
			c := rgbAt(img, x, y)
			hi, lo := max(c[0], c[1], c[2]), min(c[0], c[1], c[2])
			if c[3] < 128 || hi-lo < 60 {
				continue
			}
			x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			switch {
			case c[0] > 160 && c[2] < 96:
				redX += float64(x)
				nr++
			case c[2] > 160 && c[0] < 96:
				blueX += float64(x)
				nb++
			}
		}
	}
	if x1 < 0 {
		return rect{}, 0, 0
	}
	return rect{x0, y0, x1 - x0 + 1, y1 - y0 + 1}, redX / float64(max(nr, 1)), blueX / float64(max(nb, 1))
}

// Random watermarks (every position, scales from 0.01 to 1, margins that
// fit and margins too large) over outputs of random fits, boxes, rotations,
// flips, pads and dprs, stills and every frame of animations: the
// watermark lies where the documentation puts it on the output as made
// (padding included, the margin not multiplied by dpr), at the size it
// says, within a pixel, and reads the right way round: rotate and flip
// turn the image, not the watermark put over it.
func TestWatermarkPlacementProperty(t *testing.T) {
	sizes := [][2]int{{2, 2}, {40, 20}, {14, 57}, {120, 30}, {6, 200}}
	files := map[string][]byte{}
	for _, s := range sizes {
		files[fmt.Sprintf("%dx%d.png", s[0], s[1])] = encodePNG(t, twoTone(s[0], s[1]))
	}
	p, _ := markProcessor(t, files, nil)
	seed := optionsSeed(t)
	r := rand.New(rand.NewPCG(seed, 17))
	n := 70
	if testing.Short() {
		n = 25
	}
	checked := 0
	for i := range n {
		sw, sh := 3+r.IntN(150), 3+r.IntN(150)
		animated := r.IntN(4) == 0
		var in []byte
		if animated {
			in = animatedGIF(t, 2+r.IntN(2), sw, sh, color.Palette{midGrey, color.RGBA{110, 110, 110, 255}}, []int{10})
		} else {
			in = encodePNG(t, solid(sw, sh, midGrey))
		}
		var o Options
		var w, h int
		for {
			o = randomOptions(r, sw, sh, []Format{FormatPNG})
			o.Crop, o.Blur, o.Sharpen = nil, 0, 0
			if o.Gravity == GravitySmart {
				o.Gravity = GravityCenter
			}
			if animated {
				o.Format = FormatGIF
			}
			if r.IntN(2) == 0 {
				o.Background = &padGrey
			}
			w, h, _ = promisedSteps(sw, sh, o)
			if w*h <= 400_000 {
				break
			}
		}
		s := sizes[r.IntN(len(sizes))]
		wm := Watermark{Key: fmt.Sprintf("%dx%d.png", s[0], s[1]), Position: Gravity(r.IntN(11)), Opacity: 1}
		if wm.Position == GravitySmart || wm.Position == GravityFocus {
			wm.Position = GravityNorthEast
		}
		if r.IntN(3) > 0 {
			wm.Scale = []float64{0.01, 0.1, 0.33, 0.5, 1, 0.01 + 0.99*r.Float64()}[r.IntN(6)]
		}
		switch r.IntN(4) {
		case 0, 1:
			wm.Margin = r.IntN(12)
		case 2:
			wm.Margin = r.IntN(max(w, h)) // often none left
		}
		o.Watermark = &wm
		what := fmt.Sprintf("seed %d #%d: %dx%d, animated %v, %s", seed, i, sw, sh, animated, o.Canonical())
		res, err := p.Process(t.Context(), in, o)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if res.Width != w || res.Height != h {
			t.Errorf("%s: made %dx%d, promised %dx%d", what, res.Width, res.Height, w, h)
			continue
		}
		var screens []image.Image
		if animated {
			for _, sc := range gifScreens(t, res.Data) {
				screens = append(screens, sc)
			}
		} else {
			screens = []image.Image{decode(t, res.Data)}
		}
		x, y, mw, mh, roomy := markWhere(w, h, s[0], s[1], wm)
		for f, img := range screens {
			got, redX, blueX := markPixels(img)
			switch {
			case got.w == 0:
				t.Errorf("%s: frame %d: no watermark", what, f)
			case !roomy:
				// The margin shrank: the watermark lies inside the output.
				if got.x < 0 || got.y < 0 || got.x+got.w > w || got.y+got.h > h {
					t.Errorf("%s: frame %d: watermark at %+v, outside %dx%d", what, f, got, w, h)
				}
			case math.Abs(float64(got.x)-x) > 1 || math.Abs(float64(got.y)-y) > 1 ||
				math.Abs(float64(got.x+got.w)-(x+mw)) > 1 || math.Abs(float64(got.y+got.h)-(y+mh)) > 1:
				t.Errorf("%s: frame %d: watermark at %+v in %dx%d, want %.1f,%.1f,%.1f,%.1f", what, f, got, w, h, x, y, mw, mh)
			}
			if got.w >= 6 && redX >= blueX {
				t.Errorf("%s: frame %d: the watermark's red half lies right of its blue half (red at x=%.1f, blue at %.1f)",
					what, f, redX, blueX)
			}
		}
		checked++
	}
	t.Logf("%d outputs checked", checked)
}
