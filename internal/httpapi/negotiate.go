package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// imageOptions reads the options of an image request from its query. The
// option vocabulary is imageproc's; format=auto is the HTTP layer's own:
// the format is chosen from the request's Accept header (negotiate), and
// the answer then varies with it (auto reports that).
func imageOptions(rawQuery, accept string, maxDimension int) (o imageproc.Options, auto bool, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return o, false, fmt.Errorf("%w: query: %v", imageproc.ErrBadOption, err)
	}
	return optionsOf(q, accept, maxDimension)
}

// optionsOf reads options already split into words (imageOptions; the
// options segment of an image URL).
func optionsOf(q url.Values, accept string, maxDimension int) (o imageproc.Options, auto bool, err error) {
	if fs := q["format"]; len(fs) == 1 && fs[0] == "auto" {
		auto = true
		q.Del("format")
	} else if len(fs) == 1 && fs[0] != "original" {
		// imageproc's refusal names the formats VARIANTS may have; a
		// request may also have auto.
		if f, err := imageproc.ParseFormat(fs[0]); err != nil || !f.CanWrite() {
			names := []string{"auto", "original"}
			for _, f := range imageproc.OutputFormats {
				names = append(names, f.String())
			}
			return o, false, fmt.Errorf("%w: format: %q is not one of %s", imageproc.ErrBadOption, fs[0], strings.Join(names, ", "))
		}
	}
	if o, err = imageproc.ParseOptions(q, maxDimension); err != nil {
		return o, false, err
	}
	if auto {
		o.Prefer = negotiate(accept)
	}
	return o, auto, nil
}

// negotiate lists the formats format=auto may give, best first, from an
// Accept header: AVIF and WebP where accepted (explicit q=0 refuses a
// type). imageproc takes the first that suits the image (an animated one
// stays animated in WebP, AVIF being still in libvips 8.14), else keeps the
// input's.
func negotiate(accept string) []imageproc.Format {
	accepted := map[string]bool{}
	for _, part := range strings.Split(accept, ",") {
		fields := strings.Split(part, ";")
		typ := strings.ToLower(strings.TrimSpace(fields[0]))
		ok := true
		for _, p := range fields[1:] {
			// Parameter names are case-insensitive: Q=0 refuses too.
			if k, v, _ := strings.Cut(strings.TrimSpace(p), "="); strings.EqualFold(k, "q") {
				if q, err := strconv.ParseFloat(v, 64); err == nil && q <= 0 {
					ok = false
				}
			}
		}
		accepted[typ] = ok
	}
	var fs []imageproc.Format
	for _, f := range []imageproc.Format{imageproc.FormatAVIF, imageproc.FormatWebP} {
		if accepted[f.ContentType()] {
			fs = append(fs, f)
		}
	}
	return fs
}

// fieldList is the value of a list field of h (Accept, If-None-Match): a
// client or a proxy may send it over several field lines, which mean the
// one list they make joined with commas (RFC 9110 5.3), where Get would
// read the first line alone.
func fieldList(h http.Header, name string) string {
	return strings.Join(h.Values(name), ",")
}
