package imageproc

import "bytes"

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
	case bytes.HasPrefix(b, jxlCodestream), bytes.HasPrefix(b, jxlContainerSignature):
		return FormatJXL
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

// The two forms of a JPEG XL file (ISO/IEC 18181-2): a bare codestream,
// and the ISO BMFF container, whose first box is the 12-byte signature box
// "JXL " (not ftyp, so it never reaches sniffISOBMFF).
var (
	jxlCodestream         = []byte{0xFF, 0x0A}
	jxlContainerSignature = []byte{0, 0, 0, 0x0C, 'J', 'X', 'L', ' ', 0x0D, 0x0A, 0x87, 0x0A}
)

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
