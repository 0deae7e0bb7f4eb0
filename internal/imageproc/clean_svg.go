package imageproc

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// An SVG document may embed other files as data: URLs (an <image> or
// <feImage> href, a url() in a style, an @import, an xml-stylesheet or an
// XInclude), and librsvg always loads those, whatever else it refuses:
// an embedded PNG or JPEG is decoded by gdk-pixbuf, whole, inside the
// worker, past every check made in Go (MAX_PIXELS, MAX_JPEG_SCANS, the
// truncation checks) and through loaders INPUT_FORMATS leaves off. A
// 20000x20000 PNG in a 519 KB SVG was served after 5 s and 2.8 GB. Such
// documents are refused; references to other documents, which librsvg
// never loads (no base URL), are drawn without them, as before.

// maxSVGOctaves bounds feTurbulence's numOctaves: librsvg computes every
// octave for every pixel of the filter's region, so 100,000 of them held a
// slot until PROCESS_TIMEOUT for a 230-byte document at width 100, and
// each octave past the ninth adds less than one level of 8-bit colour.
const maxSVGOctaves = 10

// checkSVG refuses an SVG document that holds a data: URL anywhere
// librsvg reads one: an attribute (any, since presentation attributes are
// CSS), the text of a <style> element, a processing instruction
// (xml-stylesheet) or a directive; spelled however XML (character
// references) and CSS (escapes, comments) allow, and in any case. The
// document is read as XML, with the same strictness as libxml2 (a DTD
// subset, where entities are declared, never gets here: see
// looksLikeSVG). Errors wrap ErrUnsupported (a data: URL, an encoding
// other than UTF-8 or an 8-bit one that keeps ASCII) or ErrUndecodable
// (not well-formed).
func checkSVG(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.CharsetReader = svgCharset
	var style strings.Builder // the text of the <style> element being read
	inStyle := 0              // depth inside <style> elements
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if e := (*svgEncodingError)(nil); errors.As(err, &e) {
				return fmt.Errorf("%w: svg: encoding %q (UTF-8 and 8-bit encodings that keep ASCII are read)", ErrUnsupported, e.label)
			}
			return fmt.Errorf("%w: svg: %v", ErrUndecodable, err)
		}
		var texts []string
		switch t := tok.(type) {
		case xml.StartElement:
			if inStyle > 0 || t.Name.Local == "style" {
				inStyle++
			}
			for _, a := range t.Attr {
				texts = append(texts, a.Value)
				if t.Name.Local == "feTurbulence" && a.Name.Local == "numOctaves" {
					if n, err := strconv.ParseFloat(strings.TrimSpace(a.Value), 64); err == nil && n > maxSVGOctaves {
						return fmt.Errorf("%w: svg: feTurbulence numOctaves %.0f, over %d", ErrUnsatisfiable, n, maxSVGOctaves)
					}
				}
			}
		case xml.EndElement:
			if inStyle > 0 {
				if inStyle--; inStyle == 0 {
					texts = append(texts, style.String())
					style.Reset()
				}
			}
		case xml.CharData:
			if inStyle > 0 {
				style.Write(t) // split by comments, still one text to librsvg
			}
		case xml.ProcInst:
			texts = append(texts, string(t.Inst))
		case xml.Directive:
			texts = append(texts, string(t))
		}
		for _, s := range texts {
			if at := dataURL(s); at >= 0 {
				return fmt.Errorf("%w: svg: a data: URL (an embedded file) is not read: %.60q", ErrUnsupported, s[at:])
			}
		}
	}
}

// dataURL returns where in s a data: URL may start, or -1: s is read as
// CSS (escapes decoded, comments dropped), without whitespace or control
// characters (URL parsers drop tabs and newlines anywhere), in lower case,
// and data: counts where no scheme character comes before it (as a URL's
// scheme it starts the URL: "metadata:" is not one). The position is
// approximate, for the message.
func dataURL(s string) int {
	if !strings.ContainsAny(s, `Dd\`) {
		return -1 // the common case, fast
	}
	n := normalizeCSS(s)
	for i := 0; ; {
		j := strings.Index(n[i:], "data:")
		if j < 0 {
			return -1
		}
		j += i
		if j == 0 || !isSchemeChar(n[j-1]) {
			return max(0, strings.IndexAny(s, `Dd\`))
		}
		i = j + 1
	}
}

func isSchemeChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// normalizeCSS decodes s's CSS escapes (a backslash and up to six hex
// digits with one optional space after them, or a backslash and any other
// character, which stands for itself), drops its comments, whitespace and
// control characters, and lowers ASCII letters.
func normalizeCSS(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				i = len(s)
			} else {
				i += 2 + end + 2
			}
			continue
		case c == '\\' && i+1 < len(s):
			j := i + 1
			for j < len(s) && j < i+7 && isHex(s[j]) {
				j++
			}
			if j == i+1 { // not hex: the next character itself
				r, size := utf8.DecodeRuneInString(s[j:])
				writeLower(&b, r)
				i = j + size
				continue
			}
			var r rune
			for _, h := range s[i+1 : j] {
				r = r<<4 | rune(hexValue(byte(h)))
			}
			writeLower(&b, r)
			if j < len(s) && (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r' || s[j] == '\f') {
				j++
			}
			i = j
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		writeLower(&b, r)
		i += size
	}
	return b.String()
}

func writeLower(b *strings.Builder, r rune) {
	switch {
	case r <= ' ' || r == 0x7F:
		// whitespace and control characters: dropped
	case r >= 'A' && r <= 'Z':
		b.WriteRune(r + 'a' - 'A')
	default:
		b.WriteRune(r)
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func hexValue(c byte) int {
	switch {
	case c >= 'a':
		return int(c-'a') + 10
	case c >= 'A':
		return int(c-'A') + 10
	}
	return int(c - '0')
}

// svgEncodingError: a declared encoding checkSVG does not read.
type svgEncodingError struct{ label string }

func (e *svgEncodingError) Error() string { return "encoding " + e.label }

// svgCharset reads the encodings whose ASCII bytes are ASCII characters
// and whose other bytes never are (so that data: can be found in them):
// UTF-8 under other names, and the 8-bit ones, read as Latin-1 (the
// characters past ASCII may differ from the document's, which does not
// matter here). Others (UTF-7 spells "d" as "+AGQ-") are refused.
func svgCharset(label string, r io.Reader) (io.Reader, error) {
	switch strings.ToLower(label) {
	case "utf8", "utf-8":
		return r, nil
	case "us-ascii", "ascii", "iso-8859-1", "iso8859-1", "iso_8859-1", "latin1", "l1", "windows-1252", "cp1252",
		"iso-8859-15", "iso-8859-2":
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		for _, c := range b {
			out.WriteRune(rune(c))
		}
		return &out, nil
	}
	return nil, &svgEncodingError{label: label}
}
