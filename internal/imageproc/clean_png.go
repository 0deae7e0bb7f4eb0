package imageproc

import (
	"bytes"
	"encoding/binary"
)

// cleanPNG returns the PNG in b without its metadata, with the EXIF
// orientation, Artist and Copyright.
//
// It keeps the signature and every chunk up to and including IEND except
// tEXt, zTXt and iTXt (text, XMP, and the "Raw profile" EXIF and IPTC that
// some tools write as text), eXIf (the first one gives the orientation and the rights)
// and tIME. Colour (iCCP, sRGB, gAMA, cHRM), palette and transparency
// (PLTE, tRNS), image data and animation (IDAT, acTL, fcTL, fdAT) and
// unknown chunks are kept whole, so their CRCs stay valid. Bytes after IEND
// are dropped.
//
// It returns an error wrapping ErrUndecodable when b does not start with
// the PNG signature and an IHDR chunk, when a chunk's length is over 2³¹-1
// or runs past the end of b, and when b ends before IEND. The chunks'
// CRCs are not checked: the decoder does that.
func cleanPNG(b []byte) (cleaned, error) {
	if !bytes.HasPrefix(b, pngSignature) {
		return cleaned{}, errBroken(FormatPNG, "no PNG signature")
	}
	c := cleaned{orientation: 1}
	g := gatherer{src: b}
	g.keep(0, len(pngSignature))
	sawExif := false
	for i := len(pngSignature); ; {
		if len(b)-i < 12 {
			return cleaned{}, errBroken(FormatPNG, "truncated: no IEND chunk")
		}
		n := binary.BigEndian.Uint32(b[i:])
		typ := b[i+4 : i+8]
		if n > 1<<31-1 {
			return cleaned{}, errBroken(FormatPNG, "chunk %q at byte %d: length %d out of range", typ, i, n)
		}
		if uint64(n) > uint64(len(b)-i-12) {
			return cleaned{}, errBroken(FormatPNG, "truncated chunk %q at byte %d", typ, i)
		}
		if i == len(pngSignature) && string(typ) != "IHDR" {
			return cleaned{}, errBroken(FormatPNG, "first chunk is %q, not IHDR", typ)
		}
		end := i + 12 + int(n)
		switch string(typ) {
		case "tEXt", "zTXt", "iTXt", "tIME":
			// metadata: dropped
		case "eXIf":
			if !sawExif {
				sawExif = true
				c.orientation, c.rights = exifFields(b[i+8 : end-4])
			}
		case "IEND":
			g.keep(i, end)
			c.parts, c.size = g.result()
			return c, nil
		default:
			g.keep(i, end)
		}
		i = end
	}
}
