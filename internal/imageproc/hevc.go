package imageproc

import (
	"errors"
	"fmt"
)

const (
	hevcSPS = 33 // SPS_NUT
	// maxSPSBytes bounds the part of an SPS NAL copied to parse it: the
	// fields up to the conformance window take under 150 bytes even with
	// seven sub-layers and emulation prevention bytes.
	maxSPSBytes = 512
	// maxConfWindow bounds the luma samples a conformance window may crop
	// from a dimension. Encoders pad a picture to a multiple of the coding
	// block (8) or tree block (at most 64) and crop the padding away; the
	// decoder allocates the whole coded picture, so a window cropping more
	// would let a small output hide a large allocation.
	maxConfWindow = 64
)

// hevcSize returns the output size of the largest SPS the decoder is
// given for an hvc1 item: libheif hands libde265 the NAL units of hvcC's
// arrays followed by those of the item's data, each NAL with a four-byte
// length, so both are read. The size is pic_width/height_in_luma_samples
// minus the conformance window. It errs when hvcC is malformed or declares
// NAL lengths other than four bytes (libheif reads four regardless), when a
// NAL runs past the end, when there is no SPS of the base layer, and when
// an SPS is malformed or crops more than maxConfWindow, and when the budget
// (shared by the items of a file; nil for a fresh one) runs out.
func hevcSize(hvcC []byte, data [][]byte, budget *heifBudget) (w, h int, err error) {
	if budget == nil {
		budget = new(heifBudget)
	}
	r := byteReader{b: hvcC}
	r.skip(21)
	if n := r.u8()&3 + 1; r.err == nil && n != 4 {
		return 0, 0, fmt.Errorf("hvcC: %d-byte NAL lengths", n)
	}
	arrays := int(r.u8())
	use := func(nal []byte) error {
		if err := budget.unit(); err != nil {
			return err
		}
		if len(nal) >= 1 && nal[0]>>1&0x3f == hevcSPS {
			if err := budget.header(); err != nil {
				return err
			}
		}
		sw, sh, ok, err := hevcSPSSize(nal)
		if err != nil {
			return err
		}
		if ok {
			w, h = max(w, sw), max(h, sh)
		}
		return nil
	}
	for range arrays {
		r.skip(1) // array_completeness, NAL_unit_type: the NAL's own header is what the decoder reads
		n := int(r.u16())
		for i := 0; i < n && r.err == nil; i++ {
			nal := r.bytes(int(r.u16()))
			if r.err != nil {
				break
			}
			if err := use(nal[:min(len(nal), maxSPSBytes)]); err != nil {
				return 0, 0, fmt.Errorf("hvcC: %w", err)
			}
		}
	}
	if r.err != nil {
		return 0, 0, fmt.Errorf("hvcC: %w", r.err)
	}
	s := newByteStream(data...)
	for s.left > 0 {
		at := s.pos()
		p := s.head(4)
		if len(p) < 4 || !s.skip(4) {
			return 0, 0, fmt.Errorf("NAL length at byte %d cut short", at)
		}
		n := uint64(p[0])<<24 | uint64(p[1])<<16 | uint64(p[2])<<8 | uint64(p[3])
		if n > s.left {
			return 0, 0, fmt.Errorf("NAL at byte %d: %d bytes, %d left", at, n, s.left)
		}
		if err := use(s.head(int(min(n, maxSPSBytes)))); err != nil {
			return 0, 0, fmt.Errorf("NAL at byte %d: %w", at, err)
		}
		s.skip(n)
	}
	if w == 0 {
		return 0, 0, errors.New("no H.265 SPS")
	}
	return w, h, nil
}

// hevcSPSSize returns the output size an SPS NAL unit declares; ok is false
// for other NAL units and for SPSs of layers above the base one, which
// libde265 drops. It errs when the NAL is cut short or its fields are out of
// range.
func hevcSPSSize(nal []byte) (w, h int, ok bool, err error) {
	if len(nal) < 2 {
		return 0, 0, false, errors.New("NAL unit shorter than its header")
	}
	if typ, layer := nal[0]>>1&0x3f, (nal[0]&1)<<5|nal[1]>>3; typ != hevcSPS || layer != 0 {
		return 0, 0, false, nil
	}
	r := bitReader{b: unescapeRBSP(nal[2:])}
	r.skip(4) // sps_video_parameter_set_id
	subLayers := int(r.u(3))
	r.skip(1) // sps_temporal_id_nesting_flag
	if subLayers > 6 {
		return 0, 0, false, fmt.Errorf("SPS: %d sub-layers", subLayers+1)
	}
	// profile_tier_level(1, sps_max_sub_layers_minus1)
	r.skip(88 + 8) // general profile (space, tier, idc, flags) and general_level_idc
	var profile, level [6]bool
	for i := range subLayers {
		profile[i], level[i] = r.flag(), r.flag()
	}
	if subLayers > 0 {
		r.skip(2 * (8 - subLayers)) // reserved_zero_2bits
	}
	for i := range subLayers {
		if profile[i] {
			r.skip(88)
		}
		if level[i] {
			r.skip(8)
		}
	}
	if id := r.ue(); id > 15 {
		return 0, 0, false, fmt.Errorf("SPS: id %d", id)
	}
	chroma := r.ue()
	if chroma > 3 {
		return 0, 0, false, fmt.Errorf("SPS: chroma_format_idc %d", chroma)
	}
	if chroma == 3 {
		r.skip(1) // separate_colour_plane_flag: 4:4:4 either way, so no scaling
	}
	pw, ph := uint64(r.ue()), uint64(r.ue())
	var left, right, top, bottom uint64
	if r.flag() { // conformance_window_flag
		left, right, top, bottom = uint64(r.ue()), uint64(r.ue()), uint64(r.ue()), uint64(r.ue())
	}
	if r.err != nil {
		return 0, 0, false, fmt.Errorf("SPS: %w", r.err)
	}
	subW, subH := uint64(1), uint64(1) // monochrome, 4:4:4 (with or without separate planes)
	switch chroma {
	case 1:
		subW, subH = 2, 2
	case 2:
		subW = 2
	}
	cropW, cropH := subW*(left+right), subH*(top+bottom)
	if cropW > maxConfWindow || cropH > maxConfWindow {
		return 0, 0, false, fmt.Errorf("SPS: conformance window crops %dx%d of %dx%d", cropW, cropH, pw, ph)
	}
	if pw <= cropW || ph <= cropH || pw > 1<<31-1 || ph > 1<<31-1 {
		return 0, 0, false, fmt.Errorf("SPS: picture %dx%d cropped by %dx%d", pw, ph, cropW, cropH)
	}
	return int(pw - cropW), int(ph - cropH), true, nil
}

// unescapeRBSP returns p without its emulation prevention bytes (the 0x03
// in each 0x00 0x00 0x03), copying only when there is one.
func unescapeRBSP(p []byte) []byte {
	var out []byte
	zeros, last := 0, 0
	for i, c := range p {
		if zeros >= 2 && c == 3 {
			out = append(out, p[last:i]...)
			last, zeros = i+1, 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if out == nil {
		return p
	}
	return append(out, p[last:]...)
}
