package imageproc

import (
	"errors"
	"fmt"
)

// Limits on what a HEIF file may declare. Cameras write tens of items (a
// grid of tiles, a thumbnail, Exif, depth and gain maps); these leave room
// for the largest grids while bounding the memory and time a hostile file
// can ask for, since every count in the format is untrusted.
const (
	maxHeifItems   = 4096
	maxHeifProps   = 4096
	maxHeifAssocs  = 1 << 16 // item-property associations, over all items
	maxHeifExtents = 1 << 14 // iloc extents, over all items
)

// heifMeta is what the meta box says about a file's items.
type heifMeta struct {
	primary    uint32
	hasPrimary bool
	items      []heifInfo         // iinf, in order
	locs       map[uint32]heifLoc // iloc
	props      []heifProp         // ipco, in order: property index i is props[i-1]
	assocs     map[uint32][]int   // ipma: item -> property indices, in order
	auxl       []heifRef          // iref auxl: from an auxiliary image to its master(s)
	idat       []byte
}

type heifInfo struct {
	id  uint32
	typ string
}

// heifLoc is an item's iloc entry. Extents are relative to the file
// (construction method 0) or to the idat box's body (method 1).
type heifLoc struct {
	method  int
	dataRef uint16
	base    uint64
	extents []heifExtent
}

type heifExtent struct{ off, n uint64 } // n == 0: to the end of the container

type heifProp struct {
	typ  string
	body []byte
}

type heifRef struct {
	from uint32
	to   []uint32
}

// readHeifMeta walks the top-level boxes, which must start with ftyp and
// must all lie within b (a box running past the end means the file is
// truncated), and parses the meta box. It errs when a box it needs is
// missing or malformed, when the handler is not 'pict', and when the file
// declares more than the limits above.
func readHeifMeta(b []byte) (*heifMeta, error) {
	var meta []byte
	first, found := true, false
	err := eachBox(b, func(typ string, body []byte) bool {
		if first && typ != "ftyp" {
			return false
		}
		first = false
		if typ == "meta" && !found {
			meta, found = body, true
		}
		return true
	})
	switch {
	case err != nil:
		return nil, err
	case first:
		return nil, errors.New("no ftyp box first")
	case !found:
		return nil, errors.New("no meta box")
	case len(meta) < 4:
		return nil, errors.New("short meta box")
	}
	m := &heifMeta{locs: map[uint32]heifLoc{}, assocs: map[uint32][]int{}}
	var hdlr, pitm, iloc, iinf, iprp, iref, idat []byte
	boxes := map[string]*[]byte{"hdlr": &hdlr, "pitm": &pitm, "iloc": &iloc, "iinf": &iinf, "iprp": &iprp, "iref": &iref, "idat": &idat}
	if err := eachBox(meta[4:], func(typ string, body []byte) bool {
		if p, ok := boxes[typ]; ok && *p == nil {
			*p = body[:len(body):len(body)] // non-nil even when empty
		}
		return true
	}); err != nil {
		return nil, fmt.Errorf("meta: %w", err)
	}
	if len(hdlr) < 12 {
		return nil, errors.New("no hdlr box")
	}
	if h := string(hdlr[8:12]); h != "pict" {
		return nil, fmt.Errorf("handler %q is not pict", h)
	}
	m.idat = idat
	steps := []struct {
		name  string
		body  []byte
		parse func([]byte) error
	}{
		{"pitm", pitm, m.readPitm},
		{"iinf", iinf, m.readIinf},
		{"iloc", iloc, m.readIloc},
		{"iprp", iprp, m.readIprp},
		{"iref", iref, m.readIref},
	}
	for _, s := range steps {
		if s.body == nil {
			if s.name == "iinf" || s.name == "iloc" {
				return nil, fmt.Errorf("no %s box", s.name)
			}
			continue
		}
		if err := s.parse(s.body); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return m, nil
}

// readPitm reads the primary item's id (16 bits in version 0, 32 after).
func (m *heifMeta) readPitm(b []byte) error {
	r := byteReader{b: b}
	if r.u8() == 0 {
		r.skip(3)
		m.primary = uint32(r.u16())
	} else {
		r.skip(3)
		m.primary = r.u32()
	}
	m.hasPrimary = true
	return r.err
}

// readIinf reads each infe's item id and type. Versions 0 and 1 of infe
// carry no type; such items are kept with an empty one.
func (m *heifMeta) readIinf(b []byte) error {
	r := byteReader{b: b}
	if r.u8() == 0 {
		r.skip(3 + 2)
	} else {
		r.skip(3 + 4)
	}
	if r.err != nil {
		return r.err
	}
	seen := map[uint32]bool{}
	var ierr error
	err := eachBox(b[r.off:], func(typ string, body []byte) bool {
		if typ != "infe" {
			return true
		}
		if len(m.items) == maxHeifItems {
			ierr = fmt.Errorf("more than %d items", maxHeifItems)
			return false
		}
		e := byteReader{b: body}
		v := e.u8()
		e.skip(3)
		var it heifInfo
		switch {
		case v < 2:
			it.id = uint32(e.u16())
		case v == 2:
			it.id = uint32(e.u16())
			e.skip(2)
			it.typ = string(e.bytes(4))
		default:
			it.id = e.u32()
			e.skip(2)
			it.typ = string(e.bytes(4))
		}
		if e.err != nil {
			ierr = fmt.Errorf("infe: %w", e.err)
			return false
		}
		if seen[it.id] {
			ierr = fmt.Errorf("item %d declared twice", it.id)
			return false
		}
		seen[it.id] = true
		m.items = append(m.items, it)
		return true
	})
	return errors.Join(err, ierr)
}

// readIloc reads every item's location: versions 0, 1 and 2, field sizes of
// 0, 4 or 8 bytes, construction methods as declared (checked when the data
// is read).
func (m *heifMeta) readIloc(b []byte) error {
	r := byteReader{b: b}
	v := r.u8()
	r.skip(3)
	if v > 2 {
		return fmt.Errorf("version %d", v)
	}
	sizes := r.u16()
	offSize, lenSize, baseSize, idxSize := int(sizes>>12), int(sizes>>8&15), int(sizes>>4&15), int(sizes&15)
	switch {
	case v == 0:
		idxSize = 0
	case v == 1 && idxSize != 0:
		// The specification has an extent index in versions 1 and 2, but
		// libheif before 1.17 reads it in version 2 only: the two readings
		// place the extents differently, so one file could show this
		// parser one image and the decoder another.
		return errors.New("version 1 with an index_size: read differently by libheif")
	}
	for _, s := range []int{offSize, lenSize, baseSize, idxSize} {
		if s != 0 && s != 4 && s != 8 {
			return fmt.Errorf("field size %d", s)
		}
	}
	var count uint32
	if v < 2 {
		count = uint32(r.u16())
	} else {
		count = r.u32()
	}
	if count > maxHeifItems {
		return fmt.Errorf("more than %d items", maxHeifItems)
	}
	extents := 0
	for i := uint32(0); i < count && r.err == nil; i++ {
		var id uint32
		if v < 2 {
			id = uint32(r.u16())
		} else {
			id = r.u32()
		}
		var loc heifLoc
		if v > 0 {
			loc.method = int(r.u16() & 15)
		}
		loc.dataRef = r.u16()
		loc.base = r.uint(baseSize)
		n := int(r.u16())
		if extents += n; extents > maxHeifExtents {
			return fmt.Errorf("more than %d extents", maxHeifExtents)
		}
		for range n {
			r.uint(idxSize)
			e := heifExtent{off: r.uint(offSize), n: r.uint(lenSize)}
			if r.err != nil {
				break
			}
			loc.extents = append(loc.extents, e)
		}
		if _, dup := m.locs[id]; dup && r.err == nil {
			return fmt.Errorf("item %d located twice", id)
		}
		m.locs[id] = loc
	}
	return r.err
}

// readIprp reads the property container (ipco) and every association box
// (ipma, versions 0 and 1, 7- or 15-bit indices). Several ipma boxes are
// allowed and merged. An index beyond the properties is an error; index 0
// means "no property" and is dropped.
func (m *heifMeta) readIprp(b []byte) error {
	ipco, ok := findBox(b, "ipco")
	if !ok {
		return errors.New("no ipco box")
	}
	if err := eachBox(ipco, func(typ string, body []byte) bool {
		m.props = append(m.props, heifProp{typ, body})
		return len(m.props) <= maxHeifProps
	}); err != nil {
		return fmt.Errorf("ipco: %w", err)
	}
	if len(m.props) > maxHeifProps {
		return fmt.Errorf("more than %d properties", maxHeifProps)
	}
	total := 0
	var ierr error
	err := eachBox(b, func(typ string, body []byte) bool {
		if typ != "ipma" {
			return true
		}
		r := byteReader{b: body}
		v := r.u8()
		r.skip(2)
		wide := r.u8()&1 == 1
		count := r.u32()
		for i := uint32(0); i < count && r.err == nil; i++ {
			var id uint32
			if v < 1 {
				id = uint32(r.u16())
			} else {
				id = r.u32()
			}
			n := int(r.u8())
			if total += n; total > maxHeifAssocs {
				ierr = fmt.Errorf("more than %d property associations", maxHeifAssocs)
				return false
			}
			for range n {
				var idx int
				if wide {
					idx = int(r.u16() & 0x7fff) // the top bit is "essential"
				} else {
					idx = int(r.u8() & 0x7f)
				}
				if r.err != nil {
					break
				}
				if idx > len(m.props) {
					ierr = fmt.Errorf("item %d: property %d of %d", id, idx, len(m.props))
					return false
				}
				if idx > 0 {
					m.assocs[id] = append(m.assocs[id], idx)
				}
			}
		}
		if r.err != nil {
			ierr = fmt.Errorf("ipma: %w", r.err)
			return false
		}
		return true
	})
	return errors.Join(err, ierr)
}

// readIref reads the item references (16-bit ids in version 0, 32-bit in
// version 1), keeping the auxl ones; dimg, thmb, cdsc and the rest are
// checked for well-formedness only.
func (m *heifMeta) readIref(b []byte) error {
	r := byteReader{b: b}
	v := r.u8()
	r.skip(3)
	if r.err != nil {
		return r.err
	}
	id := func(r *byteReader) uint32 {
		if v == 0 {
			return uint32(r.u16())
		}
		return r.u32()
	}
	var ierr error
	kept := 0
	err := eachBox(b[4:], func(typ string, body []byte) bool {
		e := byteReader{b: body}
		ref := heifRef{from: id(&e)}
		if typ == "auxl" {
			if kept++; kept > maxHeifItems {
				ierr = fmt.Errorf("more than %d auxl references", maxHeifItems)
				return false
			}
		}
		n := int(e.u16())
		for range n {
			to := id(&e)
			if e.err != nil {
				break
			}
			if typ == "auxl" {
				if kept++; kept > maxHeifItems {
					ierr = fmt.Errorf("more than %d auxl references", maxHeifItems)
					return false
				}
				ref.to = append(ref.to, to)
			}
		}
		if e.err != nil {
			ierr = fmt.Errorf("%s: %w", typ, e.err)
			return false
		}
		if typ == "auxl" {
			m.auxl = append(m.auxl, ref)
		}
		return true
	})
	return errors.Join(err, ierr)
}

// maxItemID is the largest item ID that any of the boxes names.
func (m *heifMeta) maxItemID() uint32 {
	id := m.primary
	for _, it := range m.items {
		id = max(id, it.id)
	}
	for k := range m.locs {
		id = max(id, k)
	}
	for k := range m.assocs {
		id = max(id, k)
	}
	for _, r := range m.auxl {
		id = max(id, r.from)
		for _, to := range r.to {
			id = max(id, to)
		}
	}
	return id
}
