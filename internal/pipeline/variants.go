package pipeline

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// Variant is one output made of every source: a name, which is also a
// segment of its key, and the resize options.
type Variant struct {
	Name    string
	Options imageproc.Options
}

var variantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ParseVariants reads a list such as "thumb:200x200:cover,large:1600x0:webp":
// name:WIDTHxHEIGHT, then optionally a fit and a format, in either order;
// 0 leaves a side free. Names are lower-case letters, digits, - and _, and
// unique. Sides lie in 0..maxDimension and not both 0.
func ParseVariants(s string, maxDimension int) ([]Variant, error) {
	var out []Variant
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.Split(item, ":")
		if len(parts) < 2 || len(parts) > 4 {
			return nil, fmt.Errorf("variant %q: want name:WIDTHxHEIGHT[:fit][:format]", item)
		}
		v := Variant{Name: parts[0]}
		if !variantName.MatchString(v.Name) {
			return nil, fmt.Errorf("variant %q: name must be 1-32 of a-z, 0-9, - and _", item)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("variant %q: name used twice", v.Name)
		}
		seen[v.Name] = true
		w, h, ok := strings.Cut(parts[1], "x")
		var err error
		if v.Options.Width, err = side(w, maxDimension); ok && err == nil {
			v.Options.Height, err = side(h, maxDimension)
		}
		if !ok || err != nil || v.Options.Width+v.Options.Height == 0 {
			return nil, fmt.Errorf("variant %q: size %q: want WIDTHxHEIGHT, each 0..%d, not both 0", item, parts[1], maxDimension)
		}
		for _, p := range parts[2:] {
			if err := v.set(p); err != nil {
				return nil, fmt.Errorf("variant %q: %v", item, err)
			}
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variants")
	}
	return out, nil
}

func side(s string, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("bad side %q", s)
	}
	return n, nil
}

// set applies a fit or a format, in the query's vocabulary.
func (v *Variant) set(word string) error {
	for _, k := range []string{"fit", "format"} {
		o, err := imageproc.ParseOptions(map[string][]string{k: {word}}, 1)
		if err == nil {
			if k == "fit" {
				v.Options.Fit = o.Fit
			} else {
				v.Options.Format = o.Format
			}
			return nil
		}
	}
	return fmt.Errorf("%q is neither a fit (inside, cover, contain, fill) nor a format (original, jpeg, png, webp, avif)", word)
}
