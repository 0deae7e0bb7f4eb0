package pipeline

import (
	"context"
	"net/url"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
)

// An original may carry a focal point, the metadata MetaFocus ("fx,fy",
// fractions 0..1 of the upright image, as the focus option of POST
// /resize). It is given when the original is uploaded (POST /uploads, or
// the presign of an upload straight to storage) and kept with it by the
// store, so that every path that makes variants (Upload, Run) reads it
// from the same place: a cover variant whose definition leaves the
// gravity at its default (center) is cut around it instead.

// MetaFocus is the metadata of an original that holds its focal point.
// Outputs carry the focus they were made with as MetaSourceFocus.
const MetaFocus = "focus"

// ParseFocus reads a focal point as the focus option of POST /resize
// reads it: "fx,fy", each 0..1. The error wraps imageproc.ErrBadOption.
func ParseFocus(s string) (imageproc.Point, error) {
	// imageproc's own parser, so that the syntax and the checks are the
	// option's; it takes focus only with gravity=focus.
	o, err := imageproc.ParseOptions(url.Values{"gravity": {"focus"}, "focus": {s}}, 1)
	if err != nil {
		return imageproc.Point{}, err
	}
	return *o.Focus, nil
}

// FormatFocus writes p in the one spelling that ParseFocus reads back as
// p, that of the option's canonical form.
func FormatFocus(p imageproc.Point) string {
	q, _ := url.ParseQuery(imageproc.Options{Gravity: imageproc.GravityFocus, Focus: &p}.Canonical())
	return q.Get("focus")
}

// FocusMetadata returns the metadata that give an original the focal
// point p: nil when p is nil.
func FocusMetadata(p *imageproc.Point) map[string]string {
	if p == nil {
		return nil
	}
	return map[string]string{MetaFocus: FormatFocus(*p)}
}

// storedFocus reads the focal point of an original's metadata: nil when it
// has none. The error is a value ParseFocus refuses.
func storedFocus(meta map[string]string) (*imageproc.Point, error) {
	s, ok := meta[MetaFocus]
	if !ok {
		return nil, nil
	}
	p, err := ParseFocus(s)
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// focusOf returns the focal point of the original key from its metadata.
// A value that does not parse (written by hand, by another program, or by
// another version) counts as none and is logged: the focus is a hint, and
// the variants made without it are still right, while refusing the
// original over it would lose the upload.
func focusOf(ctx context.Context, key string, meta map[string]string) *imageproc.Point {
	p, err := storedFocus(meta)
	if err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("key", key).Msg("stored focus ignored")
	}
	return p
}

// SourceFocus is the focus an output of an original whose metadata are
// meta records (MetaSourceFocus): FormatFocus's spelling, empty for none
// or one that does not parse (taken as none).
func SourceFocus(meta map[string]string) string {
	p, _ := storedFocus(meta)
	return focusText(p)
}

// focusText is the focus an output records (MetaSourceFocus): its one
// spelling, empty for none.
func focusText(p *imageproc.Point) string {
	if p == nil {
		return ""
	}
	return FormatFocus(*p)
}

// withFocus returns the options of variant v for an original with focal
// point p: a cover variant whose definition sets no gravity of its own
// (center is the default) is cut around p; any other keeps its options.
func withFocus(v Variant, p *imageproc.Point) imageproc.Options {
	o := v.Options
	if p != nil && o.Fit == imageproc.FitCover && o.Gravity == imageproc.GravityCenter {
		f := *p
		o.Gravity, o.Focus = imageproc.GravityFocus, &f
	}
	return o
}
