package imageproc

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Fit says how an image is fitted into a box of the requested width and
// height when both are given.
type Fit int

// The fit modes.
const (
	// FitInside scales to fit inside the box, keeping the aspect ratio.
	FitInside Fit = iota
	// FitCover scales to cover the box, then crops to it at the gravity.
	FitCover
	// FitContain scales to fit inside the box, then pads to the box with the
	// background (transparent where the output format has alpha).
	FitContain
	// FitFill stretches to the box, ignoring the aspect ratio.
	FitFill
)

// Gravity says which part of the image a cover crop keeps, and where a
// watermark goes.
type Gravity int

// The gravities.
const (
	GravityCenter Gravity = iota
	GravityNorth
	GravitySouth
	GravityEast
	GravityWest
	// GravitySmart keeps the most interesting region (libvips' attention
	// strategy: edges, skin tones and saturated colour).
	GravitySmart
	GravityNorthEast
	GravityNorthWest
	GravitySouthEast
	GravitySouthWest
	// GravityFocus keeps the focal point Options.Focus as near the centre
	// as the image allows.
	GravityFocus
)

// Flip mirrors an image.
type Flip int

// The flips.
const (
	FlipNone Flip = iota
	FlipHorizontal
	FlipVertical
	FlipBoth
)

// Keep says which metadata an output keeps.
type Keep int

// What may be kept.
const (
	// KeepNone removes everything, the colour profile included, once the
	// pixels are in sRGB.
	KeepNone Keep = iota
	// KeepCopyright keeps the EXIF Copyright and Artist, nothing else.
	KeepCopyright
	// KeepICC keeps a source's colour profile (a wide gamut such as Display
	// P3) instead of converting the pixels to sRGB.
	KeepICC
)

var (
	fitNames     = []string{"inside", "cover", "contain", "fill"}
	gravityNames = []string{"center", "north", "south", "east", "west", "smart",
		"northeast", "northwest", "southeast", "southwest", "focus"}
	flipNames = []string{"none", "horizontal", "vertical", "both"}
	keepNames = []string{"none", "copyright", "icc"}
)

func (f Fit) String() string     { return nameOf(fitNames, int(f)) }
func (g Gravity) String() string { return nameOf(gravityNames, int(g)) }
func (f Flip) String() string    { return nameOf(flipNames, int(f)) }
func (k Keep) String() string    { return nameOf(keepNames, int(k)) }

func nameOf(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return "unknown"
	}
	return names[i]
}

// Color is an opaque sRGB colour.
type Color struct{ R, G, B uint8 }

func (c Color) String() string { return fmt.Sprintf("%02x%02x%02x", c.R, c.G, c.B) }

var white = Color{255, 255, 255}

// Region is a rectangle of an image, in pixels.
type Region struct{ X, Y, W, H int }

// Point is a place in an image, as fractions 0..1 of its width and height.
type Point struct{ X, Y float64 }

// Watermark is an image put over the output.
type Watermark struct {
	// Key names the image, under the watermark prefix of the store.
	Key string
	// Position is where it goes (any gravity but smart and focus).
	Position Gravity
	// Opacity 0..1 (default 1) multiplies its own transparency.
	Opacity float64
	// Scale is its width as a fraction of the output's (0: its own size).
	Scale float64
	// Margin is its distance from the edges it is placed against, in
	// output pixels.
	Margin int
}

// Options are what a caller asks of one output. The zero value keeps the
// image's size and format and only re-encodes it (upright, in sRGB,
// without metadata).
//
// The steps run in this order: orient, trim, crop, resize (with focus or
// gravity), rotate and flip, blur and sharpen, pad, watermark, encode.
// Width and Height describe the resized image after any rotation; Pad adds
// around it; DPR multiplies width, height and pad.
type Options struct {
	// Width and Height of the box, in pixels; 0 leaves that side free, to
	// follow the aspect ratio.
	Width, Height int
	Fit           Fit
	Gravity       Gravity
	// Focus is the focal point of GravityFocus.
	Focus *Point `json:",omitempty"`
	// Enlarge allows scaling up. Without it an image smaller than the box
	// keeps its size.
	Enlarge bool
	// Format of the output; FormatUnknown keeps the input's (see
	// OutputFormatFor), or takes the first of Prefer that suits.
	Format Format
	// Prefer lists formats the caller takes, best first (an HTTP client's
	// Accept): with Format unknown, the output is the first that suits the
	// image (for an animated one, the first that can animate). It is not
	// a query option: the HTTP layer sets it for format=auto.
	Prefer []Format `json:",omitempty"`
	// Quality 1..100 for lossy formats; 0 takes the format's default.
	Quality int
	// Background fills padding and replaces transparency; nil means white
	// where the output cannot hold alpha, transparent where it can.
	Background *Color `json:",omitempty"`
	// Crop is a region of the upright source, cut before the resize.
	Crop *Region `json:",omitempty"`
	// Trim, when set, cuts away a uniform border (the colour of the top-left
	// pixel, within this threshold) before the crop and the resize; from an
	// animation that stays animated, the border all its frames have.
	Trim *float64 `json:",omitempty"`
	// Rotate turns the resized image clockwise by 90, 180 or 270 degrees
	// (after its EXIF orientation); Flip mirrors it.
	Rotate int
	Flip   Flip
	// Blur and Sharpen are Gaussian sigmas; 0 does neither.
	Blur, Sharpen float64
	// Pad adds top, right, bottom and left borders of the background.
	Pad [4]int
	// DPR (1..4; 0 is 1) multiplies width, height and pad.
	DPR float64
	// MaxBytes, when set, makes the output the highest quality that fits
	// in so many bytes.
	MaxBytes int
	Keep     Keep
	// Progressive writes a progressive JPEG or an interlaced PNG.
	Progressive bool
	// Still takes the first frame of an animated source.
	Still     bool
	Watermark *Watermark `json:",omitempty"`
}

// param is one query parameter: how it is read into Options and written
// back in canonical form (empty when it is not set).
type param struct {
	name string
	set  func(o *Options, v string, lim parseLimits) error
	get  func(o Options) string
}

// parseLimits bound the values of the options.
type parseLimits struct{ maxDimension int }

// params are the query parameters ParseOptions knows, in the order they are
// documented; Canonical writes them in this order.
var params = []param{
	{"width", func(o *Options, v string, l parseLimits) (err error) {
		o.Width, err = parseInt(v, 1, l.maxDimension)
		return
	},
		func(o Options) string { return intOrEmpty(o.Width) }},
	{"height", func(o *Options, v string, l parseLimits) (err error) {
		o.Height, err = parseInt(v, 1, l.maxDimension)
		return
	},
		func(o Options) string { return intOrEmpty(o.Height) }},
	{"fit", func(o *Options, v string, _ parseLimits) error { return parseEnum(v, fitNames, (*int)(&o.Fit)) },
		func(o Options) string { return enumOrEmpty(int(o.Fit), fitNames) }},
	{"gravity", func(o *Options, v string, _ parseLimits) error { return parseEnum(v, gravityNames, (*int)(&o.Gravity)) },
		func(o Options) string { return enumOrEmpty(int(o.Gravity), gravityNames) }},
	{"focus", func(o *Options, v string, _ parseLimits) error {
		f, err := parseFloats(v, 2, 0, 1)
		o.Focus = &Point{}
		if err == nil {
			o.Focus.X, o.Focus.Y = f[0], f[1]
		}
		return err
	}, func(o Options) string {
		if o.Focus == nil {
			return ""
		}
		return formatFloat(o.Focus.X) + "," + formatFloat(o.Focus.Y)
	}},
	{"enlarge", func(o *Options, v string, _ parseLimits) (err error) { o.Enlarge, err = parseBool(v); return },
		func(o Options) string { return boolOrEmpty(o.Enlarge) }},
	{"format", func(o *Options, v string, _ parseLimits) error { return o.setFormat(v) },
		func(o Options) string {
			if o.Format == FormatUnknown {
				return ""
			}
			return o.Format.String()
		}},
	{"quality", func(o *Options, v string, _ parseLimits) (err error) { o.Quality, err = parseInt(v, 1, 100); return },
		func(o Options) string { return intOrEmpty(o.Quality) }},
	{"background", func(o *Options, v string, _ parseLimits) error {
		c, err := parseColor(v)
		o.Background = &c
		return err
	}, func(o Options) string {
		if o.Background == nil {
			return ""
		}
		return o.Background.String()
	}},
	{"crop", func(o *Options, v string, l parseLimits) error {
		n, err := parseInts(v, 4, 0, math.MaxInt32)
		if err == nil && (n[2] == 0 || n[3] == 0) {
			err = fmt.Errorf("%q: width and height must be at least 1", v)
		}
		o.Crop = &Region{}
		if err == nil {
			*o.Crop = Region{n[0], n[1], n[2], n[3]}
		}
		return err
	}, func(o Options) string {
		if o.Crop == nil {
			return ""
		}
		return fmt.Sprintf("%d,%d,%d,%d", o.Crop.X, o.Crop.Y, o.Crop.W, o.Crop.H)
	}},
	{"trim", func(o *Options, v string, _ parseLimits) error {
		t, err := parseFloat(v, 0, 255)
		o.Trim = &t
		return err
	}, func(o Options) string {
		if o.Trim == nil {
			return ""
		}
		return formatFloat(*o.Trim)
	}},
	{"rotate", func(o *Options, v string, _ parseLimits) error {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 0 && n != 90 && n != 180 && n != 270) {
			return fmt.Errorf("%q is not one of 0, 90, 180, 270", v)
		}
		o.Rotate = n
		return nil
	}, func(o Options) string { return intOrEmpty(o.Rotate) }},
	{"flip", func(o *Options, v string, _ parseLimits) error { return parseEnum(v, flipNames, (*int)(&o.Flip)) },
		func(o Options) string { return enumOrEmpty(int(o.Flip), flipNames) }},
	{"blur", func(o *Options, v string, _ parseLimits) (err error) { o.Blur, err = parseFloat(v, 0.3, 100); return },
		func(o Options) string { return floatOrEmpty(o.Blur) }},
	{"sharpen", func(o *Options, v string, _ parseLimits) (err error) { o.Sharpen, err = parseFloat(v, 0.3, 10); return },
		func(o Options) string { return floatOrEmpty(o.Sharpen) }},
	{"pad", func(o *Options, v string, l parseLimits) error {
		n, err := parseInts(v, 4, 0, l.maxDimension)
		if err == nil {
			copy(o.Pad[:], n)
		}
		return err
	}, func(o Options) string {
		if o.Pad == [4]int{} {
			return ""
		}
		return fmt.Sprintf("%d,%d,%d,%d", o.Pad[0], o.Pad[1], o.Pad[2], o.Pad[3])
	}},
	{"dpr", func(o *Options, v string, _ parseLimits) (err error) {
		if o.DPR, err = parseFloat(v, 1, 4); o.DPR == 1 {
			o.DPR = 0 // one spelling of the default
		}
		return err
	},
		func(o Options) string {
			if o.DPR == 0 || o.DPR == 1 {
				return ""
			}
			return formatFloat(o.DPR)
		}},
	{"max_bytes", func(o *Options, v string, _ parseLimits) (err error) {
		o.MaxBytes, err = parseInt(v, 1, math.MaxInt32)
		return
	},
		func(o Options) string { return intOrEmpty(o.MaxBytes) }},
	{"keep", func(o *Options, v string, _ parseLimits) error { return parseEnum(v, keepNames, (*int)(&o.Keep)) },
		func(o Options) string { return enumOrEmpty(int(o.Keep), keepNames) }},
	{"progressive", func(o *Options, v string, _ parseLimits) (err error) { o.Progressive, err = parseBool(v); return },
		func(o Options) string { return boolOrEmpty(o.Progressive) }},
	{"animated", func(o *Options, v string, _ parseLimits) error {
		b, err := parseBool(v)
		o.Still = !b
		return err
	}, func(o Options) string {
		if o.Still {
			return "false"
		}
		return ""
	}},
	{"watermark", func(o *Options, v string, _ parseLimits) error {
		if v == "" || strings.Contains(v, "://") {
			return fmt.Errorf("%q is not the name of a stored watermark", v)
		}
		o.watermark().Key = v
		return nil
	}, func(o Options) string {
		if o.Watermark == nil {
			return ""
		}
		return o.Watermark.Key
	}},
	{"watermark_position", func(o *Options, v string, _ parseLimits) error {
		var g int
		if err := parseEnum(v, gravityNames, &g); err != nil || Gravity(g) == GravitySmart || Gravity(g) == GravityFocus {
			// Smart and focus pick a place in the image, not a corner
			// or side of it: not named among the positions.
			var places []string
			for i, n := range gravityNames {
				if Gravity(i) != GravitySmart && Gravity(i) != GravityFocus {
					places = append(places, n)
				}
			}
			return fmt.Errorf("%q is not one of %s", v, strings.Join(places, ", "))
		}
		o.watermark().Position = Gravity(g)
		return nil
	}, func(o Options) string {
		// The default is southeast, not the zero value (center), which
		// must then be written.
		if o.Watermark == nil || o.Watermark.Position == GravitySouthEast {
			return ""
		}
		return nameOf(gravityNames, int(o.Watermark.Position))
	}},
	{"watermark_opacity", func(o *Options, v string, _ parseLimits) (err error) {
		o.watermark().Opacity, err = parseFloat(v, 0, 1)
		return err
	}, func(o Options) string {
		if o.Watermark == nil || o.Watermark.Opacity == 1 {
			return ""
		}
		return formatFloat(o.Watermark.Opacity)
	}},
	{"watermark_scale", func(o *Options, v string, _ parseLimits) (err error) {
		o.watermark().Scale, err = parseFloat(v, 0.01, 1)
		return err
	}, func(o Options) string {
		if o.Watermark == nil {
			return ""
		}
		return floatOrEmpty(o.Watermark.Scale)
	}},
	{"watermark_margin", func(o *Options, v string, l parseLimits) (err error) {
		o.watermark().Margin, err = parseInt(v, 0, l.maxDimension)
		return err
	}, func(o Options) string {
		if o.Watermark == nil {
			return ""
		}
		return intOrEmpty(o.Watermark.Margin)
	}},
}

// watermark returns o's watermark, made with its defaults when missing.
func (o *Options) watermark() *Watermark {
	if o.Watermark == nil {
		o.Watermark = &Watermark{Position: GravitySouthEast, Opacity: 1}
	}
	return o.Watermark
}

// OptionNames returns the parameter names ParseOptions accepts.
func OptionNames() []string {
	names := make([]string, len(params))
	for i, p := range params {
		names[i] = p.name
	}
	return names
}

// ParseOptions reads options from query parameters. Every parameter must be
// known, given once and valid; width and height must lie in 1..maxDimension.
// Errors wrap ErrBadOption and name the parameter.
func ParseOptions(q url.Values, maxDimension int) (Options, error) {
	var o Options
	var unknown []string
	known := map[string]bool{}
	for _, p := range params {
		known[p.name] = true
	}
	for k := range q {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o, fmt.Errorf("%w: unknown parameter %s (known: %s)", ErrBadOption,
			quoteAll(unknown), strings.Join(OptionNames(), ", "))
	}
	lim := parseLimits{maxDimension: maxDimension}
	for _, p := range params {
		vs, ok := q[p.name]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return o, fmt.Errorf("%w: %s: given %d times", ErrBadOption, p.name, len(vs))
		}
		if err := p.set(&o, vs[0], lim); err != nil {
			return o, fmt.Errorf("%w: %s: %v", ErrBadOption, p.name, err)
		}
	}
	if err := o.check(); err != nil {
		return o, fmt.Errorf("%w: %v", ErrBadOption, err)
	}
	return o, nil
}

// check refuses combinations that mean nothing.
func (o Options) check() error {
	switch {
	case o.Gravity == GravityFocus && o.Focus == nil:
		return fmt.Errorf("gravity=focus needs focus=fx,fy")
	case o.Focus != nil && o.Gravity != GravityFocus:
		return fmt.Errorf("focus needs gravity=focus")
	case o.Watermark != nil && o.Watermark.Key == "":
		return fmt.Errorf("watermark_* options need watermark=NAME")
	}
	return nil
}

// Canonical writes o as the query that ParseOptions reads back into o,
// parameters in a fixed order and values in one spelling, defaults left
// out: two spellings of the same options have one canonical form.
func (o Options) Canonical() string {
	var b strings.Builder
	for _, p := range params {
		v := p.get(o)
		if v == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(v))
	}
	return b.String()
}

// scaledBy returns o with width, height and pad multiplied by its DPR.
func (o Options) scaledBy() Options {
	d := o.DPR
	if d == 0 || d == 1 {
		return o
	}
	mul := func(n int) int { return int(math.Round(float64(n) * d)) }
	o.Width, o.Height = mul(o.Width), mul(o.Height)
	for i := range o.Pad {
		o.Pad[i] = mul(o.Pad[i])
	}
	o.DPR = 1
	return o
}

func (o *Options) setFormat(v string) error {
	if v == "original" {
		o.Format = FormatUnknown
		return nil
	}
	f, err := ParseFormat(v)
	if err != nil || !f.CanWrite() {
		return fmt.Errorf("%q is not one of original, %s", v, strings.Join(writableNames(), ", "))
	}
	o.Format = f
	return nil
}

func writableNames() []string {
	var names []string
	for _, f := range OutputFormats {
		names = append(names, f.String())
	}
	return names
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

func parseInts(v string, n, lo, hi int) ([]int, error) {
	parts := strings.Split(v, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%q: want %d comma-separated integers", v, n)
	}
	out := make([]int, n)
	for i, p := range parts {
		var err error
		if out[i], err = parseInt(strings.TrimSpace(p), lo, hi); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseFloat(v string, lo, hi float64) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", v)
	}
	if f < lo || f > hi {
		return 0, fmt.Errorf("%g is out of range %g..%g", f, lo, hi)
	}
	if f == 0 {
		// -0 is 0, but formats as "-0": the canonical form (and so a
		// derived image's cache key, and the focus an upload records)
		// would have two spellings of one value.
		f = 0
	}
	return f, nil
}

func parseFloats(v string, n int, lo, hi float64) ([]float64, error) {
	parts := strings.Split(v, ",")
	if len(parts) != n {
		return nil, fmt.Errorf("%q: want %d comma-separated numbers", v, n)
	}
	out := make([]float64, n)
	for i, p := range parts {
		var err error
		if out[i], err = parseFloat(strings.TrimSpace(p), lo, hi); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func parseEnum(v string, names []string, dst *int) error {
	for i, n := range names {
		if v == n {
			*dst = i
			return nil
		}
	}
	return fmt.Errorf("%q is not one of %s", v, strings.Join(names, ", "))
}

func parseBool(v string) (bool, error) {
	switch v {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", v)
}

// parseColor reads a hex colour: RGB or RRGGBB, with or without a leading #.
func parseColor(v string) (Color, error) {
	s := strings.TrimPrefix(v, "#")
	if len(s) == 3 {
		s = string([]byte{s[0], s[0], s[1], s[1], s[2], s[2]})
	}
	if len(s) != 6 {
		return Color{}, fmt.Errorf("%q is not a hex colour like ff8800", v)
	}
	n, err := strconv.ParseUint(s, 16, 32)
	if err != nil {
		return Color{}, fmt.Errorf("%q is not a hex colour like ff8800", v)
	}
	return Color{uint8(n >> 16), uint8(n >> 8), uint8(n)}, nil
}

func intOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func floatOrEmpty(f float64) string {
	if f == 0 {
		return ""
	}
	return formatFloat(f)
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func boolOrEmpty(b bool) string {
	if !b {
		return ""
	}
	return "true"
}

func enumOrEmpty(i int, names []string) string {
	if i == 0 {
		return ""
	}
	return nameOf(names, i)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
