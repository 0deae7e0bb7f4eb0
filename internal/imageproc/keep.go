package imageproc

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// What keep selects. libvips 8.14 strips all or nothing, and when it
// writes metadata it rebuilds EXIF through libexif: it adds the tags EXIF
// requires (resolution, versions, an orientation) and drops every tag
// that is not also a libvips field. So every output is stripped of every
// field (rz_strip), and what an output keeps is written back here, in Go,
// into the file the encoder made: the rights as an EXIF block of two tags
// (exifBlock), a profile as the format carries one. JPEG XL's profile is
// the one exception: it lives inside the codestream, and libvips' saver
// writes it (withProfile).
//
// A profile is kept by not converting the pixels: when an output keeps
// one, the source is decoded with its pixels left in its RGB profile's
// space (source.tagged), and each output that does not keep it is
// converted to sRGB as its first step (toOutputSpace), from the 8-bit
// decode.

// keepsAnyICC reports whether an output asks to keep the profile.
func keepsAnyICC(opts []Options) bool {
	return slices.ContainsFunc(opts, func(o Options) bool { return o.Keep == KeepICC })
}

// keepsICC reports whether output p is written in the source's profile:
// keep=icc, a source with an RGB profile, a format that can carry it (not
// GIF), and a still image. Otherwise its pixels are converted to sRGB; an
// animation's frames are decoded in sRGB (source.frames).
func (s *source) keepsICC(p plan) bool {
	return p.options.Keep == KeepICC && s.icc != nil && p.format.info().keeps && !p.animate
}

// to8bit is the last conversion of a decode: to 8-bit sRGB, or, when an
// output keeps the profile and the source has an RGB one, to 8 bits in
// the profile's own space, with the profile kept for the encoder (s.icc):
// the profile alone, without the bytes a file can hide in and around it
// (iccProfileOnly). CMYK and grey profiles are always converted.
func (s *source) to8bit(im vimage) (vimage, error) {
	if s.tagged {
		if icc := iccProfileOnly(im.rgbProfile()); icc != nil {
			s.icc = icc
			return im.to8bitAsIs()
		}
	}
	return im.to8bit()
}

// toOutputSpace is an output's first step: pixels decoded in the source's
// profile, for another output that keeps it, are converted to sRGB. An
// animation's frames are in sRGB already.
func (s *source) toOutputSpace(im vimage, p plan) (vimage, error) {
	if s.icc == nil || s.keepsICC(p) || p.animate {
		return im, nil
	}
	return im.to8bit() // through the profile the pixels still carry
}

// keptProfile is the profile whose space output p's pixels are in when it
// keeps one, nil when they are sRGB: what a watermark over it is
// converted into.
func (s *source) keptProfile(p plan) []byte {
	if s.keepsICC(p) {
		return s.icc
	}
	return nil
}

// withProfile returns a new reference to im, carrying the kept profile
// when the encoder is the one that writes it (JPEG XL).
func (s *source) withProfile(im vimage, p plan) (vimage, error) {
	if p.format == FormatJXL && s.keepsICC(p) {
		return im.withProfile(s.icc)
	}
	return im.ref(), nil
}

// jobRights returns the rights a job carries to its worker: nil unless an
// output keeps them (keep=copyright) and the source has some. read are
// those the cleaners read; a HEIF or AVIF, which is not cleaned in Go,
// has them in its Exif item.
func jobRights(opts []Options, f Format, read exifRights, b []byte) *exifRights {
	if !slices.ContainsFunc(opts, func(o Options) bool { return o.Keep == KeepCopyright }) {
		return nil
	}
	if f == FormatAVIF || f == FormatHEIF {
		read = heifRights(b)
	}
	if read.empty() {
		return nil
	}
	return &read
}

// maxHeifExif bounds the Exif item heifRights reads: its extents are
// joined, and a camera's is some tens of KB.
const maxHeifExif = 1 << 20

// heifRights reads the rights in the first Exif item of a HEIF or AVIF
// file, whose data start with the offset of the TIFF header in what
// follows. Any fault of the file gives none: the decoder judges it.
func heifRights(b []byte) exifRights {
	m, err := readHeifMeta(b)
	if err != nil {
		return exifRights{}
	}
	for _, it := range m.items {
		if it.typ != "Exif" {
			continue
		}
		parts, err := m.itemData(b, it.id)
		n := 0
		for _, p := range parts {
			n += len(p)
		}
		if err != nil || n > maxHeifExif || n < 4 {
			return exifRights{}
		}
		data := bytes.Join(parts, nil)
		off := uint64(binary.BigEndian.Uint32(data))
		if off > uint64(len(data)-4) {
			return exifRights{}
		}
		_, r := exifFields(data[4+off:])
		return r
	}
	return exifRights{}
}

// writeKept writes the metadata output p keeps into its file (parts, as
// the encoder and cleaning left it): the rights for keep=copyright, the
// profile for keep=icc. Without either, parts are returned as they are.
func (s *source) writeKept(p plan, parts [][]byte) ([][]byte, error) {
	var exif, icc []byte
	if p.options.Keep == KeepCopyright && s.rights != nil && p.format.info().keeps {
		exif = s.rights.exifBlock()
	}
	if s.keepsICC(p) && p.format != FormatJXL {
		icc = s.icc
	}
	if exif == nil && icc == nil {
		return parts, nil
	}
	b := bytes.Join(parts, nil)
	var err error
	switch p.format {
	case FormatJPEG:
		b, err = jpegWith(b, exif, icc)
	case FormatPNG:
		b, err = pngWith(b, exif, icc)
	case FormatWebP:
		b, err = webpWith(b, exif, icc, p.Width, p.Height)
	case FormatAVIF:
		b, err = avifWith(b, exif, icc)
	case FormatJXL:
		b, err = jxlWith(b, exif)
	}
	if err != nil {
		return nil, fmt.Errorf("write kept metadata into own %s: %w", p.format, err)
	}
	return [][]byte{b}, nil
}

// jpegMaxICC is the most profile one APP2 segment holds: 65535 bytes, less
// the length (2), "ICC_PROFILE\0" (12) and the chunk's number and count (2).
const jpegMaxICC = 65535 - 2 - 14

// jpegWith returns the JPEG b with an APP1 segment holding exif and APP2
// segments holding icc (ICC.1's "Embedding ICC profiles in JPEG files")
// after its SOI. libvips writes no APP0 when it strips.
func jpegWith(b, exif, icc []byte) ([]byte, error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != jpegSOI {
		return nil, errors.New("no start-of-image marker")
	}
	out := slices.Clip(b[:2])
	if exif != nil {
		payload := append(slices.Clone(exifPrefix), exif...)
		if len(payload) > 65533 {
			return nil, fmt.Errorf("EXIF block of %d bytes", len(exif))
		}
		out = append(out, jpegSegment(jpegAPP1, payload)...)
	}
	n := (len(icc) + jpegMaxICC - 1) / jpegMaxICC
	if n > 255 {
		return nil, fmt.Errorf("ICC profile of %d bytes", len(icc))
	}
	for i := range n {
		chunk := icc[i*jpegMaxICC : min(len(icc), (i+1)*jpegMaxICC)]
		payload := append([]byte("ICC_PROFILE\x00"), byte(i+1), byte(n))
		out = append(out, jpegSegment(jpegAPP2, append(payload, chunk...))...)
	}
	return append(out, b[2:]...), nil
}

func jpegSegment(marker byte, payload []byte) []byte {
	s := []byte{0xFF, marker}
	s = binary.BigEndian.AppendUint16(s, uint16(len(payload)+2))
	return append(s, payload...)
}

// pngWith returns the PNG b with an iCCP chunk holding icc and an eXIf
// chunk holding exif after its IHDR, where the PNG specification puts
// them (before PLTE and IDAT).
func pngWith(b, exif, icc []byte) ([]byte, error) {
	const ihdrEnd = 8 + 8 + 13 + 4
	if !bytes.HasPrefix(b, pngSignature) || len(b) < ihdrEnd || string(b[12:16]) != "IHDR" || binary.BigEndian.Uint32(b[8:]) != 13 {
		return nil, errors.New("no PNG signature and IHDR")
	}
	out := slices.Clip(b[:ihdrEnd])
	if icc != nil {
		var z bytes.Buffer
		w := zlib.NewWriter(&z)
		if _, err := w.Write(icc); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
		// A profile name (Latin-1, 1-79 bytes), its NUL, compression method 0.
		out = append(out, pngChunkOf("iCCP", append([]byte("icc\x00\x00"), z.Bytes()...))...)
	}
	if exif != nil {
		out = append(out, pngChunkOf("eXIf", exif)...)
	}
	return append(out, b[ihdrEnd:]...), nil
}

// pngChunkOf is a PNG chunk: length, type, data, and the CRC of type and data.
func pngChunkOf(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(c[4:]))
}

// The VP8X flags of the chunks keep writes.
const (
	webpFlagICC   = 0x20
	webpFlagAlpha = 0x10
)

// webpWith returns the WebP b (as libvips wrote it, then cleaned) as an
// extended WebP that carries icc and exif: a VP8X chunk announcing them
// (made for a canvas of w x h when b is a simple WebP), ICCP right after
// it, and EXIF at the end, the order of the container specification.
func webpWith(b, exif, icc []byte, w, h int) ([]byte, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return nil, errors.New("no RIFF WEBP header")
	}
	end := 8 + uint64(binary.LittleEndian.Uint32(b[4:]))
	if end > uint64(len(b)) {
		return nil, errors.New("truncated")
	}
	var vp8x []byte
	var rest []byte // the other chunks, each padded to an even size
	alpha := false
	err := eachWebPChunk(b, int(end), func(fourcc, payload []byte, _, _ int) {
		switch string(fourcc) {
		case "VP8X":
			vp8x = slices.Clone(payload[:10])
		case "ICCP", "EXIF", "XMP ":
			// replaced: the output keeps what it keeps, and only that
		default:
			// A lossless image says in its header whether it uses alpha:
			// 14 bits of width and of height, then that bit.
			if string(fourcc) == "VP8L" && len(payload) >= 5 && binary.LittleEndian.Uint32(payload[1:])>>28&1 == 1 {
				alpha = true
			}
			rest = append(rest, riffChunk(string(fourcc), payload)...)
		}
	})
	if err != nil {
		return nil, err
	}
	if vp8x == nil {
		vp8x = make([]byte, 10)
		putUint24LE(vp8x[4:], uint32(w-1))
		putUint24LE(vp8x[7:], uint32(h-1))
		if alpha {
			vp8x[0] |= webpFlagAlpha
		}
	}
	body := []byte("WEBP")
	if icc != nil {
		vp8x[0] |= webpFlagICC
	}
	if exif != nil {
		vp8x[0] |= webpFlagEXIF
	}
	body = append(body, riffChunk("VP8X", vp8x)...)
	if icc != nil {
		body = append(body, riffChunk("ICCP", icc)...)
	}
	body = append(body, rest...)
	if exif != nil {
		body = append(body, riffChunk("EXIF", exif)...)
	}
	if uint64(len(body)) > 1<<32-2 {
		return nil, errors.New("too large for RIFF")
	}
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...), nil
}

// riffChunk is a RIFF chunk, padded to an even size.
func riffChunk(fourcc string, data []byte) []byte {
	c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	c = append(c, data...)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

func putUint24LE(b []byte, v uint32) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }

// jxlWith returns the JPEG XL b with exif in an Exif box: a bare
// codestream (what libvips 8.14 writes) goes into the container (ISO/IEC
// 18181-2: the signature box, ftyp, then the boxes); in a container the
// box goes after ftyp.
func jxlWith(b, exif []byte) ([]byte, error) {
	if exif == nil {
		return b, nil
	}
	exifBox := isoBox("Exif", append([]byte{0, 0, 0, 0}, exif...)) // the TIFF header at offset 0
	switch {
	case bytes.HasPrefix(b, jxlCodestream):
		out := slices.Clone(jxlContainerSignature)
		out = append(out, isoBox("ftyp", []byte("jxl \x00\x00\x00\x00jxl "))...)
		out = append(out, exifBox...)
		return append(out, isoBox("jxlc", b)...), nil
	case bytes.HasPrefix(b, jxlContainerSignature) && len(b) >= 20 && string(b[16:20]) == "ftyp":
		n := uint64(binary.BigEndian.Uint32(b[12:]))
		if n < 8 || 12+n > uint64(len(b)) {
			return nil, errors.New("bad ftyp box")
		}
		at := 12 + int(n)
		out := slices.Concat(b[:at], exifBox, b[at:])
		return out, nil
	}
	return nil, errors.New("neither a JPEG XL codestream nor a container")
}

// isoBox is an ISO BMFF box with a 32-bit size.
func isoBox(typ string, body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	return append(append(b, typ...), body...)
}
