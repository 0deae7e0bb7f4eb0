package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// Variant is one output made of every source: a name, which is also a
// segment of its key, and the resize options.
type Variant struct {
	Name    string
	Options imageproc.Options
	// Qualities are the default qualities by format that the processor
	// applies where Options set none (the JPEG_QUALITY settings): part of
	// the digest, since changing one changes the output.
	Qualities map[imageproc.Format]int
}

var variantName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// ParseVariants reads a list such as "thumb:200x200:cover,large:1600x0:webp":
// name:WIDTHxHEIGHT, then optionally a fit and a format, in either order;
// 0 leaves a side free. An entry may carry any other option of POST
// /resize in query form after "?" ("thumb:200x200:cover?sharpen=1&quality=70");
// since option values hold commas, entries are then separated by ";".
// Names are lower-case letters, digits, - and _ (never a leading _, which
// the output prefix reserves), and unique. Sides lie in 0..maxDimension and
// not both 0. Errors name the entry and the option.
func ParseVariants(s string, maxDimension int) ([]Variant, error) {
	sep := ","
	if strings.ContainsAny(s, "?;") {
		sep = ";"
	}
	var out []Variant
	seen := map[string]bool{}
	for _, item := range strings.Split(s, sep) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		v, err := parseVariant(item, maxDimension)
		if err != nil {
			return nil, fmt.Errorf("variant %q: %w", item, err)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("variant %q: name used twice", v.Name)
		}
		seen[v.Name] = true
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no variants")
	}
	return out, nil
}

// parseVariant reads one entry: its short form is turned into query
// parameters and read, with the entry's own query, by imageproc's one
// option parser.
func parseVariant(item string, maxDimension int) (Variant, error) {
	head, query, _ := strings.Cut(item, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return Variant{}, fmt.Errorf("options: %v", err)
	}
	parts := strings.Split(head, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return Variant{}, fmt.Errorf("want name:WIDTHxHEIGHT[:fit][:format][?options]")
	}
	v := Variant{Name: parts[0]}
	if !variantName.MatchString(v.Name) {
		return Variant{}, fmt.Errorf("name must be 1-32 of a-z, 0-9, - and _, not starting with _")
	}
	w, h, ok := strings.Cut(parts[1], "x")
	wn, werr := side(w, maxDimension)
	hn, herr := side(h, maxDimension)
	if !ok || werr != nil || herr != nil || wn+hn == 0 {
		return Variant{}, fmt.Errorf("size %q: want WIDTHxHEIGHT, each 0..%d, not both 0", parts[1], maxDimension)
	}
	for k, n := range map[string]int{"width": wn, "height": hn} {
		if n > 0 {
			q.Add(k, strconv.Itoa(n))
		}
	}
	for _, word := range parts[2:] {
		switch {
		case isFit(word):
			q.Add("fit", word)
		case word == "auto":
			return Variant{}, fmt.Errorf("format auto needs a request's Accept header")
		default:
			q.Add("format", word)
		}
	}
	if v.Options, err = imageproc.ParseOptions(q, maxDimension); err != nil {
		return Variant{}, err
	}
	return v, nil
}

func isFit(word string) bool {
	_, err := imageproc.ParseOptions(url.Values{"fit": {word}}, 1)
	return err == nil
}

func side(s string, max int) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > max {
		return 0, fmt.Errorf("bad side %q", s)
	}
	return n, nil
}

// EncoderVersion names the way this program writes images: the load and
// save path, the encoders' settings that no option sets. It is part of
// every variant's digest, so that a release that changes how the same
// options come out (a new default quality, a new encoder) raises it and
// makes every stored variant out of date, as a changed definition does.
// The libvips version alone does not: a patch release of libvips does not
// make the stored variants wrong, and regenerating a bucket is costly.
const EncoderVersion = "1"

// Digest is the digest of v's definition: its options in canonical form
// (size, fit, format, quality, every option that changes the pixels; two
// spellings of one definition have one digest), the default quality that
// applies where it sets none, and EncoderVersion. The
// name is not part of it: it is the output's key. Outputs record it
// (MetaVariantDigest); one whose digest differs is out of date.
func (v Variant) Digest() string {
	return digest("resizer-variant\n" + EncoderVersion + "\n" + v.Options.Canonical() + v.defaults())
}

// defaults are the default qualities that apply to v's output: none when
// it sets its quality, its format's when it names one, else every
// format's (the output has the source's format).
func (v Variant) defaults() string {
	if v.Options.Quality != 0 || len(v.Qualities) == 0 {
		return ""
	}
	var b strings.Builder
	for _, f := range slices.Sorted(maps.Keys(v.Qualities)) {
		if q := v.Qualities[f]; q != 0 && (v.Options.Format == imageproc.FormatUnknown || v.Options.Format == f) {
			fmt.Fprintf(&b, "\n%s=%d", f, q)
		}
	}
	return b.String()
}

// digest is a short hex SHA-256 of s: 96 bits, past any chance collision.
func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:12])
}
