package imagetest

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"testing"
)

// DecodeThumbHash renders a ThumbHash as a client would, at 32 pixels on
// its longer side, so that tests can compare the placeholder with the
// image it stands for. It is written from the format's description,
// independently of the service's encoder: the header's DC terms and
// scales, the L, P, Q (and A) AC terms a nibble each, summed over the DCT
// basis at each pixel, with P and Q boosted by 1.25 as the format's own
// decoder does to make up for quantisation.
func DecodeThumbHash(hash []byte) (*image.NRGBA, error) {
	if len(hash) < 5 {
		return nil, fmt.Errorf("thumbhash of %d bytes: shorter than its header", len(hash))
	}
	h24 := uint32(hash[0]) | uint32(hash[1])<<8 | uint32(hash[2])<<16
	h16 := uint32(hash[3]) | uint32(hash[4])<<8
	alpha := h24>>23 != 0
	lDC := float64(h24&63) / 63
	pDC := float64(h24>>6&63)/31.5 - 1
	qDC := float64(h24>>12&63)/31.5 - 1
	lScale := float64(h24>>18&31) / 31
	pScale := float64(h16>>3&63) / 63
	qScale := float64(h16>>9&63) / 63
	lx, ly := ThumbHashTerms(hash)
	aDC, aScale := 1.0, 0.0
	start := 5
	if alpha {
		if len(hash) < 6 {
			return nil, fmt.Errorf("thumbhash with alpha of %d bytes", len(hash))
		}
		aDC, aScale = float64(hash[5]&15)/15, float64(hash[5]>>4)/15
		start = 6
	}

	// The AC terms, in the order they were written.
	k := 0
	var short bool
	terms := func(nx, ny int, scale float64) [][3]float64 { // cx, cy, value
		var ts [][3]float64
		for cy := 0; cy < ny; cy++ {
			for cx := 0; cx*ny < nx*(ny-cy); cx++ {
				if cx == 0 && cy == 0 {
					continue
				}
				i := start + k/2
				if i >= len(hash) {
					short = true
					return ts
				}
				nib := hash[i] >> (4 * (k % 2)) & 15
				k++
				ts = append(ts, [3]float64{float64(cx), float64(cy), (float64(nib)/7.5 - 1) * scale})
			}
		}
		return ts
	}
	lAC := terms(max(lx, 3), max(ly, 3), lScale)
	pAC := terms(3, 3, pScale*1.25)
	qAC := terms(3, 3, qScale*1.25)
	var aAC [][3]float64
	if alpha {
		aAC = terms(5, 5, aScale)
	}
	if short {
		return nil, fmt.Errorf("thumbhash of %d bytes: shorter than its terms", len(hash))
	}

	ratio := float64(lx) / float64(ly)
	w, h := 32, 32
	if ratio > 1 {
		h = int(math.Round(32 / ratio))
	} else {
		w = int(math.Round(32 * ratio))
	}
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			at := func(dc float64, ts [][3]float64) float64 {
				v := dc
				for _, t := range ts {
					v += t[2] * 2 * math.Cos(math.Pi/float64(w)*(float64(x)+0.5)*t[0]) * math.Cos(math.Pi/float64(h)*(float64(y)+0.5)*t[1])
				}
				return v
			}
			l, p, q, a := at(lDC, lAC), at(pDC, pAC), at(qDC, qAC), at(aDC, aAC)
			b := l - 2.0/3*p
			r := (3*l - b + q) / 2
			g := r - q
			img.SetNRGBA(x, y, color.NRGBA{unit(r), unit(g), unit(b), unit(a)})
		}
	}
	return img, nil
}

// ThumbHashTerms returns the number of L terms along the width and the
// height that a ThumbHash holds, whose ratio is the aspect ratio it
// records.
func ThumbHashTerms(hash []byte) (lx, ly int) {
	alpha := hash[2]&0x80 != 0
	landscape := hash[4]&0x80 != 0
	long := 7
	if alpha {
		long = 5
	}
	short := int(hash[3] & 7)
	if landscape {
		return long, short
	}
	return short, long
}

func unit(v float64) uint8 { return uint8(math.Round(255 * min(max(v, 0), 1))) }

// MeanColour is the mean colour of img, each pixel weighted by its alpha
// (a ThumbHash composites transparent pixels over that colour), 0..255.
func MeanColour(img image.Image) [3]float64 {
	var sum [3]float64
	var weight float64
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			a := float64(c.A) / 255
			sum[0] += a * float64(c.R)
			sum[1] += a * float64(c.G)
			sum[2] += a * float64(c.B)
			weight += a
		}
	}
	if weight > 0 {
		for i := range sum {
			sum[i] /= weight
		}
	}
	return sum
}

// CheckThumbHash checks that hash stands for an image whose upright size
// is w x h and whose alpha-weighted mean colour is mean: the placeholder it
// decodes to has a mean colour within tol of mean in each channel, says
// whether there is transparency as alpha does, and has the aspect ratio of
// w x h to the precision the format keeps (the number of L terms along the
// shorter side is 7, or 5 with alpha, times short/long, rounded, and at
// least 1; the small decode the hash is made from rounds its sides too).
func CheckThumbHash(t testing.TB, hash []byte, w, h int, alpha bool, mean [3]float64, tol float64) {
	t.Helper()
	img, err := DecodeThumbHash(hash)
	if err != nil {
		t.Fatal(err)
	}
	if got := hash[2]&0x80 != 0; got != alpha {
		t.Errorf("thumbhash says alpha %v, want %v", got, alpha)
	}
	lx, ly := ThumbHashTerms(hash)
	most := 7.0
	if alpha {
		most = 5
	}
	wantX := math.Max(1, most*float64(w)/float64(max(w, h)))
	wantY := math.Max(1, most*float64(h)/float64(max(w, h)))
	if math.Abs(float64(lx)-wantX) > 0.65 || math.Abs(float64(ly)-wantY) > 0.65 {
		t.Errorf("thumbhash of %d x %d L terms (aspect %.2f), want about %.1f x %.1f for %dx%d (aspect %.2f)",
			lx, ly, float64(lx)/float64(ly), wantX, wantY, w, h, float64(w)/float64(h))
	}
	var got [3]float64
	n := float64(img.Rect.Dx() * img.Rect.Dy())
	for i := 0; i < len(img.Pix); i += 4 {
		for c := range got {
			got[c] += float64(img.Pix[i+c]) / n
		}
	}
	for c := range got {
		if math.Abs(got[c]-mean[c]) > tol {
			t.Errorf("thumbhash's mean colour %.0f, want %.0f within %.0f", got, mean, tol)
			break
		}
	}
}
