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

// The TIFF tags the service reads in IFD0.
const (
	exifTagOrientation = 0x0112 // SHORT, count 1
	exifTagArtist      = 0x013B // ASCII
	exifTagCopyright   = 0x8298 // ASCII
)

// The TIFF field types the service reads.
const (
	tiffASCII = 2
	tiffShort = 3
)

// exifRights are the two EXIF fields keep=copyright carries from a source
// to its outputs, IFD0's Artist and Copyright: their ASCII bytes without
// the NULs that end them (a Copyright may hold two strings, the
// photographer's and the editor's, with a NUL between). They are bytes,
// not strings: JSON would replace what is not UTF-8 on the way to the
// worker.
type exifRights struct {
	Artist    []byte `json:",omitempty"`
	Copyright []byte `json:",omitempty"`
}

func (r exifRights) empty() bool { return len(r.Artist) == 0 && len(r.Copyright) == 0 }

// maxRightsLen bounds each of the rights: they travel to the worker in a
// job, whose messages are bounded, and into every output. A longer one is
// dropped rather than cut: part of a name is not a name.
const maxRightsLen = 2048

// exifOrientation returns the orientation (1..8) that a TIFF-structured
// EXIF block, with or without the "Exif\0\0" prefix, records in IFD0; see
// exifFields.
func exifOrientation(tiff []byte) int {
	o, _ := exifFields(tiff)
	return o
}

// exifFields reads IFD0 of a TIFF-structured EXIF block, with or without
// the "Exif\0\0" prefix: the orientation and the rights.
//
// The orientation is 1, the identity, for anything but a first
// orientation entry of type SHORT and count 1 whose value is in 1..8: a
// bad byte order mark or magic number, an IFD0 offset out of range, no
// orientation entry, an entry of another type or count, or a value outside
// 1..8. Artist and Copyright are the values of the first entry of each tag
// when it is of type ASCII, lies whole within the block, and holds 1 to
// maxRightsLen bytes before its trailing NULs; nil otherwise. They are
// copies: the block may be released.
//
// Only IFD0 is read, and no offset is followed other than its own and
// those of the two values, so no file can make it loop; its work is
// bounded by the length of tiff. Like libexif (which libvips used before
// the service stripped EXIF itself), it reads the entries of a truncated
// IFD that fit in the block.
func exifFields(tiff []byte) (orientation int, rights exifRights) {
	orientation = 1
	tiff = bytes.TrimPrefix(tiff, exifPrefix)
	if len(tiff) < 8 {
		return 1, rights
	}
	var order binary.ByteOrder
	switch string(tiff[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 1, rights
	}
	if order.Uint16(tiff[2:]) != 42 {
		return 1, rights
	}
	off := uint64(order.Uint32(tiff[4:]))
	if off < 8 || off+2 > uint64(len(tiff)) {
		return 1, rights
	}
	count := int(order.Uint16(tiff[off:]))
	entries := tiff[off+2:]
	sawOrientation, sawArtist, sawCopyright := false, false, false
	for k := 0; k < count && 12*k+12 <= len(entries); k++ {
		e := entries[12*k : 12*k+12]
		switch order.Uint16(e) {
		case exifTagOrientation:
			if sawOrientation {
				continue
			}
			sawOrientation = true
			if order.Uint16(e[2:]) != tiffShort || order.Uint32(e[4:]) != 1 {
				continue
			}
			if v := int(order.Uint16(e[8:])); v >= 1 && v <= 8 {
				orientation = v
			}
		case exifTagArtist:
			if !sawArtist {
				sawArtist = true
				rights.Artist = tiffASCIIValue(tiff, order, e)
			}
		case exifTagCopyright:
			if !sawCopyright {
				sawCopyright = true
				rights.Copyright = tiffASCIIValue(tiff, order, e)
			}
		}
	}
	return orientation, rights
}

// tiffASCIIValue returns a copy of the value of the IFD entry e, of type
// ASCII, without its trailing NULs: inline when it holds 4 bytes or fewer,
// else at the offset the entry gives. It returns nil when the type is
// another, the value runs past the block, or it is empty or longer than
// maxRightsLen.
func tiffASCIIValue(tiff []byte, order binary.ByteOrder, e []byte) []byte {
	if order.Uint16(e[2:]) != tiffASCII {
		return nil
	}
	n := uint64(order.Uint32(e[4:]))
	var v []byte
	if n <= 4 {
		v = e[8 : 8+n]
	} else {
		off := uint64(order.Uint32(e[8:]))
		if off+n > uint64(len(tiff)) {
			return nil
		}
		v = tiff[off : off+n]
	}
	v = bytes.TrimRight(v, "\x00")
	if len(v) == 0 || len(v) > maxRightsLen {
		return nil
	}
	return bytes.Clone(v)
}

// exifBlock returns a TIFF-structured EXIF block (big-endian, without the
// "Exif\0\0" prefix) whose IFD0 holds the rights that are set, Artist and
// Copyright, and nothing else: no orientation (the pixels are upright), no
// other IFD. It returns nil when neither is set.
func (r exifRights) exifBlock() []byte {
	type field struct {
		tag   uint16
		value []byte
	}
	var fields []field // in tag order, as TIFF requires
	for _, f := range []field{{exifTagArtist, r.Artist}, {exifTagCopyright, r.Copyright}} {
		if len(f.value) > 0 {
			fields = append(fields, field{f.tag, append(bytes.Clone(f.value), 0)})
		}
	}
	if len(fields) == 0 {
		return nil
	}
	be := binary.BigEndian
	b := []byte{'M', 'M', 0, 42, 0, 0, 0, 8}
	b = be.AppendUint16(b, uint16(len(fields)))
	data := uint32(8 + 2 + 12*len(fields) + 4) // where out-of-line values start
	var values []byte
	for _, f := range fields {
		b = be.AppendUint16(b, f.tag)
		b = be.AppendUint16(b, tiffASCII)
		b = be.AppendUint32(b, uint32(len(f.value)))
		if len(f.value) <= 4 {
			b = append(b, f.value...)
			b = append(b, make([]byte, 4-len(f.value))...)
			continue
		}
		b = be.AppendUint32(b, data+uint32(len(values)))
		values = append(values, f.value...)
		if len(values)%2 == 1 {
			values = append(values, 0) // values start on a word boundary
		}
	}
	b = be.AppendUint32(b, 0) // no IFD1
	return append(b, values...)
}
