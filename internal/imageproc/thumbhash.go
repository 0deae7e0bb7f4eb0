package imageproc

import "math"

// ThumbHash (Evan Wallace's placeholder format, evanw/thumbhash) describes
// a tiny version of an image in about 25 bytes that a client turns back
// into a blurred picture, its aspect ratio and alpha included. The Go
// implementations on the module proxy were not fit to depend on (one-person
// ports, unmaintained for years, one premultiplying alpha twice), so this
// is an encoder written from the format's description:
//
//   - the pixels are composited over their own alpha-weighted mean colour,
//     so that transparent pixels do not pull the colour towards black;
//   - each pixel becomes L (luminance, (r+g+b)/3), P (yellow against blue,
//     (r+g)/2-b), Q (red against green, r-g) and A (alpha);
//   - each channel is transformed with a DCT, keeping the low frequencies
//     in a triangle (cx*ny < nx*(ny-cy)): L up to 7 a side (5 with alpha,
//     scaled along the shorter side by the aspect ratio, at least 3), P and
//     Q 3x3, A 5x5;
//   - the DC terms and each channel's largest AC magnitude go in a header,
//     and every AC term, divided by that magnitude, in one nibble.
//
// The layout, little-endian: 24 bits of L DC (6), P DC (6), Q DC (6), L
// scale (5) and has-alpha (1); 16 bits of the L count of the shorter side
// (3), P scale (6), Q scale (6) and is-landscape (1); with alpha a byte of
// A DC (4) and A scale (4); then the AC nibbles of L, P, Q and A, low
// nibble first.

// thumbHash encodes w x h pixels of 8-bit RGBA, not premultiplied, rows
// from the top. The format is meant for sides of at most 100 pixels (more
// cost time and add nothing the terms can hold); Info's are 32 at most.
func thumbHash(w, h int, rgba []byte) []byte {
	n := w * h
	// The mean colour, each pixel weighted by its alpha.
	var mean [3]float64
	var opacity float64 // the sum of the alphas, 0..n
	for i := 0; i < n; i++ {
		a := float64(rgba[4*i+3]) / 255
		for c := range mean {
			mean[c] += a * float64(rgba[4*i+c]) / 255
		}
		opacity += a
	}
	if opacity > 0 {
		for c := range mean {
			mean[c] /= opacity
		}
	}
	alpha := opacity < float64(n)

	l, p, q, a := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		a[i] = float64(rgba[4*i+3]) / 255
		var rgb [3]float64
		for c := range rgb {
			rgb[c] = (1-a[i])*mean[c] + a[i]*float64(rgba[4*i+c])/255
		}
		l[i] = (rgb[0] + rgb[1] + rgb[2]) / 3
		p[i] = (rgb[0]+rgb[1])/2 - rgb[2]
		q[i] = rgb[0] - rgb[1]
	}

	// The number of L terms along each side, for the aspect ratio.
	most := 7.0
	if alpha {
		most = 5
	}
	long := float64(max(w, h))
	lx := max(1, int(math.Round(most*float64(w)/long)))
	ly := max(1, int(math.Round(most*float64(h)/long)))

	lc := dctTerms(l, w, h, max(lx, 3), max(ly, 3))
	pc := dctTerms(p, w, h, 3, 3)
	qc := dctTerms(q, w, h, 3, 3)

	landscape := w > h
	short := lx
	if landscape {
		short = ly
	}
	h24 := quantise(lc.dc, 63) | quantise(0.5+0.5*pc.dc, 63)<<6 | quantise(0.5+0.5*qc.dc, 63)<<12 |
		quantise(lc.scale, 31)<<18 | bit(alpha)<<23
	h16 := uint32(short) | quantise(pc.scale, 63)<<3 | quantise(qc.scale, 63)<<9 | bit(landscape)<<15
	out := []byte{byte(h24), byte(h24 >> 8), byte(h24 >> 16), byte(h16), byte(h16 >> 8)}
	channels := []dct{lc, pc, qc}
	if alpha {
		ac := dctTerms(a, w, h, 5, 5)
		out = append(out, byte(quantise(ac.dc, 15)|quantise(ac.scale, 15)<<4))
		channels = append(channels, ac)
	}
	k := 0 // nibbles written
	for _, ch := range channels {
		for _, f := range ch.ac {
			v := byte(quantise(f, 15))
			if k%2 == 0 {
				out = append(out, v)
			} else {
				out[len(out)-1] |= v << 4
			}
			k++
		}
	}
	return out
}

// dct is one channel's low frequencies: the DC term, and the AC terms
// divided by the largest of their magnitudes (scale) and moved to 0..1.
type dct struct {
	dc    float64
	ac    []float64
	scale float64
}

// dctTerms transforms a w x h channel, keeping the terms (cx, cy) with
// cx*ny < nx*(ny-cy), in rows of cy. A term of a frequency the samples
// cannot hold (cx >= w or cy >= h: an image one pixel high has no vertical
// detail) is zero. The reference encoder computes it all the same, and for
// a side under 7 pixels gets an alias as strong as the DC term, which
// turns the placeholder of a one-pixel image into stripes. For sides of 7
// pixels and more the two agree.
func dctTerms(ch []float64, w, h, nx, ny int) dct {
	var d dct
	cosX := make([]float64, w)
	for cy := 0; cy < ny; cy++ {
		for cx := 0; cx*ny < nx*(ny-cy); cx++ {
			f := 0.0
			if cx < w && cy < h {
				for x := range cosX {
					cosX[x] = math.Cos(math.Pi / float64(w) * float64(cx) * (float64(x) + 0.5))
				}
				for y := 0; y < h; y++ {
					cosY := math.Cos(math.Pi / float64(h) * float64(cy) * (float64(y) + 0.5))
					for x, v := range ch[y*w : (y+1)*w] {
						f += v * cosX[x] * cosY
					}
				}
				f /= float64(w * h)
			}
			if cx == 0 && cy == 0 {
				d.dc = f
				continue
			}
			d.ac = append(d.ac, f)
			d.scale = math.Max(d.scale, math.Abs(f))
		}
	}
	if d.scale > 0 {
		for i, f := range d.ac {
			d.ac[i] = 0.5 + 0.5*f/d.scale
		}
	}
	return d
}

// quantise rounds v, a value in 0..1, to an integer in 0..top.
func quantise(v float64, top int) uint32 {
	return uint32(min(max(math.Round(v*float64(top)), 0), float64(top)))
}

func bit(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}
