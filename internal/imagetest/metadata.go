// Package imagetest makes images for tests: files that carry every kind of
// metadata an uploader's camera or editor writes, each item holding a
// marker string, and a check that an output carries none of it; and a
// ThumbHash decoder, to check a placeholder against its image. It is
// imported by tests only.
package imagetest

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Markers are the strings planted in the metadata: no byte sequence of an
// output may contain any of them.
var Markers = []string{
	"RZ-ARTIST-7f3a",     // EXIF IFD0 Artist
	"RZ-MAKERNOTE-91c2",  // EXIF MakerNote
	"RZ-GPSAREA-5d10",    // GPS IFD GPSAreaInformation
	"RZ-COPYRIGHT-0c0c",  // EXIF IFD0 Copyright
	"RZ-XMP-c0de",        // XMP dc:creator
	"RZ-IPTC-b00b",       // IPTC By-line (JPEG APP13)
	"RZ-COMMENT-4242",    // JPEG COM, PNG tEXt
	"RZ-ZTXT-1e1e",       // PNG zTXt (compressed: the marker is checked decompressed too)
	"RZ-THUMBNAIL-EXIF",  // inside the EXIF thumbnail's bytes
	"RZ-UNKNOWN-CHUNK-9", // an unknown WebP chunk
	"RZ-ICC-HIDDEN-3e",   // an ICC profile's ID and reserved header bytes (ICCHiding)
}

// gpsLatitude is 48°51'29.6" as EXIF rationals: its bytes must not survive
// either.
var gpsLatitude = []uint32{48, 1, 51, 1, 296, 10}

// GPSBytes is the big-endian encoding of the planted latitude.
func GPSBytes() []byte {
	var b []byte
	for _, v := range gpsLatitude {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

// Exif returns a big-endian TIFF-structured EXIF block: IFD0 with
// Orientation o, Artist, Copyright, pointers to an Exif IFD (MakerNote,
// UserComment) and a GPS IFD (latitude, area information), and IFD1 with a
// small "thumbnail" that carries a marker.
func Exif(o int) []byte {
	type entry struct {
		tag, typ uint16
		count    uint32
		value    []byte // inline when <= 4 bytes
	}
	ascii := func(s string) []byte { return append([]byte(s), 0) }
	u16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	var out []byte
	// layout: header (8), then IFDs written one after another, each
	// followed by its out-of-line values.
	out = append(out, 'M', 'M', 0, 42, 0, 0, 0, 8)
	writeIFD := func(entries []entry, next func(end uint32) uint32) (start uint32) {
		start = uint32(len(out))
		n := len(entries)
		dataAt := start + 2 + uint32(n)*12 + 4
		var data []byte
		out = append(out, u16(uint16(n))...)
		for _, e := range entries {
			out = append(out, u16(e.tag)...)
			out = append(out, u16(e.typ)...)
			out = append(out, u32(e.count)...)
			if len(e.value) <= 4 {
				v := append([]byte(nil), e.value...)
				for len(v) < 4 {
					v = append(v, 0)
				}
				out = append(out, v...)
			} else {
				out = append(out, u32(dataAt+uint32(len(data)))...)
				data = append(data, e.value...)
				if len(data)%2 == 1 {
					data = append(data, 0)
				}
			}
		}
		end := dataAt + uint32(len(data))
		out = append(out, u32(next(end))...)
		out = append(out, data...)
		return start
	}
	none := func(uint32) uint32 { return 0 }
	lat := GPSBytes()
	area := append([]byte("ASCII\x00\x00\x00"), Markers[2]...)
	maker := append([]byte("RZMK\x00\x01"), Markers[1]...)
	comment := append([]byte("ASCII\x00\x00\x00"), "a user comment"...)
	// The sub-IFDs are written first, after the header, so that IFD0 can
	// point at them; IFD0's offset in the header is patched at the end.
	exifIFD := writeIFD([]entry{{0x927C, 7, uint32(len(maker)), maker}, {0x9286, 7, uint32(len(comment)), comment}}, none)
	gpsIFD := writeIFD([]entry{
		{0x0000, 1, 4, []byte{2, 3, 0, 0}},
		{0x0001, 2, 2, ascii("N")},
		{0x0002, 5, 3, lat},
		{0x001C, 7, uint32(len(area)), area},
	}, none)
	thumb := append([]byte{0xFF, 0xD8, 0xFF, 0xFE, 0, byte(2 + len(Markers[8]))}, Markers[8]...)
	thumb = append(thumb, 0xFF, 0xD9)
	var ifd1 uint32
	ifd0 := writeIFD([]entry{
		{0x0112, 3, 1, u16(uint16(o))},
		{0x013B, 2, uint32(len(Markers[0]) + 1), ascii(Markers[0])},
		{0x8298, 2, uint32(len(Markers[3]) + 1), ascii(Markers[3])},
		{0x8769, 4, 1, u32(exifIFD)},
		{0x8825, 4, 1, u32(gpsIFD)},
	}, func(end uint32) uint32 { ifd1 = end; return end })
	thumbAt := ifd1 + 2 + 2*12 + 4
	writeIFD([]entry{{0x0201, 4, 1, u32(thumbAt)}, {0x0202, 4, 1, u32(uint32(len(thumb)))}}, none)
	out = append(out, thumb...)
	binary.BigEndian.PutUint32(out[4:], ifd0)
	return out
}

// XMP returns an XMP packet whose dc:creator is a marker.
func XMP() []byte {
	return []byte(`<?xpacket begin="` + "\ufeff" + `" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:tiff="http://ns.adobe.com/tiff/1.0/">
<dc:creator><rdf:Seq><rdf:li>` + Markers[4] + `</rdf:li></rdf:Seq></dc:creator><tiff:Orientation>6</tiff:Orientation>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>`)
}

// iptc returns a Photoshop image resource block holding an IPTC record
// whose By-line is a marker.
func iptc() []byte {
	rec := []byte{0x1C, 2, 80}
	rec = binary.BigEndian.AppendUint16(rec, uint16(len(Markers[5])))
	rec = append(rec, Markers[5]...)
	irb := append([]byte("8BIM"), 0x04, 0x04, 0, 0)
	irb = binary.BigEndian.AppendUint32(irb, uint32(len(rec)))
	irb = append(irb, rec...)
	if len(irb)%2 == 1 {
		irb = append(irb, 0)
	}
	return append([]byte("Photoshop 3.0\x00"), irb...)
}

// segment is a JPEG marker segment.
func segment(marker byte, payload []byte) []byte {
	s := []byte{0xFF, marker, 0, 0}
	binary.BigEndian.PutUint16(s[2:], uint16(len(payload)+2))
	return append(s, payload...)
}

// JPEG returns base (a JPEG) with EXIF (orientation o), XMP, IPTC, an ICC
// profile (icc, when not nil) and a comment inserted after its SOI.
func JPEG(base []byte, o int, icc []byte) []byte {
	out := append([]byte{}, base[:2]...)
	out = append(out, segment(0xE1, append([]byte("Exif\x00\x00"), Exif(o)...))...)
	out = append(out, segment(0xE1, append([]byte("http://ns.adobe.com/xap/1.0/\x00"), XMP()...))...)
	out = append(out, segment(0xED, iptc())...)
	if icc != nil {
		out = append(out, segment(0xE2, append([]byte("ICC_PROFILE\x00\x01\x01"), icc...))...)
	}
	out = append(out, segment(0xFE, []byte(Markers[6]))...)
	return append(out, base[2:]...)
}

// chunk is a PNG chunk with its CRC.
func chunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

func deflate(b []byte) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// PNG returns base (a PNG) with eXIf (orientation o), an iCCP profile (icc,
// when not nil), an iTXt XMP packet, a tEXt comment and a zTXt text
// inserted after its IHDR.
func PNG(base []byte, o int, icc []byte) []byte {
	out := append([]byte{}, base[:33]...) // signature and IHDR
	out = append(out, chunk("eXIf", Exif(o))...)
	if icc != nil {
		out = append(out, chunk("iCCP", append([]byte("icc\x00\x00"), deflate(icc)...))...)
	}
	out = append(out, chunk("iTXt", append([]byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00"), XMP()...))...)
	out = append(out, chunk("tEXt", append([]byte("Comment\x00"), Markers[6]...))...)
	out = append(out, chunk("zTXt", append([]byte("Description\x00\x00"), deflate([]byte(Markers[7]))...))...)
	return append(out, base[33:]...)
}

// riffChunk is a WebP (RIFF) chunk, padded to an even length.
func riffChunk(fourcc string, data []byte) []byte {
	c := append([]byte(fourcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	c = append(c, data...)
	if len(data)%2 == 1 {
		c = append(c, 0)
	}
	return c
}

// WebP returns base (a simple lossy WebP of width x height, as libvips
// writes one) rewritten as an extended WebP with ICCP (icc, when not nil),
// EXIF (orientation o), XMP and an unknown chunk.
func WebP(base []byte, width, height, o int, icc []byte) []byte {
	return webp(base, width, height, Exif(o), icc)
}

// WebPWithExif is WebP with the given EXIF block and no profile.
func WebPWithExif(base []byte, width, height int, exif []byte) []byte {
	return webp(base, width, height, exif, nil)
}

func webp(base []byte, width, height int, exif, icc []byte) []byte {
	var image []byte // the base's image chunks, without whatever else it has
	for i := 12; i+8 <= len(base); {
		n := int(binary.LittleEndian.Uint32(base[i+4:]))
		end := min(len(base), i+8+n+n%2)
		if fourcc := string(base[i : i+4]); fourcc == "VP8 " || fourcc == "VP8L" || fourcc == "ALPH" {
			image = append(image, base[i:end]...)
		}
		i = end
	}
	var flags byte = 0x08 | 0x04 // EXIF, XMP
	if icc != nil {
		flags |= 0x20
	}
	vp8x := []byte{flags, 0, 0, 0}
	u24 := func(v int) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16)} }
	vp8x = append(vp8x, u24(width-1)...)
	vp8x = append(vp8x, u24(height-1)...)
	body := append([]byte("WEBP"), riffChunk("VP8X", vp8x)...)
	if icc != nil {
		body = append(body, riffChunk("ICCP", icc)...)
	}
	body = append(body, image...)
	body = append(body, riffChunk("EXIF", exif)...)
	body = append(body, riffChunk("XMP ", XMP())...)
	body = append(body, riffChunk("RZUN", []byte(Markers[9]))...)
	out := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	return append(out, body...)
}

// box is an ISO BMFF box.
func box(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(data)))
	return append(append(b, typ...), data...)
}

// JXL returns codestream (a bare JPEG XL codestream) in the JPEG XL
// container, with an Exif box (orientation o) and an XMP box.
func JXL(codestream []byte, o int) []byte {
	out := []byte{0, 0, 0, 0x0C, 'J', 'X', 'L', ' ', 0x0D, 0x0A, 0x87, 0x0A}
	out = append(out, box("ftyp", []byte("jxl \x00\x00\x00\x00jxl "))...)
	out = append(out, box("Exif", append([]byte{0, 0, 0, 0}, Exif(o)...))...)
	out = append(out, box("xml ", XMP())...)
	return append(out, box("jxlc", codestream)...)
}

// ICCHiding returns the ICC profile icc (whole, its tag table intact)
// with the uploader's metadata hidden where no colour manager looks: a
// marker in its profile ID and in its reserved header bytes, an EXIF
// block (every marker of Exif, the GPS position) between its last tag
// and the end its header declares, and the same block again past that
// end. lcms, libvips and exiftool still read it as the profile it was.
func ICCHiding(icc []byte) []byte {
	hidden := []byte(Markers[10])
	p := append([]byte{}, icc...)
	copy(p[84:100], hidden)  // profile ID
	copy(p[100:128], hidden) // reserved, zero
	for len(p)%4 != 0 {
		p = append(p, 0)
	}
	p = append(p, Exif(1)...) // inside the declared size, outside every tag
	for len(p)%4 != 0 {
		p = append(p, 0)
	}
	binary.BigEndian.PutUint32(p, uint32(len(p)))
	return append(p, Exif(1)...) // past the declared size
}

// JPEGICC returns the ICC profile embedded in a JPEG (its APP2 segments
// joined), or nil.
func JPEGICC(jpg []byte) []byte {
	var icc []byte
	for i := 2; i+4 <= len(jpg) && jpg[i] == 0xFF; {
		m, n := jpg[i+1], int(binary.BigEndian.Uint16(jpg[i+2:]))
		if m == 0xDA || i+2+n > len(jpg) {
			break
		}
		seg := jpg[i+4 : i+2+n]
		if m == 0xE2 && bytes.HasPrefix(seg, []byte("ICC_PROFILE\x00")) && len(seg) > 14 {
			icc = append(icc, seg[14:]...)
		}
		i += 2 + n
	}
	return icc
}

// forbiddenGroups are exiftool's names (family 1) of every metadata group
// an output must not have.
var forbiddenGroups = []string{"IFD0", "IFD1", "ExifIFD", "GPS", "InteropIFD", "MakerNotes", "XMP", "IPTC",
	"Photoshop", "ICC", "ICC-header", "ICC_Profile", "ICC-view", "ICC-meas", "JFIF-EXIF"}

// CheckClean fails t when an output of the service (outs maps a name to
// its bytes) holds a marker, the planted GPS position, or, as exiftool (an
// independent reader) sees it, any EXIF, XMP, IPTC or ICC item, an
// orientation, a comment or a text chunk.
func CheckClean(t testing.TB, outs map[string][]byte) {
	t.Helper()
	CheckCleanBut(t, outs)
}

// rightsMarkers are the markers that are the values of the tags a
// keep=copyright output may carry.
var rightsMarkers = map[string]string{"IFD0:Artist": Markers[0], "IFD0:Copyright": Markers[3]}

// CheckCleanBut is CheckClean for outputs that keep some items on
// purpose: allowed lists exiftool's "Group:Tag" names, or "Group:*" for a
// whole group, that may be there ("IFD0:Artist" and "IFD0:Copyright" then
// allow their planted markers too). Everything else is refused as
// CheckClean refuses it.
func CheckCleanBut(t testing.TB, outs map[string][]byte, allowed ...string) {
	t.Helper()
	ok := func(key string) bool {
		group, _, _ := strings.Cut(key, ":")
		for _, a := range allowed {
			if a == key || a == group+":*" {
				return true
			}
		}
		return false
	}
	for name, out := range outs {
		for _, m := range Markers {
			allowedMarker := false
			for tag, v := range rightsMarkers {
				allowedMarker = allowedMarker || v == m && ok(tag)
			}
			if !allowedMarker && bytes.Contains(out, []byte(m)) {
				t.Errorf("%s: output holds the marker %q", name, m)
			}
		}
		if bytes.Contains(out, GPSBytes()) {
			t.Errorf("%s: output holds the planted GPS latitude", name)
		}
	}
	for name, tags := range Exiftool(t, outs) {
		for k, v := range tags {
			if ok(k) {
				continue
			}
			group, tag, _ := strings.Cut(k, ":")
			for _, g := range forbiddenGroups {
				if group == g || strings.HasPrefix(group, g+"-") {
					t.Errorf("%s: exiftool finds %s = %v", name, k, v)
				}
			}
			if tag == "Orientation" || tag == "Comment" || tag == "Description" || tag == "Artist" ||
				tag == "Copyright" || strings.HasPrefix(tag, "GPS") || strings.HasPrefix(tag, "XML") {
				t.Errorf("%s: exiftool finds %s = %v", name, k, v)
			}
		}
	}
}

// Exiftool returns, for each file of files (names to bytes), every tag
// exiftool reads in it, keyed "Group1:Tag", from one run of exiftool. It
// fails t when exiftool is missing: the checks would be blind without it.
func Exiftool(t testing.TB, files map[string][]byte) map[string]map[string]any {
	t.Helper()
	bin, err := exec.LookPath("exiftool")
	if err != nil {
		t.Fatal("exiftool is missing (Debian: libimage-exiftool-perl); the metadata checks need it")
	}
	dir := t.TempDir()
	args := []string{"-j", "-G1", "-a", "-u", "-b", "--File:all", "--ExifTool:all", "--Composite:all"}
	names := map[string]string{}
	i := 0
	for name, b := range files {
		f := filepath.Join(dir, fmt.Sprint(i))
		i++
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		names[f] = name
		args = append(args, f)
	}
	js, err := exec.Command(bin, args...).Output()
	if err != nil && len(js) == 0 {
		t.Fatalf("exiftool: %v", err)
	}
	var all []map[string]any
	if err := json.Unmarshal(js, &all); err != nil || len(all) != len(files) {
		t.Fatalf("exiftool output (%d files): %v: %s", len(files), err, js)
	}
	out := map[string]map[string]any{}
	for _, tags := range all {
		src, _ := tags["SourceFile"].(string)
		delete(tags, "SourceFile")
		out[names[src]] = tags
	}
	return out
}
