package imageproc

import (
	"encoding/binary"
	"slices"
	"testing"
)

// heifSpec describes a HEIF file for heifBuild, so that tests can write the
// container variants libvips never produces (iloc versions and field sizes,
// idat, split extents, infe version 3, 32-bit ids, irot, imir, grids)
// around codec data taken from files libvips did write.
type heifSpec struct {
	brand       string // major brand: "avif" or "heic"
	primary     uint32
	pitmVersion int
	infeVersion int // 2 or 3
	ilocVersion int // 0, 1 or 2
	// iloc field sizes in bytes (0, 4 or 8); offSize and lenSize must not
	// be 0. With baseSize > 0, every item's base_offset is its first byte
	// and extent offsets are relative to it.
	offSize, lenSize, baseSize, idxSize int
	ipmaVersion                         int
	ipmaWide                            bool // 15-bit property indices
	irefVersion                         int
	extents                             int // split each item's data into this many extents, stored in reverse order
	items                               []specItem
	refs                                []specRef
}

type specItem struct {
	id      uint32
	typ     string
	data    []byte
	idat    bool // store the data in idat (construction method 1)
	method  int  // when not 0, the construction method written (the data is still placed as above)
	dataRef uint16
	props   []specProp
}

type specProp struct {
	typ       string
	body      []byte
	essential bool
}

type specRef struct {
	typ  string
	from uint32
	to   []uint32
}

// defaultSpec returns the layout libheif writes: iloc version 0 with 4-byte
// offsets and lengths, infe version 2, ipma version 0.
func defaultSpec(brand string) heifSpec {
	return heifSpec{brand: brand, primary: 1, infeVersion: 2, offSize: 4, lenSize: 4, extents: 1}
}

func heifBuild(t testing.TB, s heifSpec) []byte {
	t.Helper()
	ftyp := tbox("ftyp", []byte(s.brand), tu32(0), []byte("mif1"), []byte(s.brand), []byte("miaf"))
	meta, _ := s.meta(0) // its size does not depend on the offsets in it
	start := uint64(len(ftyp) + len(meta) + 8)
	meta, mdat := s.meta(start)
	return slices.Concat(ftyp, meta, tbox("mdat", mdat))
}

// meta returns the meta box and the mdat payload for mdat's payload
// starting at file offset start.
func (s heifSpec) meta(start uint64) (meta, mdat []byte) {
	var idat, iloc, infes, ipco, ipma []byte
	nprops := 0
	for _, it := range s.items {
		// iinf
		if s.infeVersion == 3 {
			infes = append(infes, tfull("infe", 3, 0, tu32(it.id), tu16(0), []byte(it.typ), []byte{0})...)
		} else {
			infes = append(infes, tfull("infe", 2, 0, tu16(uint16(it.id)), tu16(0), []byte(it.typ), []byte{0})...)
		}
		// ipco and ipma
		ipma = append(ipma, s.id(s.ipmaVersion, it.id)...)
		ipma = append(ipma, byte(len(it.props)))
		for _, p := range it.props {
			ipco = append(ipco, tbox(p.typ, p.body)...)
			nprops++
			ess := 0
			if p.essential {
				ess = 1
			}
			if s.ipmaWide {
				ipma = append(ipma, tu16(uint16(ess<<15|nprops))...)
			} else {
				ipma = append(ipma, byte(ess<<7|nprops))
			}
		}
		// iloc, with the data in reverse extent order and a junk byte
		// before each extent
		if it.data == nil {
			continue
		}
		iloc = append(iloc, s.id(s.ilocVersion/2, it.id)...) // 32-bit in version 2
		if s.ilocVersion > 0 {
			method := 0
			if it.idat {
				method = 1
			}
			if it.method != 0 {
				method = it.method
			}
			iloc = append(iloc, tu16(uint16(method))...)
		}
		iloc = append(iloc, tu16(it.dataRef)...)
		parts := split(it.data, s.extents)
		offs := make([]uint64, len(parts))
		for i := len(parts) - 1; i >= 0; i-- {
			if it.idat {
				idat = append(idat, 0xEE)
				offs[i] = uint64(len(idat))
				idat = append(idat, parts[i]...)
			} else {
				mdat = append(mdat, 0xEE)
				offs[i] = start + uint64(len(mdat))
				mdat = append(mdat, parts[i]...)
			}
		}
		base := uint64(0)
		if s.baseSize > 0 {
			base = slices.Min(offs)
		}
		iloc = append(iloc, tuint(s.baseSize, base)...)
		iloc = append(iloc, tu16(uint16(len(parts)))...)
		for i, p := range parts {
			if s.ilocVersion > 0 {
				iloc = append(iloc, tuint(s.idxSize, 0)...)
			}
			iloc = append(iloc, tuint(s.offSize, offs[i]-base)...)
			iloc = append(iloc, tuint(s.lenSize, uint64(len(p)))...)
		}
	}
	n := 0
	for _, it := range s.items {
		if it.data != nil {
			n++
		}
	}
	count := tu16(uint16(n))
	if s.ilocVersion == 2 {
		count = tu32(uint32(n))
	}
	sizes := tu16(uint16(s.offSize<<12 | s.lenSize<<8 | s.baseSize<<4 | s.idxSize))
	ilocBox := tfull("iloc", byte(s.ilocVersion), 0, sizes, count, iloc)

	// iinf version 0 has a 16-bit count, version 1 a 32-bit one; use the
	// second with infe version 3.
	iinf := tfull("iinf", 0, 0, tu16(uint16(len(s.items))), infes)
	if s.infeVersion == 3 {
		iinf = tfull("iinf", 1, 0, tu32(uint32(len(s.items))), infes)
	}
	flags := uint32(0)
	if s.ipmaWide {
		flags = 1
	}
	iprp := tbox("iprp", tbox("ipco", ipco), tfull("ipma", byte(s.ipmaVersion), flags, tu32(uint32(len(s.items))), ipma))
	pitm := tfull("pitm", byte(s.pitmVersion), 0, s.id(s.pitmVersion, s.primary))
	hdlr := tfull("hdlr", 0, 0, tu32(0), []byte("pict"), make([]byte, 12), []byte{0})
	boxes := [][]byte{hdlr, pitm, ilocBox, iinf, iprp}
	if len(s.refs) > 0 {
		var refs []byte
		for _, r := range s.refs {
			body := slices.Concat(s.id(s.irefVersion, r.from), tu16(uint16(len(r.to))))
			for _, to := range r.to {
				body = append(body, s.id(s.irefVersion, to)...)
			}
			refs = append(refs, tbox(r.typ, body)...)
		}
		boxes = append(boxes, tfull("iref", byte(s.irefVersion), 0, refs))
	}
	if idat != nil {
		boxes = append(boxes, tbox("idat", idat))
	}
	return tfull("meta", 0, 0, boxes...), mdat
}

// id writes an item id: 16 bits in version 0 of pitm, iref, ipma and iloc
// (0 and 1), 32 bits after.
func (s heifSpec) id(version int, id uint32) []byte {
	if version == 0 {
		return tu16(uint16(id))
	}
	return tu32(id)
}

// split cuts b into at most n non-empty parts.
func split(b []byte, n int) [][]byte {
	n = max(1, min(n, len(b)))
	var parts [][]byte
	for i := range n {
		parts = append(parts, b[i*len(b)/n:(i+1)*len(b)/n])
	}
	return parts
}

func tbox(typ string, parts ...[]byte) []byte {
	body := slices.Concat(parts...)
	return slices.Concat(tu32(uint32(8+len(body))), []byte(typ), body)
}

func tfull(typ string, version byte, flags uint32, parts ...[]byte) []byte {
	return tbox(typ, append([]byte{version, byte(flags >> 16), byte(flags >> 8), byte(flags)}, slices.Concat(parts...)...))
}

func tu16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func tu32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func tuint(size int, v uint64) []byte {
	switch size {
	case 4:
		return tu32(uint32(v))
	case 8:
		return binary.BigEndian.AppendUint64(nil, v)
	}
	return nil
}

// ispeProp, irotProp and imirProp build the properties heifItems reads.
func ispeProp(w, h uint32) specProp {
	return specProp{typ: "ispe", body: slices.Concat(tu32(0), tu32(w), tu32(h))}
}

func irotProp(angle int) specProp {
	return specProp{typ: "irot", body: []byte{byte(angle / 90)}, essential: true}
}

func imirProp(axis byte) specProp { return specProp{typ: "imir", body: []byte{axis}, essential: true} }

// gridData is a grid item's data.
func gridData(rows, cols int, w, h uint32, wide bool) []byte {
	if wide {
		return slices.Concat([]byte{0, 1, byte(rows - 1), byte(cols - 1)}, tu32(w), tu32(h))
	}
	return slices.Concat([]byte{0, 0, byte(rows - 1), byte(cols - 1)}, tu16(uint16(w)), tu16(uint16(h)))
}

// specFrom turns a file libvips wrote back into a heifSpec: its items,
// their data and their properties, in a layout the caller then varies. It
// reads the file with readHeifMeta, so a test that relies on it also checks
// the rebuilt file with libvips.
func specFrom(t testing.TB, b []byte) heifSpec {
	t.Helper()
	m, err := readHeifMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	brand := string(b[8:12])
	s := defaultSpec(brand)
	s.primary = m.primary
	for _, info := range m.items {
		it := specItem{id: info.id, typ: info.typ}
		if parts, err := m.itemData(b, info.id); err == nil {
			it.data = slices.Concat(parts...)
		}
		for _, i := range m.assocs[info.id] {
			p := m.props[i-1]
			it.props = append(it.props, specProp{typ: p.typ, body: p.body})
		}
		s.items = append(s.items, it)
	}
	s.refs = nil
	iref, _ := findBox(mustMeta(t, b), "iref")
	if iref != nil {
		_ = eachBox(iref[4:], func(typ string, body []byte) bool {
			r := byteReader{b: body}
			ref := specRef{typ: typ, from: uint32(r.u16())}
			for range r.u16() {
				ref.to = append(ref.to, uint32(r.u16()))
			}
			s.refs = append(s.refs, ref)
			return true
		})
	}
	return s
}

func mustMeta(t testing.TB, b []byte) []byte {
	t.Helper()
	meta, ok := findBox(b, "meta")
	if !ok {
		t.Fatal("no meta")
	}
	return meta[4:]
}

// withProps returns s with item id's properties changed by edit.
func (s heifSpec) withProps(id uint32, edit func([]specProp) []specProp) heifSpec {
	s.items = slices.Clone(s.items)
	for i := range s.items {
		if s.items[i].id == id {
			s.items[i].props = edit(slices.Clone(s.items[i].props))
		}
	}
	return s
}
