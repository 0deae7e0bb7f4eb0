package imageproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// avifWith returns the AVIF b, as libheif wrote it for libvips, with exif
// as an Exif item that describes the primary image (an infe entry, an
// iloc entry, a cdsc reference; its data in an mdat box of its own at the
// end) and icc as a colr property of type prof, associated with the
// primary image first, before libheif's nclx (readers that take the first
// colr box see the profile). libheif stores metadata only through calls
// that libvips makes when it does not strip, and then libvips rebuilds the
// EXIF block (see keep.go); so the file is rewritten here.
//
// Only the meta box changes; everything after it moves by the growth of
// meta, and the iloc offsets that point there move with it. It errs on
// what libheif does not write: 64-bit box sizes within meta, several ipma
// boxes, item data before meta's end, top-level boxes other than ftyp,
// meta, mdat, free and skip (a sequence's moov has offsets of its own).
func avifWith(b, exif, icc []byte) ([]byte, error) {
	var metaAt, metaEnd int
	found := false
	for i := 0; i < len(b); {
		typ, end, err := topBox(b, i)
		if err != nil {
			return nil, err
		}
		switch typ {
		case "meta":
			if found {
				return nil, errors.New("two meta boxes")
			}
			metaAt, metaEnd, found = i, end, true
		case "ftyp", "mdat", "free", "skip":
		default:
			return nil, fmt.Errorf("top-level box %q", typ)
		}
		i = end
	}
	if !found || metaEnd-metaAt < 12 {
		return nil, errors.New("no meta box")
	}
	m, err := parseAVIFMeta(b[metaAt+12 : metaEnd])
	if err != nil {
		return nil, err
	}
	var exifData []byte
	if exif != nil {
		// The new item's ID must be new to every box that names items, not
		// only to iloc: an item may be declared with no location (a grid,
		// or a file that only claims to be an AVIF).
		hm, err := readHeifMeta(b)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		exifData = append([]byte{0, 0, 0, 0}, exif...) // the TIFF header at offset 0
		if err := m.addExif(max(m.iloc.maxID(), hm.maxItemID())+1, uint32(len(exifData))); err != nil {
			return nil, err
		}
	}
	if icc != nil {
		if err := m.addProfile(icc); err != nil {
			return nil, err
		}
	}
	// The meta box's size does not depend on the offsets it holds: build
	// it once to learn how much it grows, then with the offsets moved.
	oldMeta := metaEnd - metaAt
	probe, err := m.build(b[metaAt:metaAt+12], 0, 0, metaEnd)
	if err != nil {
		return nil, err
	}
	delta := len(probe) - oldMeta
	exifAt := uint64(len(b) + delta + 8) // in the mdat box appended at the end
	meta, err := m.build(b[metaAt:metaAt+12], delta, exifAt, metaEnd)
	if err != nil {
		return nil, err
	}
	out := slices.Concat(b[:metaAt], meta, b[metaEnd:])
	if exifData != nil {
		out = append(out, isoBox("mdat", exifData)...)
	}
	return out, nil
}

// topBox reads the header of the top-level box at b[i:]: its type and end.
func topBox(b []byte, i int) (typ string, end int, err error) {
	if len(b)-i < 8 {
		return "", 0, fmt.Errorf("truncated box at %d", i)
	}
	size := uint64(binary.BigEndian.Uint32(b[i:]))
	typ = string(b[i+4 : i+8])
	switch size {
	case 0:
		size = uint64(len(b) - i)
	case 1:
		if len(b)-i < 16 {
			return "", 0, fmt.Errorf("truncated box at %d", i)
		}
		size = binary.BigEndian.Uint64(b[i+8:])
	}
	if size < 8 || size > uint64(len(b)-i) {
		return "", 0, fmt.Errorf("box %q at %d: size %d out of range", typ, i, size)
	}
	return typ, i + int(size), nil
}

// avifMeta is the content of a meta box, children in order, with the
// boxes avifWith changes parsed.
type avifMeta struct {
	children []avifChild
	primary  uint32
	iloc     *avifIloc
	iinf     *avifChild // version and body kept; entries appended
	iinfN    uint32
	iref     *avifChild
	ipco     [][]byte // property boxes, whole
	ipma     *avifIpma
	newInfe  []byte // an infe to append
	newRef   []byte // a cdsc reference to append to iref
	newProp  []byte // a colr box to append to ipco
}

// avifChild is a box inside meta (or iprp, or ipco): raw is the whole
// box, body what follows its header (and, for the full boxes avifWith
// reads, its version and flags, kept in vf).
type avifChild struct {
	typ  string
	raw  []byte
	full bool
	vf   [4]byte
	body []byte
	kids []avifChild // iprp's
}

func childBoxes(b []byte) ([]avifChild, error) {
	var out []avifChild
	for i := 0; i < len(b); {
		if len(b)-i < 8 {
			return nil, errors.New("truncated box in meta")
		}
		n := int(binary.BigEndian.Uint32(b[i:]))
		if n < 8 || n > len(b)-i {
			return nil, fmt.Errorf("box in meta: size %d out of range", n)
		}
		c := avifChild{typ: string(b[i+4 : i+8]), raw: b[i : i+n], body: b[i+8 : i+n]}
		switch c.typ {
		case "pitm", "iloc", "iinf", "iref", "ipma":
			if len(c.body) < 4 {
				return nil, fmt.Errorf("%s box too short", c.typ)
			}
			c.full = true
			copy(c.vf[:], c.body)
			c.body = c.body[4:]
		}
		out = append(out, c)
		i += n
	}
	return out, nil
}

func parseAVIFMeta(b []byte) (*avifMeta, error) {
	kids, err := childBoxes(b)
	if err != nil {
		return nil, err
	}
	m := &avifMeta{children: kids}
	sawPitm := false
	for k := range m.children {
		c := &m.children[k]
		r := reader{b: c.body}
		switch c.typ {
		case "pitm":
			sawPitm = true
			m.primary = r.uint(idSize(c.vf[0]))
		case "iloc":
			if m.iloc, err = parseIloc(c.vf[0], c.body); err != nil {
				return nil, err
			}
		case "iinf":
			m.iinf = c
			m.iinfN = r.uint(idSize(c.vf[0]))
			// Entries are appended after the body: it must end where
			// its last box does, or they would be read from inside
			// whatever trails it.
			if len(c.body) < idSize(c.vf[0]) {
				return nil, errors.New("iinf box too short")
			}
			if _, err := childBoxes(c.body[idSize(c.vf[0]):]); err != nil {
				return nil, fmt.Errorf("iinf: %w", err)
			}
		case "iref":
			m.iref = c
			if _, err := childBoxes(c.body); err != nil { // as iinf's
				return nil, fmt.Errorf("iref: %w", err)
			}
		case "iprp":
			if c.kids, err = childBoxes(c.body); err != nil {
				return nil, err
			}
			for j := range c.kids {
				switch k := &c.kids[j]; k.typ {
				case "ipco":
					if m.ipco != nil {
						return nil, errors.New("two ipco boxes")
					}
					props, err := childBoxes(k.body)
					if err != nil {
						return nil, err
					}
					m.ipco = [][]byte{}
					for _, p := range props {
						m.ipco = append(m.ipco, p.raw)
					}
				case "ipma":
					if m.ipma != nil {
						return nil, errors.New("several ipma boxes")
					}
					if m.ipma, err = parseIpma(k.vf, k.body); err != nil {
						return nil, err
					}
				}
			}
		}
		if r.err != nil {
			return nil, fmt.Errorf("%s box: %w", c.typ, r.err)
		}
	}
	if !sawPitm || m.iloc == nil || m.iinf == nil || m.ipco == nil || m.ipma == nil {
		return nil, errors.New("meta lacks pitm, iloc, iinf, ipco or ipma")
	}
	return m, nil
}

// idSize is the size of an item ID in a full box of this version: 16 bits
// in version 0 of pitm, iinf (a count there), iref and ipma, else 32.
func idSize(version byte) int {
	if version == 0 {
		return 2
	}
	return 4
}

// addExif adds an Exif item of n bytes, with ID id (unused; 0 when the
// IDs ran out), describing the primary image.
func (m *avifMeta) addExif(id, n uint32) error {
	if id == 0 || id > 0xFFFF && m.iloc.version < 2 {
		return errors.New("no item ID left")
	}
	m.iloc.items = append(m.iloc.items, ilocItem{id: id, exif: true, extents: []ilocExtent{{n: uint64(n)}}})
	// infe version 2 (16-bit ID) or 3: ID, protection index 0, type, empty name.
	infe := []byte{2, 0, 0, 0}
	if id > 0xFFFF {
		infe[0] = 3
		infe = binary.BigEndian.AppendUint32(infe, id)
	} else {
		infe = binary.BigEndian.AppendUint16(infe, uint16(id))
	}
	infe = append(infe, 0, 0, 'E', 'x', 'i', 'f', 0)
	m.newInfe = isoBox("infe", infe)
	if m.iinfN == 0xFFFF && m.iinf.vf[0] == 0 {
		return errors.New("iinf full")
	}
	m.iinfN++
	// A cdsc ("content describes") reference from the Exif item to the
	// primary image.
	version := byte(0)
	if m.iref != nil {
		version = m.iref.vf[0]
	} else if id > 0xFFFF || m.primary > 0xFFFF {
		version = 1
	}
	var ref []byte
	if version == 0 {
		if id > 0xFFFF || m.primary > 0xFFFF {
			return errors.New("iref version 0 cannot name the items")
		}
		ref = binary.BigEndian.AppendUint16(nil, uint16(id))
		ref = binary.BigEndian.AppendUint16(ref, 1)
		ref = binary.BigEndian.AppendUint16(ref, uint16(m.primary))
	} else {
		ref = binary.BigEndian.AppendUint32(nil, id)
		ref = binary.BigEndian.AppendUint16(ref, 1)
		ref = binary.BigEndian.AppendUint32(ref, m.primary)
	}
	m.newRef = isoBox("cdsc", ref)
	if m.iref == nil {
		m.children = append(m.children, avifChild{typ: "iref", full: true, vf: [4]byte{version}})
		m.iref = &m.children[len(m.children)-1]
		m.iinf = m.child("iinf")
	}
	return nil
}

// child returns the child of type typ (after children moved).
func (m *avifMeta) child(typ string) *avifChild {
	for k := range m.children {
		if m.children[k].typ == typ {
			return &m.children[k]
		}
	}
	return nil
}

// addProfile adds a colr property of type prof holding icc, associated
// with the primary image before its other properties.
func (m *avifMeta) addProfile(icc []byte) error {
	m.newProp = isoBox("colr", append([]byte("prof"), icc...))
	index := len(m.ipco) + 1
	if index > 0x7FFF {
		return errors.New("ipco full")
	}
	return m.ipma.associateFirst(m.primary, uint16(index))
}

// build writes the meta box (header is its 12-byte header, size and
// version rewritten) with the additions, every iloc offset of data at or
// after oldEnd (meta's end in the old file) moved by delta, and the Exif
// item at exifAt.
func (m *avifMeta) build(header []byte, delta int, exifAt uint64, oldEnd int) ([]byte, error) {
	var body []byte
	for _, c := range m.children {
		var box []byte
		switch c.typ {
		case "iloc":
			ib, err := m.iloc.build(delta, exifAt, uint64(oldEnd))
			if err != nil {
				return nil, err
			}
			box = fullBox("iloc", c.vf, ib)
		case "iinf":
			var n []byte
			if c.vf[0] == 0 {
				n = binary.BigEndian.AppendUint16(nil, uint16(m.iinfN))
			} else {
				n = binary.BigEndian.AppendUint32(nil, m.iinfN)
			}
			old := c.body[idSize(c.vf[0]):]
			box = fullBox("iinf", c.vf, slices.Concat(n, old, m.newInfe))
		case "iref":
			box = fullBox("iref", c.vf, slices.Concat(c.body, m.newRef))
		case "iprp":
			var kids []byte
			for _, k := range c.kids {
				switch k.typ {
				case "ipco":
					kids = append(kids, isoBox("ipco", slices.Concat(slices.Concat(m.ipco...), m.newProp))...)
				case "ipma":
					kids = append(kids, m.ipma.build()...)
				default:
					kids = append(kids, k.raw...)
				}
			}
			box = isoBox("iprp", kids)
		default:
			box = c.raw
		}
		body = append(body, box...)
	}
	out := slices.Concat(header, body)
	if uint64(len(out)) > 1<<32-1 {
		return nil, errors.New("meta too large")
	}
	binary.BigEndian.PutUint32(out, uint32(len(out)))
	return out, nil
}

func fullBox(typ string, vf [4]byte, body []byte) []byte {
	return isoBox(typ, slices.Concat(vf[:], body))
}

// avifIloc is an iloc box, parsed.
type avifIloc struct {
	version                               byte
	offSize, lenSize, baseSize, indexSize int
	items                                 []ilocItem
}

type ilocItem struct {
	id      uint32
	method  uint16 // construction method (versions 1 and 2)
	dataRef uint16
	base    uint64
	extents []ilocExtent
	exif    bool // the Exif item being added: its offset is exifAt
}

type ilocExtent struct{ index, off, n uint64 }

func parseIloc(version byte, b []byte) (*avifIloc, error) {
	if version > 2 {
		return nil, fmt.Errorf("iloc version %d", version)
	}
	r := reader{b: b}
	l := &avifIloc{version: version}
	sizes := r.uint(2)
	l.offSize, l.lenSize, l.baseSize = int(sizes>>12), int(sizes>>8&15), int(sizes>>4&15)
	if version > 0 {
		l.indexSize = int(sizes & 15)
	}
	for _, n := range []int{l.offSize, l.lenSize, l.baseSize, l.indexSize} {
		if n != 0 && n != 4 && n != 8 {
			return nil, fmt.Errorf("iloc field size %d", n)
		}
	}
	count := r.uint(2 + 2*int(version/2))
	for k := uint32(0); k < count && r.err == nil; k++ {
		it := ilocItem{id: r.uint(2 + 2*int(version/2))}
		if version > 0 {
			it.method = uint16(r.uint(2) & 15)
		}
		it.dataRef = uint16(r.uint(2))
		it.base = r.uint64(l.baseSize)
		n := r.uint(2)
		for e := uint32(0); e < n && r.err == nil; e++ {
			var x ilocExtent
			x.index = r.uint64(l.indexSize)
			x.off = r.uint64(l.offSize)
			x.n = r.uint64(l.lenSize)
			it.extents = append(it.extents, x)
		}
		l.items = append(l.items, it)
	}
	if r.err != nil {
		return nil, fmt.Errorf("iloc: %w", r.err)
	}
	return l, nil
}

func (l *avifIloc) maxID() uint32 {
	var id uint32
	for _, it := range l.items {
		id = max(id, it.id)
	}
	return id
}

// build writes the iloc body: offsets of data in the file at or after
// oldEnd moved by delta; the Exif item's at exifAt.
func (l *avifIloc) build(delta int, exifAt, oldEnd uint64) ([]byte, error) {
	w := writer{}
	w.uint(2, uint64(l.offSize<<12|l.lenSize<<8|l.baseSize<<4|l.indexSize))
	idBytes := 2 + 2*int(l.version/2)
	w.uint(idBytes, uint64(len(l.items)))
	for _, it := range l.items {
		base, extents := it.base, slices.Clone(it.extents)
		switch {
		case it.exif:
			if l.offSize > 0 {
				extents[0].off = exifAt
			} else {
				base = exifAt
			}
			if l.lenSize == 0 {
				extents[0].n = 0 // no length field: to the end of the file, where it is
			}
		case it.method == 0 && it.dataRef == 0:
			for _, x := range extents {
				if at := base + x.off; at < oldEnd {
					return nil, fmt.Errorf("item %d: data at %d, before the end of meta", it.id, at)
				}
			}
			if l.baseSize > 0 {
				base += uint64(delta)
			} else {
				for k := range extents {
					extents[k].off += uint64(delta)
				}
			}
		}
		w.uint(idBytes, uint64(it.id))
		if l.version > 0 {
			w.uint(2, uint64(it.method))
		}
		w.uint(2, uint64(it.dataRef))
		w.uint(l.baseSize, base)
		w.uint(2, uint64(len(extents)))
		for _, x := range extents {
			w.uint(l.indexSize, x.index)
			w.uint(l.offSize, x.off)
			w.uint(l.lenSize, x.n)
		}
	}
	return w.b, w.err
}

// avifIpma is an ipma box, parsed: each item's associations, in order.
type avifIpma struct {
	vf      [4]byte
	entries []ipmaEntry
}

type ipmaEntry struct {
	id     uint32
	assocs []uint16 // the essential bit (0x8000) and the property index
}

func parseIpma(vf [4]byte, b []byte) (*avifIpma, error) {
	m := &avifIpma{vf: vf}
	r := reader{b: b}
	wide := vf[3]&1 == 1
	count := r.uint(4)
	for k := uint32(0); k < count && r.err == nil; k++ {
		e := ipmaEntry{id: r.uint(idSize(vf[0]))}
		n := r.uint(1)
		for a := uint32(0); a < n && r.err == nil; a++ {
			if wide {
				e.assocs = append(e.assocs, uint16(r.uint(2)))
			} else {
				v := r.uint(1)
				e.assocs = append(e.assocs, uint16(v&0x80)<<8|uint16(v&0x7F))
			}
		}
		m.entries = append(m.entries, e)
	}
	if r.err != nil {
		return nil, fmt.Errorf("ipma: %w", r.err)
	}
	return m, nil
}

// associateFirst puts property index first among item id's associations,
// not essential.
func (m *avifIpma) associateFirst(id uint32, index uint16) error {
	for k := range m.entries {
		if m.entries[k].id == id {
			if len(m.entries[k].assocs) == 255 {
				return errors.New("ipma: the primary image has 255 properties")
			}
			m.entries[k].assocs = slices.Insert(m.entries[k].assocs, 0, index)
			return nil
		}
	}
	if m.vf[0] == 0 && id > 0xFFFF {
		return errors.New("ipma version 0 cannot name the primary image")
	}
	m.entries = append(m.entries, ipmaEntry{id: id, assocs: []uint16{index}})
	return nil
}

func (m *avifIpma) build() []byte {
	vf := m.vf
	for _, e := range m.entries {
		for _, a := range e.assocs {
			if a&0x7FFF > 0x7F {
				vf[3] |= 1 // 15-bit indices
			}
		}
	}
	w := writer{}
	w.uint(4, uint64(len(m.entries)))
	for _, e := range m.entries {
		w.uint(idSize(vf[0]), uint64(e.id))
		w.uint(1, uint64(len(e.assocs)))
		for _, a := range e.assocs {
			if vf[3]&1 == 1 {
				w.uint(2, uint64(a))
			} else {
				w.uint(1, uint64(a>>8&0x80|a&0x7F))
			}
		}
	}
	return fullBox("ipma", vf, w.b)
}

// reader reads big-endian unsigned fields; past the end it reads zeros
// and remembers the fault.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uint64(n int) uint64 {
	if n == 0 {
		return 0
	}
	if len(r.b) < n {
		r.err = errors.New("truncated")
		r.b = nil
		return 0
	}
	var v uint64
	for _, c := range r.b[:n] {
		v = v<<8 | uint64(c)
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) uint(n int) uint32 {
	v := r.uint64(n)
	if v > 1<<32-1 {
		r.err = errors.New("value out of range")
	}
	return uint32(v)
}

// writer writes big-endian unsigned fields of 0, 1, 2, 4 or 8 bytes, and
// remembers a value too large for its field.
type writer struct {
	b   []byte
	err error
}

func (w *writer) uint(n int, v uint64) {
	if n < 8 && v>>(8*n) != 0 {
		w.err = fmt.Errorf("%d does not fit in %d bytes", v, n)
	}
	for i := n - 1; i >= 0; i-- {
		w.b = append(w.b, byte(v>>(8*i)))
	}
}
