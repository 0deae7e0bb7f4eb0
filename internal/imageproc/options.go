package imageproc

import (
	"fmt"
	"net/url"
	"slices"
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

// Gravity says which part of the image a cover crop keeps.
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
)

var (
	fitNames     = []string{"inside", "cover", "contain", "fill"}
	gravityNames = []string{"center", "north", "south", "east", "west", "smart"}
)

func (f Fit) String() string     { return nameOf(fitNames, int(f)) }
func (g Gravity) String() string { return nameOf(gravityNames, int(g)) }

func nameOf(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return "unknown"
	}
	return names[i]
}

// Color is an opaque sRGB colour.
type Color struct{ R, G, B uint8 }

var white = Color{255, 255, 255}

// Options are what a caller asks of one resize. The zero value keeps the
// image's size and format and only re-encodes it (upright, in sRGB, without
// metadata).
type Options struct {
	// Width and Height of the box, in pixels; 0 leaves that side free, to
	// follow the aspect ratio.
	Width, Height int
	Fit           Fit
	Gravity       Gravity
	// Enlarge allows scaling up. Without it an image smaller than the box
	// keeps its size.
	Enlarge bool
	// Format of the output; FormatUnknown keeps the input's (see
	// OutputFormatFor).
	Format Format
	// Quality 1..100 for lossy formats; 0 takes the format's default.
	Quality int
	// Background fills padding and replaces transparency; nil means white
	// where the output cannot hold alpha, transparent where it can.
	Background *Color
}

// The query parameters ParseOptions knows, in the order they are documented.
var optionParams = []string{"width", "height", "fit", "gravity", "enlarge", "format", "quality", "background"}

// OptionNames returns the parameter names ParseOptions accepts.
func OptionNames() []string { return append([]string(nil), optionParams...) }

// ParseOptions reads options from query parameters. Every parameter must be
// known, given once and valid; width and height must lie in 1..maxDimension.
// Errors wrap ErrBadOption and name the parameter.
func ParseOptions(q url.Values, maxDimension int) (Options, error) {
	var o Options
	var unknown []string
	for k := range q {
		if !slices.Contains(optionParams, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return o, fmt.Errorf("%w: unknown parameter %s (known: %s)", ErrBadOption,
			quoteAll(unknown), strings.Join(optionParams, ", "))
	}
	for _, k := range optionParams {
		vs, ok := q[k]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return o, fmt.Errorf("%w: %s: given %d times", ErrBadOption, k, len(vs))
		}
		if err := o.set(k, vs[0], maxDimension); err != nil {
			return o, fmt.Errorf("%w: %s: %v", ErrBadOption, k, err)
		}
	}
	return o, nil
}

func (o *Options) set(k, v string, maxDimension int) error {
	var err error
	switch k {
	case "width":
		o.Width, err = parseInt(v, 1, maxDimension)
	case "height":
		o.Height, err = parseInt(v, 1, maxDimension)
	case "quality":
		o.Quality, err = parseInt(v, 1, 100)
	case "fit":
		var i int
		i, err = parseName(v, fitNames)
		o.Fit = Fit(i)
	case "gravity":
		var i int
		i, err = parseName(v, gravityNames)
		o.Gravity = Gravity(i)
	case "enlarge":
		o.Enlarge, err = parseBool(v)
	case "format":
		err = o.setFormat(v)
	case "background":
		var c Color
		c, err = parseColor(v)
		o.Background = &c
	}
	return err
}

func (o *Options) setFormat(v string) error {
	switch v {
	case "original":
		o.Format = FormatUnknown
		return nil
	}
	f, err := ParseFormat(v)
	if err != nil || !slices.Contains(OutputFormats, f) || f == FormatGIF {
		return fmt.Errorf("%q is not one of original, jpeg, png, webp, avif", v)
	}
	o.Format = f
	return nil
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

func parseName(v string, names []string) (int, error) {
	for i, n := range names {
		if v == n {
			return i, nil
		}
	}
	return 0, fmt.Errorf("%q is not one of %s", v, strings.Join(names, ", "))
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

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
