package imageproc

import (
	"bytes"
	"encoding/binary"
)

// exifPrefix starts the EXIF block in a JPEG's APP1 segment; WebP files
// written by libvips (and PNG eXIf chunks written by some tools) carry it
// too, although their specifications say the block starts with the TIFF
// header.
var exifPrefix = []byte("Exif\x00\x00")

// exifTagOrientation is the TIFF tag of the EXIF orientation, of type
// SHORT (3) and count 1, in IFD0.
const exifTagOrientation = 0x0112

// exifOrientation returns the orientation (1..8) that a TIFF-structured
// EXIF block, with or without the "Exif\0\0" prefix, records in IFD0. It
// returns 1, the identity, for anything else: a bad byte order mark or
// magic number, an IFD0 offset out of range, no orientation entry, an entry
// of another type or count, or a value outside 1..8. Only IFD0 is read and
// no offset other than its own is followed, so no file can make it loop;
// its work is bounded by the length of tiff.
//
// Like libexif (which libvips used before the service stripped EXIF
// itself), it reads the entries of a truncated IFD that fit in the block.
func exifOrientation(tiff []byte) int {
	tiff = bytes.TrimPrefix(tiff, exifPrefix)
	if len(tiff) < 8 {
		return 1
	}
	var order binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 1
	}
	if order.Uint16(tiff[2:]) != 42 {
		return 1
	}
	off := uint64(order.Uint32(tiff[4:]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 1
	}
	count := int(order.Uint16(tiff[off:]))
	entries := tiff[off+2:]
	for k := 0; k < count && 12*k+12 <= len(entries); k++ {
		e := entries[12*k : 12*k+12]
		if order.Uint16(e) != exifTagOrientation {
			continue
		}
		const typeShort = 3
		if order.Uint16(e[2:]) != typeShort || order.Uint32(e[4:]) != 1 {
			return 1
		}
		if v := int(order.Uint16(e[8:])); v >= 1 && v <= 8 {
			return v
		}
		return 1
	}
	return 1
}
