package imageproc

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

// Header is what the service knows of an image before it makes any
// output: read in Go from the bytes before any slot is taken, and settled
// by the worker from libvips' own view (see confirm).
type Header struct {
	Format Format
	// Width and Height are the size of the image upright, as it is shown
	// (after its EXIF orientation).
	Width, Height int
	// Orientation is the EXIF orientation (1..8) the service applies to
	// make the image upright; 0 while not known (the formats whose header
	// only libvips reads).
	Orientation int
	// Alpha and Pages (the number of pages or frames) are known once
	// libvips has read the header, in a worker.
	Alpha bool
	Pages int
}

// upright returns the size of an image stored as w x h once orientation o
// is applied.
func upright(w, h, o int) (int, int) {
	if o >= 5 && o <= 8 {
		return h, w
	}
	return w, h
}

// stored is what readHeader learns of an image: its size as libvips will
// report it (before any EXIF orientation; a HEIF's after its own irot,
// which libheif applies), and the most pixels its decoder may allocate for
// one image, which can be more: a GIF frame beyond its screen, a HEIF item
// whose codec header is larger than its container claims.
type stored struct {
	w, h   int
	pixels int64
}

// readHeader parses the stored size of the formats the service reads
// itself, and checks that the file is complete: a fast first filter (the
// cleaners check the structure; the real checks are libvips'
// fail_on=truncated and, for JPEG, libjpeg's warnings that a scan ended
// early: decodeWarnings). For the other formats ok is false and libvips reads the
// header, in a worker. The error wraps ErrUndecodable.
func readHeader(f Format, b []byte) (s stored, ok bool, err error) {
	switch f {
	case FormatJPEG:
		s.w, s.h, err = jpegHeader(b)
	case FormatPNG:
		s.w, s.h, err = pngHeader(b)
	case FormatGIF:
		s.w, s.h, err = gifHeader(b)
	case FormatWebP:
		s.w, s.h, err = webpHeader(b)
	case FormatAVIF, FormatHEIF:
		s, err = heifStored(b)
	default:
		return stored{}, false, nil
	}
	if err == nil && (s.w <= 0 || s.h <= 0) {
		err = fmt.Errorf("zero image size %dx%d", s.w, s.h)
	}
	if err != nil {
		return stored{}, false, fmt.Errorf("%w: %s: %v", ErrUndecodable, f, err)
	}
	if s.pixels == 0 {
		s.pixels = int64(s.w) * int64(s.h)
	}
	return s, true, nil
}

// heifStored reads a HEIF or AVIF: the primary item's size as its
// container gives it, turned by its irot, and, for the limit, the largest
// image of any item, from the container or, larger where it lies (an ispe
// of 100x100 around an 8192x8192 AV1 image was decoded whole), from the
// codec's own header.
func heifStored(b []byte) (stored, error) {
	items, err := heifItems(b)
	if err != nil {
		return stored{}, err
	}
	var s stored
	found := false
	for _, it := range items {
		s.pixels = max(s.pixels, int64(it.ispeW)*int64(it.ispeH), int64(it.codedW)*int64(it.codedH))
		if it.primary {
			found = true
			s.w, s.h = it.ispeW, it.ispeH
			if s.w == 0 || s.h == 0 {
				s.w, s.h = it.codedW, it.codedH
			}
			if it.rotation == 90 || it.rotation == 270 {
				s.w, s.h = s.h, s.w
			}
		}
	}
	if !found {
		return stored{}, fmt.Errorf("no primary image")
	}
	return s, nil
}

// jpegHeader walks the marker segments up to the first frame header (SOFn)
// and checks that an end-of-image marker follows the first scan.
func jpegHeader(b []byte) (w, h int, err error) {
	i := 2
	for {
		for i < len(b) && b[i] == 0xFF && i+1 < len(b) && b[i+1] == 0xFF {
			i++ // fill bytes
		}
		if i+4 > len(b) {
			return 0, 0, fmt.Errorf("truncated before the frame header")
		}
		if b[i] != 0xFF {
			return 0, 0, fmt.Errorf("bad marker at byte %d", i)
		}
		m := b[i+1]
		if m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7) {
			i += 2 // markers without a length
			continue
		}
		if m == 0xD9 || m == 0xDA {
			return 0, 0, fmt.Errorf("no frame header before the first scan")
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 0, 0, fmt.Errorf("truncated segment at byte %d", i)
		}
		seg := b[i+4 : i+2+n]
		if m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC {
			if len(seg) < 6 {
				return 0, 0, fmt.Errorf("short frame header")
			}
			h = int(binary.BigEndian.Uint16(seg[1:]))
			w = int(binary.BigEndian.Uint16(seg[3:]))
			// Entropy-coded data never holds 0xFF 0xD9 (0xFF is stuffed or
			// starts a restart marker), so an EOI after the frame header
			// belongs to this image, not to an embedded thumbnail.
			if bytes.LastIndex(b, []byte{0xFF, 0xD9}) < i {
				return 0, 0, fmt.Errorf("truncated: no end-of-image marker")
			}
			return w, h, nil
		}
		i += 2 + n
	}
}

// pngHeader reads IHDR and checks for IEND.
func pngHeader(b []byte) (w, h int, err error) {
	if len(b) < 33 || string(b[12:16]) != "IHDR" {
		return 0, 0, fmt.Errorf("no IHDR chunk")
	}
	wu, hu := binary.BigEndian.Uint32(b[16:]), binary.BigEndian.Uint32(b[20:])
	if wu > 1<<31-1 || hu > 1<<31-1 {
		return 0, 0, fmt.Errorf("size %dx%d out of range", wu, hu)
	}
	if i := bytes.LastIndex(b, []byte("IEND")); i < 33 || i+8 > len(b) {
		return 0, 0, fmt.Errorf("truncated: no complete IEND chunk")
	}
	return int(wu), int(hu), nil
}

// gifHeader takes the larger of the logical screen and the first frame's
// extent, and checks that the first frame's data is complete: all a still
// output decodes. The later frames of an output that stays animated are
// checked by frameCount.
func gifHeader(b []byte) (w, h int, err error) {
	if len(b) < 13 {
		return 0, 0, fmt.Errorf("truncated logical screen descriptor")
	}
	w, h = int(binary.LittleEndian.Uint16(b[6:])), int(binary.LittleEndian.Uint16(b[8:]))
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (int(b[10]&7) + 1)
	}
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then sub-blocks
			j, err := skipSubBlocks(b, i+2)
			if err != nil {
				return 0, 0, err
			}
			i = j
		case 0x2C: // image descriptor
			if i+10 > len(b) {
				return 0, 0, fmt.Errorf("truncated image descriptor")
			}
			left, top := int(binary.LittleEndian.Uint16(b[i+1:])), int(binary.LittleEndian.Uint16(b[i+3:]))
			fw, fh := int(binary.LittleEndian.Uint16(b[i+5:])), int(binary.LittleEndian.Uint16(b[i+7:]))
			w, h = max(w, left+fw), max(h, top+fh)
			j := i + 10
			if b[i+9]&0x80 != 0 {
				j += 3 << (int(b[i+9]&7) + 1)
			}
			if _, err := skipSubBlocks(b, j+1); err != nil { // +1: LZW minimum code size
				return 0, 0, err
			}
			return w, h, nil
		default:
			return 0, 0, fmt.Errorf("bad block 0x%02x at byte %d", b[i], i)
		}
	}
	return 0, 0, fmt.Errorf("truncated: no image")
}

func skipSubBlocks(b []byte, i int) (int, error) {
	for {
		if i >= len(b) {
			return 0, fmt.Errorf("truncated data sub-blocks")
		}
		n := int(b[i])
		i++
		if n == 0 {
			return i, nil
		}
		i += n
	}
}

// webpHeader reads the size from the first chunk (VP8, VP8L or VP8X) and
// checks that the RIFF container is complete.
func webpHeader(b []byte) (w, h int, err error) {
	if len(b) < 30 {
		return 0, 0, fmt.Errorf("truncated header")
	}
	if riff := int64(binary.LittleEndian.Uint32(b[4:])) + 8; riff > int64(len(b)) {
		return 0, 0, fmt.Errorf("truncated: RIFF says %d bytes, have %d", riff, len(b))
	}
	c := b[20:]
	switch string(b[12:16]) {
	case "VP8 ":
		if c[3] != 0x9d || c[4] != 0x01 || c[5] != 0x2a {
			return 0, 0, fmt.Errorf("bad VP8 start code")
		}
		return int(binary.LittleEndian.Uint16(c[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(c[8:]) & 0x3fff), nil
	case "VP8L":
		if c[0] != 0x2f {
			return 0, 0, fmt.Errorf("bad VP8L signature")
		}
		v := binary.LittleEndian.Uint32(c[1:])
		return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, nil
	case "VP8X":
		u24 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 | int(p[2])<<16 }
		return u24(c[4:]) + 1, u24(c[7:]) + 1, nil
	}
	return 0, 0, fmt.Errorf("unknown first chunk %q", b[12:16])
}

// findBox returns the body of the first box of the given type in b.
func findBox(b []byte, want string) (body []byte, ok bool) {
	_ = eachBox(b, func(typ string, bb []byte) bool {
		if typ == want {
			body, ok = bb, true
			return false
		}
		return true
	})
	return body, ok
}

// eachBox calls fn for each ISO BMFF box in b until fn returns false.
func eachBox(b []byte, fn func(typ string, body []byte) bool) error {
	for len(b) >= 8 {
		size := uint64(binary.BigEndian.Uint32(b))
		typ, hdr := string(b[4:8]), uint64(8)
		switch size {
		case 0:
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return fmt.Errorf("truncated box %q", typ)
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return fmt.Errorf("box %q: size %d out of range", typ, size)
		}
		if !fn(typ, b[hdr:size]) {
			return nil
		}
		b = b[size:]
	}
	return nil
}
