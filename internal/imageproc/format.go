package imageproc

import (
	"bytes"
	"fmt"
	"strings"
)

// Format is an image file format known to the service, as input or output.
type Format int

// The formats. The zero value is FormatUnknown.
const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
	FormatWebP
	FormatGIF
	FormatAVIF
	FormatHEIF
	FormatTIFF
	FormatSVG
	FormatPDF
)

var formatNames = map[Format]string{
	FormatJPEG: "jpeg",
	FormatPNG:  "png",
	FormatWebP: "webp",
	FormatGIF:  "gif",
	FormatAVIF: "avif",
	FormatHEIF: "heif",
	FormatTIFF: "tiff",
	FormatSVG:  "svg",
	FormatPDF:  "pdf",
}

var formatTypes = map[Format]string{
	FormatJPEG: "image/jpeg",
	FormatPNG:  "image/png",
	FormatWebP: "image/webp",
	FormatGIF:  "image/gif",
	FormatAVIF: "image/avif",
	FormatHEIF: "image/heif",
	FormatTIFF: "image/tiff",
	FormatSVG:  "image/svg+xml",
	FormatPDF:  "application/pdf",
}

// DefaultInputFormats are the formats accepted when INPUT_FORMATS is not set:
// the ones browsers and cameras produce, each decoded by a library built for
// untrusted input. TIFF, SVG and PDF must be asked for.
var DefaultInputFormats = []Format{FormatJPEG, FormatPNG, FormatWebP, FormatGIF, FormatAVIF, FormatHEIF}

// OutputFormats are the formats the service can write.
var OutputFormats = []Format{FormatJPEG, FormatPNG, FormatWebP, FormatAVIF, FormatGIF}

// String returns the lower-case name used in options and configuration.
func (f Format) String() string {
	if n, ok := formatNames[f]; ok {
		return n
	}
	return "unknown"
}

// ContentType returns the media type of the format.
func (f Format) ContentType() string {
	if t, ok := formatTypes[f]; ok {
		return t
	}
	return "application/octet-stream"
}

// Ext returns the usual file extension of the format, without the dot.
func (f Format) Ext() string {
	switch f {
	case FormatJPEG:
		return "jpg"
	case FormatHEIF:
		return "heic"
	}
	return f.String()
}

// FormatOfType returns the format of a media type such as "image/jpeg"
// (parameters ignored), or FormatUnknown.
func FormatOfType(mediaType string) Format {
	t, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mediaType)), ";")
	t = strings.TrimSpace(t)
	if t == "image/jpg" || t == "image/pjpeg" {
		return FormatJPEG
	}
	if t == "image/heic" {
		return FormatHEIF
	}
	for f, ct := range formatTypes {
		if ct == t {
			return f
		}
	}
	return FormatUnknown
}

// FormatOfExt returns the format a file extension (without the dot, any
// case) names, or FormatUnknown.
func FormatOfExt(ext string) Format {
	switch strings.ToLower(ext) {
	case "jpg", "jpeg", "jpe":
		return FormatJPEG
	case "png":
		return FormatPNG
	case "webp":
		return FormatWebP
	case "gif":
		return FormatGIF
	case "avif":
		return FormatAVIF
	case "heic", "heif":
		return FormatHEIF
	case "tif", "tiff":
		return FormatTIFF
	case "svg":
		return FormatSVG
	case "pdf":
		return FormatPDF
	}
	return FormatUnknown
}

// ParseFormat returns the format with the given name ("jpg" is taken for
// "jpeg"). It returns an error for a name it does not know.
func ParseFormat(name string) (Format, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "jpg" {
		n = "jpeg"
	}
	for f, s := range formatNames {
		if s == n {
			return f, nil
		}
	}
	return FormatUnknown, fmt.Errorf("unknown image format %q", name)
}

// Sniff names the format of b from its leading bytes alone, the way the
// service decides what to hand to libvips; it never trusts a declared
// Content-Type or file name. It returns FormatUnknown for anything else.
func Sniff(b []byte) Format {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return FormatJPEG
	case bytes.HasPrefix(b, pngSignature):
		return FormatPNG
	case bytes.HasPrefix(b, []byte("GIF87a")), bytes.HasPrefix(b, []byte("GIF89a")):
		return FormatGIF
	case len(b) >= 12 && bytes.Equal(b[0:4], []byte("RIFF")) && bytes.Equal(b[8:12], []byte("WEBP")):
		return FormatWebP
	case len(b) >= 12 && bytes.Equal(b[4:8], []byte("ftyp")):
		return sniffISOBMFF(b[8:12])
	case bytes.HasPrefix(b, []byte("II*\x00")), bytes.HasPrefix(b, []byte("MM\x00*")):
		return FormatTIFF
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return FormatPDF
	case looksLikeSVG(b):
		return FormatSVG
	}
	return FormatUnknown
}

// sniffISOBMFF maps the major brand of an ISO base media file to AVIF or
// HEIF. Only the brands that bimg routes to libheif are accepted, so that the
// sniffer and the decoder never disagree about a file.
func sniffISOBMFF(brand []byte) Format {
	switch string(brand) {
	case "avif":
		return FormatAVIF
	case "heic", "heis", "hevc", "mif1", "msf1":
		return FormatHEIF
	}
	return FormatUnknown
}

// looksLikeSVG accepts a document whose first element, after an optional
// BOM, XML declaration, comments and doctype, is <svg. A doctype with an
// internal subset ("[...]") is refused: that is where entities, and the
// XML attacks built on them, are declared.
func looksLikeSVG(b []byte) bool {
	if len(b) > 4096 {
		b = b[:4096]
	}
	b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF"))
	for {
		b = bytes.TrimLeft(b, " \t\r\n")
		switch {
		case bytes.HasPrefix(b, []byte("<svg")):
			return true
		case bytes.HasPrefix(b, []byte("<?xml")), bytes.HasPrefix(b, []byte("<!DOCTYPE")):
			i := bytes.IndexByte(b, '>')
			if i < 0 || bytes.IndexByte(b[:i], '[') >= 0 {
				return false
			}
			b = b[i+1:]
		case bytes.HasPrefix(b, []byte("<!--")):
			i := bytes.Index(b, []byte("-->"))
			if i < 0 {
				return false
			}
			b = b[i+3:]
		default:
			return false
		}
	}
}
