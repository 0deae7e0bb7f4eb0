package imageproc

import "encoding/binary"

// frameCount counts the frames of an animated GIF or WebP by walking its
// blocks, without decoding any: the limits on animations are checked
// before a slot is taken. It is 1 for a still image and for other
// formats. A file broken after its first frame counts the frames before
// the break (decoding them is libvips' business, with fail_on).
func frameCount(f Format, b []byte) int {
	switch f {
	case FormatGIF:
		return max(1, gifFrames(b))
	case FormatWebP:
		return max(1, webpFrames(b))
	}
	return 1
}

// gifFrames counts a GIF's image descriptors.
func gifFrames(b []byte) int {
	if len(b) < 13 {
		return 0
	}
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (int(b[10]&7) + 1)
	}
	n := 0
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then sub-blocks
			j, err := skipSubBlocks(b, i+2)
			if err != nil {
				return n
			}
			i = j
		case 0x2C: // image descriptor, local palette, LZW size, data
			if i+10 > len(b) {
				return n
			}
			j := i + 10
			if b[i+9]&0x80 != 0 {
				j += 3 << (int(b[i+9]&7) + 1)
			}
			j, err := skipSubBlocks(b, j+1)
			if err != nil {
				return n
			}
			n++
			i = j
		default: // the trailer (0x3B), or garbage after the last frame
			return n
		}
	}
	return n
}

// webpFrames counts the ANMF chunks of an animated WebP (its VP8X flags
// say animation); a still WebP has none.
func webpFrames(b []byte) int {
	if len(b) < 30 || string(b[12:16]) != "VP8X" || b[20]&0x02 == 0 {
		return 0
	}
	n := 0
	for i := 12; i+8 <= len(b); {
		size := int(binary.LittleEndian.Uint32(b[i+4:]))
		if size < 0 || size > len(b) {
			return n
		}
		if string(b[i:i+4]) == "ANMF" {
			n++
		}
		i += 8 + size + size&1
	}
	return n
}
