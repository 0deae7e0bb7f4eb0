package imageproc

import (
	"fmt"
	"math"

	"github.com/h2non/bimg"
)

// source is what plan needs to know of an input: its size as stored, its
// EXIF orientation, whether it has alpha, and its format.
type source struct {
	width, height int
	orientation   int
	alpha         bool
	format        Format
}

// upright returns the size of the source once its orientation is applied.
func (s source) upright() (w, h int) {
	if s.orientation >= 5 && s.orientation <= 8 {
		return s.height, s.width
	}
	return s.width, s.height
}

// resizePlan is one or two bimg calls, each taking the previous output, and
// the format the last one writes.
type resizePlan struct {
	passes []bimg.Options
	format Format
}

// Default qualities: visually transparent for photographs at web sizes;
// AVIF reaches the same look at a lower number.
var defaultQuality = map[Format]int{FormatJPEG: 80, FormatWebP: 80, FormatAVIF: 60}

// avifSpeed is bimg's AVIF speed (libvips effort 9-speed). bimg otherwise
// passes 0, the slowest effort, which takes seconds per image.
const avifSpeed = 8

var bimgTypes = map[Format]bimg.ImageType{
	FormatJPEG: bimg.JPEG, FormatPNG: bimg.PNG, FormatWebP: bimg.WEBP,
	FormatAVIF: bimg.AVIF, FormatGIF: bimg.GIF, FormatTIFF: bimg.TIFF,
}

var bimgGravity = map[Gravity]bimg.Gravity{
	GravityCenter: bimg.GravityCentre, GravityNorth: bimg.GravityNorth,
	GravitySouth: bimg.GravitySouth, GravityEast: bimg.GravityEast,
	GravityWest: bimg.GravityWest, GravitySmart: bimg.GravitySmart,
}

// OutputFormatFor returns the format written for input format in when the
// caller keeps the original: the same where the service can write it, else
// PNG for images with alpha and JPEG for the rest (HEIF, TIFF, SVG, PDF).
func OutputFormatFor(in Format, alpha bool) Format {
	switch {
	case in == FormatJPEG, in == FormatPNG, in == FormatWebP, in == FormatAVIF, in == FormatGIF:
		return in
	case alpha:
		return FormatPNG
	}
	return FormatJPEG
}

// plan works out the output geometry itself and drives bimg with exact
// sizes, so that every fit mode and the enlarge rule mean the same thing
// whatever bimg's own defaults are. bimg is always told it may enlarge:
// plan has already applied the service's rule.
func plan(src source, o Options, maxDimension int) (resizePlan, error) {
	bo, out, err := planUpright(src, o, maxDimension)
	if err != nil {
		return resizePlan{}, err
	}
	if src.orientation < 2 || src.orientation > 8 {
		return resizePlan{passes: []bimg.Options{bo}, format: out}, nil
	}
	return resizePlan{passes: rotateLast(bo, src.orientation), format: out}, nil
}

// rotateLast turns the plan for an upright image into two passes for an
// image stored sideways or mirrored. bimg would rotate the full-size image
// first (and, for a JPEG, re-encode it at quality 100 to keep
// shrink-on-load, about nine times the cost of a plain resize of a 20 MP
// photo; for a WebP it would lose the rotation when it reloads to shrink).
// Instead the first pass resizes the image as stored (the box turned to
// match, gravity mapped) into an uncompressed TIFF, and the second turns
// that small image upright and encodes it.
func rotateLast(bo bimg.Options, orientation int) []bimg.Options {
	first := bo
	first.NoAutoRotate = true
	first.Type = bimg.TIFF // uncompressed: lossless, and copied rather than coded
	if orientation >= 5 {
		first.Width, first.Height = bo.Height, bo.Width
	}
	first.Gravity = storedGravity(bo.Gravity, orientation)
	t := orientations[orientation]
	second := bimg.Options{
		NoAutoRotate:  true,
		Rotate:        t.rotate,
		Flip:          t.mirror,
		Type:          bo.Type,
		Quality:       bo.Quality,
		StripMetadata: true,
		Speed:         bo.Speed,
	}
	return []bimg.Options{first, second}
}

// orientations: how each EXIF orientation is made upright (a clockwise
// rotation, then a left-right mirror, as bimg applies them), and where each
// upright direction lies in the stored image.
var orientations = map[int]struct {
	rotate bimg.Angle
	mirror bool
	// stored maps an upright unit vector (x right, y down) to the stored
	// image's.
	stored func(x, y int) (int, int)
}{
	2: {bimg.D0, true, func(x, y int) (int, int) { return -x, y }},
	3: {bimg.D180, false, func(x, y int) (int, int) { return -x, -y }},
	4: {bimg.D180, true, func(x, y int) (int, int) { return x, -y }},
	5: {bimg.D90, true, func(x, y int) (int, int) { return y, x }},
	6: {bimg.D90, false, func(x, y int) (int, int) { return y, -x }},
	7: {bimg.D270, true, func(x, y int) (int, int) { return -y, -x }},
	8: {bimg.D270, false, func(x, y int) (int, int) { return -y, x }},
}

var gravityVectors = map[bimg.Gravity][2]int{
	bimg.GravityNorth: {0, -1}, bimg.GravitySouth: {0, 1},
	bimg.GravityEast: {1, 0}, bimg.GravityWest: {-1, 0},
}

// storedGravity returns the edge of the stored image that becomes edge g
// once the image is upright. Centre and smart do not depend on orientation.
func storedGravity(g bimg.Gravity, orientation int) bimg.Gravity {
	v, ok := gravityVectors[g]
	if !ok {
		return g
	}
	x, y := orientations[orientation].stored(v[0], v[1])
	for sg, sv := range gravityVectors {
		if sv == [2]int{x, y} {
			return sg
		}
	}
	return g
}

// planUpright plans a single bimg call as if the image were stored upright.
func planUpright(src source, o Options, maxDimension int) (bimg.Options, Format, error) {
	out := o.Format
	if out == FormatUnknown {
		out = OutputFormatFor(src.format, src.alpha)
	}
	bo := bimg.Options{
		Type:          bimgTypes[out],
		Quality:       o.Quality,
		StripMetadata: true,
		OutputICC:     "srgb", // libvips' built-in sRGB profile
		Enlarge:       true,
		Speed:         avifSpeed,
		// Orientation is the plan's business (rotateLast); bimg's own
		// lookup of the EXIF tag also leaks a C string per call.
		NoAutoRotate: true,
	}
	if bo.Quality == 0 {
		bo.Quality = defaultQuality[out]
	}
	hasAlpha := out != FormatJPEG
	switch {
	case o.Background != nil:
		bo.Background = bimg.Color{R: o.Background.R, G: o.Background.G, B: o.Background.B}
	case src.alpha && !hasAlpha:
		bo.Background = bimg.Color{R: white.R, G: white.G, B: white.B}
	case !src.alpha && o.Fit == FitContain:
		bo.Background = bimg.Color{R: white.R, G: white.G, B: white.B} // padding of an opaque image
	}

	uw, uh := src.upright()
	sw, sh := float64(uw), float64(uh)
	W, H := float64(o.Width), float64(o.Height)
	scale := func(s float64) float64 {
		if !o.Enlarge {
			return math.Min(s, 1)
		}
		return s
	}
	fit := o.Fit
	if o.Width == 0 || o.Height == 0 {
		fit = FitInside // one side free: every mode keeps the aspect ratio
	}
	var w, h int
	switch {
	case o.Width == 0 && o.Height == 0:
		w, h = uw, uh
	case fit == FitInside, fit == FitContain:
		s := math.Inf(1)
		if o.Width > 0 {
			s = W / sw
		}
		if o.Height > 0 {
			s = math.Min(s, H/sh)
		}
		if fit == FitContain && (s < 1 || o.Enlarge) {
			// Scale into the box and pad to it. An image already inside
			// the box is, without enlarge, neither enlarged nor padded.
			w, h = o.Width, o.Height
			bo.Width, bo.Height, bo.Embed, bo.Extend = w, h, true, bimg.ExtendBackground
			break
		}
		s = scale(s)
		w, h = roundSide(sw*s), roundSide(sh*s)
		bo.Width, bo.Height, bo.Force = w, h, true
	case fit == FitCover:
		s := scale(math.Max(W/sw, H/sh))
		w, h = min(o.Width, roundSide(sw*s)), min(o.Height, roundSide(sh*s))
		bo.Width, bo.Height, bo.Crop, bo.Gravity = w, h, true, bimgGravity[o.Gravity]
	case fit == FitFill:
		w, h = o.Width, o.Height
		if !o.Enlarge {
			w, h = min(w, uw), min(h, uh)
		}
		bo.Width, bo.Height, bo.Force = w, h, true
	}
	if (w > uw || h > uh) && (w > maxDimension || h > maxDimension) {
		return bo, out, fmt.Errorf("%w: output %dx%d is over the limit of %d pixels a side", ErrTooLarge, w, h, maxDimension)
	}
	return bo, out, nil
}

func roundSide(f float64) int { return max(1, int(math.Round(f))) }
