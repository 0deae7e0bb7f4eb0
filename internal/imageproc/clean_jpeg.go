package imageproc

import (
	"bytes"
	"encoding/binary"
)

// JPEG marker codes (ITU-T T.81 table B.1) that the cleaner treats by name.
const (
	jpegSOI  = 0xD8
	jpegEOI  = 0xD9
	jpegSOS  = 0xDA
	jpegDQT  = 0xDB
	jpegDNL  = 0xDC
	jpegDRI  = 0xDD
	jpegDHT  = 0xC4
	jpegDAC  = 0xCC
	jpegTEM  = 0x01
	jpegAPP0 = 0xE0
	jpegAPP1 = 0xE1
	jpegAPP2 = 0xE2
	jpegAPPE = 0xEE // APP14
	jpegAPPF = 0xEF // APP15
	jpegCOM  = 0xFE
)

// cleanJPEG returns the JPEG in b without its metadata, with the EXIF
// orientation, Artist and Copyright, and the number of scans (SOS markers).
//
// It keeps SOI; APP0 when it is JFIF or JFXX; APP2 when it is an ICC
// profile chunk; APP14 when it is Adobe's (it says how CMYK and YCCK are
// stored); DQT, DHT, DAC, DRI, DNL, every SOFn, each SOS with its
// entropy-coded data; and EOI. It drops APP1 (EXIF and XMP; the first EXIF
// segment gives the orientation and the rights), every other APPn (FlashPix, MPF,
// Photoshop and IPTC, ...), COM, restart and TEM markers outside a scan,
// and everything after EOI (appended images, polyglot payloads).
//
// It returns an error wrapping ErrUndecodable when b does not start with
// SOI, when the data ends before EOI (a truncated file: a scan, a segment
// or a marker runs to the end of b), when a scan comes before any frame
// header or EOI before any scan, and, before the first scan, when
// anything but a marker follows a segment, or a marker libjpeg refuses
// appears (DHP, EXP, JPGn, reserved codes, a second SOI, a length under 2).
// After the first scan it is as lenient as libvips: stray bytes between
// segments are dropped, as libjpeg skips them, and a marker libjpeg
// refuses ends the cleaned file, closed with a fresh 2-byte EOI.
//
// Its work is linear in len(b); entropy-coded data is searched with
// bytes.IndexByte, so counting the scans of a large photograph is cheap.
func cleanJPEG(b []byte) (cleaned, error) {
	if len(b) < 2 || b[0] != 0xFF || b[1] != jpegSOI {
		return cleaned{}, errBroken(FormatJPEG, "no start-of-image marker")
	}
	c := cleaned{orientation: 1}
	g := gatherer{src: b}
	g.keep(0, 2)
	sawFrame, sawExif := false, false
	i := 2
	for {
		if i >= len(b) {
			return cleaned{}, errBroken(FormatJPEG, "truncated: no end-of-image marker")
		}
		start := i
		if b[i] == 0xFF {
			i++
			for i < len(b) && b[i] == 0xFF {
				i++ // fill bytes
			}
			if i >= len(b) {
				return cleaned{}, errBroken(FormatJPEG, "truncated marker at byte %d", start)
			}
		}
		if b[start] != 0xFF || b[i] == 0x00 {
			if c.scans == 0 {
				return cleaned{}, errBroken(FormatJPEG, "no marker at byte %d", start)
			}
			// Stray bytes after a segment: libjpeg skips them to the
			// next marker with a warning, and so are they dropped here.
			next, ok := jpegScanEnd(b, i)
			if !ok {
				return cleaned{}, errBroken(FormatJPEG, "truncated: no end-of-image marker")
			}
			i = next
			continue
		}
		m := b[i]
		i++
		switch {
		case m == jpegEOI:
			if c.scans == 0 {
				return cleaned{}, errBroken(FormatJPEG, "end of image before any scan")
			}
			g.keep(start, i)
			c.parts, c.size = g.result()
			return c, nil
		case m == jpegTEM || m >= 0xD0 && m <= 0xD7:
			continue // no length; outside a scan they mean nothing
		case m == jpegSOI || !knownJPEGMarker(m):
			if c.scans == 0 {
				return cleaned{}, errBroken(FormatJPEG, "unsupported marker 0x%02X at byte %d", m, start)
			}
			return closeJPEG(c, &g), nil
		}
		if len(b)-i < 2 {
			return cleaned{}, errBroken(FormatJPEG, "truncated segment at byte %d", start)
		}
		n := int(binary.BigEndian.Uint16(b[i:]))
		if n > len(b)-i {
			return cleaned{}, errBroken(FormatJPEG, "truncated segment 0x%02X at byte %d", m, start)
		}
		if n < 2 {
			if c.scans == 0 {
				return cleaned{}, errBroken(FormatJPEG, "segment 0x%02X at byte %d: length %d", m, start, n)
			}
			return closeJPEG(c, &g), nil
		}
		payload, end := b[i+2:i+n], i+n
		i = end
		switch {
		case m == jpegSOS:
			if !sawFrame {
				return cleaned{}, errBroken(FormatJPEG, "scan before any frame header")
			}
			next, ok := jpegScanEnd(b, end)
			if !ok {
				return cleaned{}, errBroken(FormatJPEG, "truncated: no end-of-image marker")
			}
			g.keep(start, next)
			c.scans++
			i = next
		case isJPEGSOF(m):
			sawFrame = true
			g.keep(start, end)
		case m == jpegDQT, m == jpegDHT, m == jpegDAC, m == jpegDRI, m == jpegDNL:
			g.keep(start, end)
		case m == jpegAPP0:
			if bytes.HasPrefix(payload, []byte("JFIF\x00")) || bytes.HasPrefix(payload, []byte("JFXX\x00")) {
				g.keep(start, end)
			}
		case m == jpegAPP1:
			if !sawExif && bytes.HasPrefix(payload, exifPrefix) {
				sawExif = true
				c.orientation, c.rights = exifFields(payload)
			}
		case m == jpegAPP2:
			if bytes.HasPrefix(payload, []byte("ICC_PROFILE\x00")) {
				g.keep(start, end)
			}
		case m == jpegAPPE:
			if bytes.HasPrefix(payload, []byte("Adobe")) {
				g.keep(start, end)
			}
		default:
			// other APPn and COM: metadata, dropped
		}
	}
}

// closeJPEG ends the cleaned file with a fresh EOI where the walk met, after
// the first scan, a marker libjpeg refuses: an unknown code, a second SOI,
// a length under 2. libjpeg stops reading a scan's data at any marker and
// fails when it reads that one, yet libvips has the picture of a
// single-scan file by then and shows it, so such a file (corrupt pixel
// data, say) is not refused here; what follows the marker is dropped.
func closeJPEG(c cleaned, g *gatherer) cleaned {
	g.add([]byte{0xFF, jpegEOI})
	c.parts, c.size = g.result()
	return c
}

// knownJPEGMarker reports whether libjpeg reads a marker with a length
// (frames, tables, scans, APPn, COM) rather than failing on it (DHP, EXP,
// JPG, JPGn and the reserved codes).
func knownJPEGMarker(m byte) bool {
	switch {
	case m >= 0xC0 && m <= 0xCF:
		return m != 0xC8 // JPG
	case m >= jpegSOS && m <= jpegDRI, m >= jpegAPP0 && m <= jpegAPPF, m == jpegCOM:
		return true
	}
	return false
}

// isJPEGSOF reports whether m is a start-of-frame marker, SOF0..SOF15,
// whose codes share 0xC0..0xCF with DHT, JPG and DAC.
func isJPEGSOF(m byte) bool {
	return m >= 0xC0 && m <= 0xCF && m != jpegDHT && m != 0xC8 && m != jpegDAC
}

// jpegScanEnd returns the offset of the marker that ends the entropy-coded
// data starting at b[i]: the first 0xFF (with any fill bytes after it)
// followed by a code other than 0x00 (a stuffed 0xFF data byte) or a
// restart marker RST0..RST7, which continue the scan. ok is false when the
// data runs to the end of b.
func jpegScanEnd(b []byte, i int) (end int, ok bool) {
	for {
		k := bytes.IndexByte(b[i:], 0xFF)
		if k < 0 {
			return 0, false
		}
		p := i + k
		for {
			q := p + 1
			for q < len(b) && b[q] == 0xFF {
				q++
			}
			if q >= len(b) {
				return 0, false
			}
			if m := b[q]; m != 0x00 && (m < 0xD0 || m > 0xD7) {
				return p, true
			}
			// A stuffed byte or restart marker. Another 0xFF right after
			// it is taken here rather than by a call to IndexByte, so
			// that data of nothing but stuffed bytes stays cheap.
			p = q + 1
			if p >= len(b) || b[p] != 0xFF {
				break
			}
		}
		i = p
	}
}
