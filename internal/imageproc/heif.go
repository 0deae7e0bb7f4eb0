package imageproc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// heifItem is one image item of a HEIF/AVIF file.
type heifItem struct {
	id      uint32
	typ     string // "av01", "hvc1", "grid", "iden", ...
	primary bool
	// ispeW and ispeH are what the associated ispe property claims; 0 when
	// none. Nothing checks them against the pixels: a file may lie here.
	ispeW, ispeH int
	// codedW and codedH are what the decoder will produce. av01: the
	// largest of the AV1 sequence headers' max_frame_width_minus_1+1 (and
	// height) and of the sizes the frame headers declare, since a frame
	// header may declare a frame larger than the sequence header's maximum
	// and dav1d does not refuse it. hvc1: the largest SPS's
	// pic_width/height_in_luma_samples minus its conformance window. grid
	// and iovl: the output_width/height of the item's data. 0 otherwise.
	codedW, codedH int
	// rotation is the associated irot's angle, anticlockwise in degrees
	// (0, 90, 180, 270). MIAF allows one irot; libheif applies each one
	// in turn, so with several this is their sum, mod 360 (whether width
	// and height swap is exact; with an imir between two irots the
	// direction is not).
	rotation int
	mirror   bool // an imir is associated
	// alpha: an auxiliary alpha item (auxC urn:mpeg:mpegB:cicp:systems:
	// auxiliary:alpha or urn:mpeg:hevc:2015:auxid:1) refers to this item
	// with an auxl reference.
	alpha bool
}

// The auxiliary types (auxC) that mark an alpha plane, in HEIF and in
// MIAF/AVIF.
var heifAlphaURNs = []string{"urn:mpeg:hevc:2015:auxid:1", "urn:mpeg:mpegB:cicp:systems:auxiliary:alpha"}

// heifItems reads every item of a HEIF or AVIF file, taking the av01 and
// hvc1 sizes from the codec's own headers in the item data (the AV1
// sequence and frame headers, the H.265 SPS) rather than from the ispe
// properties, which libvips trusts until it has decoded the pixels.
// Items are returned in iinf order.
//
// It returns an error, and no items, when the file is malformed anywhere it
// looks: a box that runs past the end (a truncated file), a missing ftyp,
// meta, hdlr ('pict'), iinf or iloc, a primary item that is not declared,
// an ipma index past the properties, more items, properties or extents than
// the limits allow, or an av01, hvc1, grid or iovl item whose data cannot
// be located or parsed (data outside the file, in another file, or built
// from other items; no sequence header or SPS; a header cut short), or
// when the items together hold more OBUs, NAL units or codec headers than
// heifBudget allows.
func heifItems(b []byte) ([]heifItem, error) {
	m, err := readHeifMeta(b)
	if err != nil {
		return nil, err
	}
	index := make(map[uint32]int, len(m.items))
	for i, it := range m.items {
		index[it.id] = i
	}
	if _, ok := index[m.primary]; m.hasPrimary && !ok {
		return nil, fmt.Errorf("primary item %d is not declared", m.primary)
	}
	items := make([]heifItem, 0, len(m.items))
	budget := new(heifBudget)
	for _, info := range m.items {
		it, err := m.item(b, info, budget)
		if err != nil {
			return nil, fmt.Errorf("item %d (%q): %w", info.id, info.typ, err)
		}
		items = append(items, it)
	}
	alpha := map[uint32]bool{} // isAlpha's answers: many refs may come from one item with many properties
	for _, ref := range m.auxl {
		a, ok := alpha[ref.from]
		if !ok {
			a = m.isAlpha(ref.from)
			alpha[ref.from] = a
		}
		if !a {
			continue
		}
		for _, to := range ref.to {
			if i, ok := index[to]; ok {
				items[i].alpha = true
			}
		}
	}
	return items, nil
}

// item builds one heifItem from its properties and, for the types that
// have one, the size in its data, spending budget.
func (m *heifMeta) item(b []byte, info heifInfo, budget *heifBudget) (heifItem, error) {
	it := heifItem{id: info.id, typ: info.typ, primary: m.hasPrimary && info.id == m.primary}
	var av1C, hvcC []byte
	haveIspe := false
	for _, i := range m.assocs[info.id] {
		p := m.props[i-1]
		switch p.typ {
		case "ispe":
			if !haveIspe && len(p.body) >= 12 {
				it.ispeW, it.ispeH = clampInt(binary.BigEndian.Uint32(p.body[4:])), clampInt(binary.BigEndian.Uint32(p.body[8:]))
				haveIspe = true
			}
		case "irot":
			if len(p.body) >= 1 {
				it.rotation = (it.rotation + int(p.body[0]&3)*90) % 360
			}
		case "imir":
			it.mirror = true
		case "av1C":
			if av1C == nil && len(p.body) >= 4 {
				av1C = p.body
			}
		case "hvcC":
			if hvcC == nil {
				hvcC = p.body
			}
		}
	}
	var err error
	switch info.typ {
	case "av01":
		var data [][]byte
		if data, err = m.itemData(b, info.id); err == nil {
			var config []byte
			if av1C != nil {
				config = av1C[4:] // after the four bytes of av1C's own fields come the configOBUs
			}
			it.codedW, it.codedH, err = av1Size(config, data, budget)
		}
	case "hvc1":
		var data [][]byte
		if hvcC == nil {
			err = errors.New("no hvcC property")
		} else if data, err = m.itemData(b, info.id); err == nil {
			it.codedW, it.codedH, err = hevcSize(hvcC, data, budget)
		}
	case "grid", "iovl":
		var data [][]byte
		if data, err = m.itemData(b, info.id); err == nil {
			it.codedW, it.codedH, err = derivedSize(info.typ, data)
		}
	}
	return it, err
}

// isAlpha reports whether item id has an auxC property naming an alpha
// plane.
func (m *heifMeta) isAlpha(id uint32) bool {
	for _, i := range m.assocs[id] {
		p := m.props[i-1]
		if p.typ != "auxC" || len(p.body) < 4 {
			continue
		}
		urn, _, _ := bytes.Cut(p.body[4:], []byte{0})
		for _, a := range heifAlphaURNs {
			if string(urn) == a {
				return true
			}
		}
	}
	return false
}

// derivedSize returns the output size in a grid item's data (version,
// flags, rows-1, columns-1, then width and height, 16 bits each or 32 when
// flags&1) or an iovl item's (version, flags, four 16-bit fill values, then
// the same). It errs on an unknown version and on data cut short.
func derivedSize(typ string, data [][]byte) (w, h int, err error) {
	p := newByteStream(data...).head(2 + 8 + 8)
	if len(p) < 2 {
		return 0, 0, errors.New("truncated data")
	}
	if p[0] != 0 {
		return 0, 0, fmt.Errorf("version %d", p[0])
	}
	r := byteReader{b: p[2:]}
	if typ == "grid" {
		r.skip(2)
	} else {
		r.skip(8)
	}
	if p[1]&1 == 1 {
		w, h = clampInt(r.u32()), clampInt(r.u32())
	} else {
		w, h = int(r.u16()), int(r.u16())
	}
	if r.err != nil {
		return 0, 0, errors.New("truncated data")
	}
	return w, h, nil
}

// clampInt converts a 32-bit size to int without going negative on 32-bit
// platforms.
func clampInt(v uint32) int { return int(min(v, 1<<31-1)) }
