package imageproc

import "encoding/binary"

// The VP8X flags that announce metadata chunks (WebP container
// specification); they are cleared with the chunks they announce.
const (
	webpFlagXMP  = 0x04
	webpFlagEXIF = 0x08
)

// cleanWebP returns the WebP in b without its metadata, with the EXIF
// orientation, Artist and Copyright.
//
// It keeps the chunks that make the picture: VP8, VP8L, VP8X, ALPH, ANIM,
// ANMF (whole, with its frame's sub-chunks) and ICCP, each with its pad
// byte. It drops EXIF (the first one, with or without the "Exif\0\0"
// prefix libvips writes, gives the orientation and the rights), XMP and unknown chunks,
// and the bytes after the end the RIFF header gives. When it drops a
// chunk it writes a fresh RIFF header with the new size, and when the VP8X
// chunk announces EXIF or XMP a fresh copy of its first 9 bytes with those
// flags cleared.
//
// It returns an error wrapping ErrUndecodable when b is not a RIFF WEBP
// file, when the RIFF size runs past the end of b (a truncated file) or
// leaves no room for a chunk, when a chunk runs past the RIFF's end, when
// the first chunk is not VP8, VP8L or VP8X, and when a VP8X chunk is
// shorter than its 10 bytes.
func cleanWebP(b []byte) (cleaned, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return cleaned{}, errBroken(FormatWebP, "no RIFF WEBP header")
	}
	riff := binary.LittleEndian.Uint32(b[4:])
	if uint64(riff) > uint64(len(b)-8) {
		return cleaned{}, errBroken(FormatWebP, "truncated: RIFF says %d bytes, have %d", uint64(riff)+8, len(b))
	}
	if riff < 4+8 {
		return cleaned{}, errBroken(FormatWebP, "RIFF size %d holds no chunk", riff)
	}
	end := 8 + int(riff)

	// First pass: check the structure, size what is kept, read the
	// orientation. The RIFF header must be written before the chunks and
	// holds their total size, hence the two passes.
	c := cleaned{orientation: 1}
	size, rewriteFlags, sawExif := 4, false, false // size: the RIFF payload, "WEBP" and the kept chunks
	err := eachWebPChunk(b, end, func(fourcc, payload []byte, from, to int) {
		switch {
		case keepWebPChunk(fourcc):
			size += to - from
			if string(fourcc) == "VP8X" && payload[0]&(webpFlagEXIF|webpFlagXMP) != 0 {
				rewriteFlags = true
			}
		case string(fourcc) == "EXIF" && !sawExif:
			sawExif = true
			c.orientation, c.rights = exifFields(payload)
		}
	})
	if err != nil {
		return cleaned{}, err
	}
	if size == int(riff) && !rewriteFlags {
		c.parts, c.size = [][]byte{b[:end]}, end
		return c, nil
	}

	g := gatherer{src: b}
	if size == int(riff) {
		g.keep(0, 12)
	} else {
		h := append([]byte(nil), b[:12]...)
		binary.LittleEndian.PutUint32(h[4:], uint32(size))
		g.add(h)
	}
	_ = eachWebPChunk(b, end, func(fourcc, payload []byte, from, to int) {
		switch {
		case !keepWebPChunk(fourcc):
		case string(fourcc) == "VP8X" && payload[0]&(webpFlagEXIF|webpFlagXMP) != 0:
			h := append([]byte(nil), b[from:from+9]...) // chunk header and flags
			h[8] &^= webpFlagEXIF | webpFlagXMP
			g.add(h)
			g.keep(from+9, to)
		default:
			g.keep(from, to)
		}
	})
	c.parts, c.size = g.result()
	return c, nil
}

// keepWebPChunk reports whether a chunk is part of the picture rather than
// metadata.
func keepWebPChunk(fourcc []byte) bool {
	switch string(fourcc) {
	case "VP8 ", "VP8L", "VP8X", "ALPH", "ANIM", "ANMF", "ICCP":
		return true
	}
	return false
}

// eachWebPChunk calls fn for each chunk in b[12:end], the body of a RIFF
// WEBP file, with its four-character code, its payload and its extent
// b[from:to], which includes the pad byte that follows an odd-sized
// payload. A last chunk whose pad byte would lie past the RIFF's end is
// taken without it, as it is: whether to accept that is the decoder's
// business. It returns an error wrapping
// ErrUndecodable, having called fn for the chunks before, when a chunk runs
// past end, when the first chunk is not VP8, VP8L or VP8X, and when a
// VP8X chunk is shorter than 10 bytes.
func eachWebPChunk(b []byte, end int, fn func(fourcc, payload []byte, from, to int)) error {
	for i := 12; i < end; {
		if end-i < 8 {
			return errBroken(FormatWebP, "truncated chunk header at byte %d", i)
		}
		fourcc := b[i : i+4]
		n := binary.LittleEndian.Uint32(b[i+4:])
		if uint64(n) > uint64(end-i-8) {
			return errBroken(FormatWebP, "chunk %q at byte %d: size %d runs past the RIFF's end", fourcc, i, n)
		}
		if i == 12 && string(fourcc) != "VP8 " && string(fourcc) != "VP8L" && string(fourcc) != "VP8X" {
			return errBroken(FormatWebP, "first chunk is %q", fourcc)
		}
		if string(fourcc) == "VP8X" && n < 10 {
			return errBroken(FormatWebP, "VP8X chunk of %d bytes", n)
		}
		to := i + 8 + int(n)
		if n%2 == 1 && to < end {
			to++
		}
		fn(fourcc, b[i+8:i+8+int(n)], i, to)
		i = to
	}
	return nil
}
