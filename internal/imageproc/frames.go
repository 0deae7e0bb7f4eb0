package imageproc

import (
	"encoding/binary"
	"fmt"
)

// frameCount counts the frames of an animated GIF or WebP by walking its
// blocks, without decoding any: the limits on animations are checked
// before a slot is taken. It is 1 for a still image and for other
// formats. A file broken after its first frame counts the frames before
// the break (decoding them is libvips' business, with fail_on), except a
// GIF frame whose data runs to the end of the file: that frame counts,
// and err, wrapping ErrUndecodable, says it is cut. libvips' GIF loader
// shows such a frame as whatever the frames before left on the screen,
// with no error even with fail_on=truncated, so an output that stays
// animated must not be made from it (a still one decodes the first frame
// alone, which gifHeader checked whole). A WebP cut so fails the RIFF
// size check before.
func frameCount(f Format, b []byte) (n int, err error) {
	switch f {
	case FormatGIF:
		n, cut := gifFrames(b)
		if cut {
			err = fmt.Errorf("%w: %s: truncated: frame %d runs past the end of the file", ErrUndecodable, FormatGIF, n)
		}
		return max(1, n), err
	case FormatWebP:
		return max(1, webpFrames(b)), nil
	}
	return 1, nil
}

// gifFrames counts a GIF's image descriptors; cut reports that the last
// one counted has a colour table or data running past the end of b.
func gifFrames(b []byte) (n int, cut bool) {
	if len(b) < 13 {
		return 0, false
	}
	i := 13
	if b[10]&0x80 != 0 {
		i += 3 << (int(b[10]&7) + 1)
	}
	for i < len(b) {
		switch b[i] {
		case 0x21: // extension: label, then sub-blocks
			j, err := skipSubBlocks(b, i+2)
			if err != nil {
				return n, false
			}
			i = j
		case 0x2C: // image descriptor, local palette, LZW size, data
			n++
			if i+10 > len(b) {
				return n, true
			}
			j := i + 10
			if b[i+9]&0x80 != 0 {
				j += 3 << (int(b[i+9]&7) + 1)
			}
			j, err := skipSubBlocks(b, j+1)
			if err != nil {
				return n, true
			}
			i = j
		default: // the trailer (0x3B), or garbage after the last frame
			return n, false
		}
	}
	return n, false
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

// maxWebPFrames is the most frames of an animated WebP whose header is
// read, whatever the output (MaxFrames, when higher, instead): libvips
// reads every frame's delay in the header, through libwebp's demuxer,
// which finds each frame by walking its list from the first, so the
// header alone takes time quadratic in the frames (40,000 one-pixel
// frames, 1.8 MB: 4.7 s; 10,000: under 0.1 s). Real animations have a
// few hundred.
const maxWebPFrames = 10_000
