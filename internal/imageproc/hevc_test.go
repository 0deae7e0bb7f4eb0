package imageproc

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"testing"
)

func (w *bitWriter) ue(v uint32) {
	n := bits.Len64(uint64(v) + 1)
	w.put(0, n-1)
	w.put(uint64(v)+1, n)
}

// spsSpec is an H.265 SPS for spsNAL to write.
type spsSpec struct {
	layer          int // nuh_layer_id
	subLayers      int // sps_max_sub_layers_minus1
	profile, level [7]bool
	id             uint32
	chroma         uint32
	separate       bool
	w, h           uint32
	window         *[4]uint32 // left, right, top, bottom
}

// spsNAL writes an SPS NAL unit, header and emulation prevention bytes
// included, following H.265's seq_parameter_set_rbsp syntax up to the
// conformance window and a plausible few fields after it. The profile's
// constraint flags are zero, so the payload always needs emulation
// prevention.
func spsNAL(s spsSpec) []byte {
	var w bitWriter
	w.put(0, 4) // sps_video_parameter_set_id
	w.put(uint64(s.subLayers), 3)
	w.put(1, 1) // sps_temporal_id_nesting_flag
	ptl := func() {
		w.put(0b00_0_00001, 8) // profile space, tier, Main
		w.put(0x60000000, 32)  // compatibility flags
		w.put(0b1001, 4)       // progressive, interlaced, non-packed, frame-only
		w.put(0, 43)           // constraint flags
		w.put(0, 1)            // general_inbld_flag
	}
	ptl()
	w.put(93, 8) // general_level_idc
	for i := range s.subLayers {
		w.flag(s.profile[i])
		w.flag(s.level[i])
	}
	if s.subLayers > 0 {
		for i := s.subLayers; i < 8; i++ {
			w.put(0, 2)
		}
	}
	for i := range s.subLayers {
		if s.profile[i] {
			ptl()
		}
		if s.level[i] {
			w.put(90, 8)
		}
	}
	w.ue(s.id)
	w.ue(s.chroma)
	if s.chroma == 3 {
		w.flag(s.separate)
	}
	w.ue(s.w)
	w.ue(s.h)
	w.flag(s.window != nil)
	if s.window != nil {
		for _, v := range s.window {
			w.ue(v)
		}
	}
	w.ue(0) // bit_depth_luma_minus8
	w.ue(0) // bit_depth_chroma_minus8
	w.ue(4) // log2_max_pic_order_cnt_lsb_minus4
	rbsp := w.trailing()
	hdr := []byte{hevcSPS<<1 | byte(s.layer>>5), byte(s.layer&31)<<3 | 1}
	return append(hdr, escapeRBSP(rbsp)...)
}

// escapeRBSP inserts H.265's emulation prevention bytes: a 0x03 after two
// zero bytes when the next byte is 0 to 3.
func escapeRBSP(p []byte) []byte {
	var out []byte
	zeros := 0
	for _, c := range p {
		if zeros == 2 && c <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, c)
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// hvcCBody writes an hvcC property body holding nals in one array, with
// NAL lengths of lengthSize bytes.
func hvcCBody(lengthSize int, nals ...[]byte) []byte {
	b := make([]byte, 21, 64)
	b[0] = 1
	b = append(b, 0xfc|byte(lengthSize-1), 1, 0x80|hevcSPS)
	b = append(b, tu16(uint16(len(nals)))...)
	for _, n := range nals {
		b = append(b, tu16(uint16(len(n)))...)
		b = append(b, n...)
	}
	return b
}

// lengthPrefixed writes NAL units as HEIF item data: each after its
// four-byte length.
func lengthPrefixed(nals ...[]byte) []byte {
	var b []byte
	for _, n := range nals {
		b = append(b, tu32(uint32(len(n)))...)
		b = append(b, n...)
	}
	return b
}

// TestHevcSPSSize checks the SPS fields that move the picture size: the
// sub-layers of profile_tier_level, chroma_format_idc and
// separate_colour_plane_flag (which set how the conformance window scales),
// and the window itself.
func TestHevcSPSSize(t *testing.T) {
	for _, tt := range []struct {
		name string
		s    spsSpec
		w, h int
	}{
		{"4:2:0", spsSpec{chroma: 1, w: 640, h: 480}, 640, 480},
		{"4:2:0 cropped", spsSpec{chroma: 1, w: 336, h: 80, window: &[4]uint32{0, 1, 0, 2}}, 334, 76},
		{"4:2:2 cropped", spsSpec{chroma: 2, w: 336, h: 80, window: &[4]uint32{1, 1, 1, 2}}, 332, 77},
		{"4:4:4 cropped", spsSpec{chroma: 3, w: 336, h: 80, window: &[4]uint32{1, 2, 3, 4}}, 333, 73},
		{"4:4:4 separate planes", spsSpec{chroma: 3, separate: true, w: 336, h: 80, window: &[4]uint32{1, 2, 3, 4}}, 333, 73},
		{"monochrome", spsSpec{chroma: 0, w: 17, h: 9, window: &[4]uint32{0, 1, 0, 1}}, 16, 8},
		{"large id", spsSpec{id: 15, chroma: 1, w: 8192, h: 4320}, 8192, 4320},
		{"one sub-layer, profile and level", spsSpec{subLayers: 1, profile: [7]bool{true}, level: [7]bool{true}, chroma: 1, w: 1000, h: 1002}, 1000, 1002},
		{"three sub-layers, mixed", spsSpec{subLayers: 3, profile: [7]bool{false, true, false}, level: [7]bool{true, false, true}, chroma: 1, w: 64, h: 64, window: &[4]uint32{2, 2, 2, 2}}, 56, 56},
		{"six sub-layers, all", spsSpec{subLayers: 6, profile: [7]bool{true, true, true, true, true, true}, level: [7]bool{true, true, true, true, true, true}, chroma: 1, w: 4000, h: 3000}, 4000, 3000},
		{"six sub-layers, none", spsSpec{subLayers: 6, chroma: 1, w: 40, h: 30}, 40, 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			nal := spsNAL(tt.s)
			if !bytes.Contains(nal, []byte{0, 0, 3}) {
				t.Fatal("the test SPS has no emulation prevention byte")
			}
			w, h, ok, err := hevcSPSSize(nal)
			if err != nil || !ok || w != tt.w || h != tt.h {
				t.Fatalf("got %dx%d %v %v, want %dx%d", w, h, ok, err, tt.w, tt.h)
			}
		})
	}
}

// TestHevcSize checks where hevcSize looks for SPSs (hvcC's arrays and the
// item data, as libheif hands both to the decoder) and what it refuses.
func TestHevcSize(t *testing.T) {
	sps := func(w, h uint32) []byte { return spsNAL(spsSpec{chroma: 1, w: w, h: h}) }
	pps := []byte{34 << 1, 1, 0xc1, 0x72, 0xb0}
	slice := []byte{19 << 1, 1, 0xaf, 0x00, 0x00, 0x03, 0x01}
	for _, tt := range []struct {
		name string
		hvcC []byte
		data []byte
		w, h int
		err  string
	}{
		{"in hvcC", hvcCBody(4, sps(640, 480), pps), lengthPrefixed(slice), 640, 480, ""},
		{"a larger one in the data", hvcCBody(4, sps(100, 100)), lengthPrefixed(sps(8192, 64), pps, slice), 8192, 100, ""},
		{"only in the data", hvcCBody(4), lengthPrefixed(pps, sps(64, 8192), slice), 64, 8192, ""},
		{"a higher layer's is ignored", hvcCBody(4, sps(100, 100), spsNAL(spsSpec{layer: 1, chroma: 1, w: 9000, h: 9000})), lengthPrefixed(slice), 100, 100, ""},
		{"empty NAL in the data", hvcCBody(4, sps(100, 100)), lengthPrefixed(nil, slice), 0, 0, "shorter than its header"},
		{"no SPS", hvcCBody(4, pps), lengthPrefixed(slice), 0, 0, "no H.265 SPS"},
		{"only a higher layer's", hvcCBody(4, spsNAL(spsSpec{layer: 2, chroma: 1, w: 9, h: 9})), nil, 0, 0, "no H.265 SPS"},
		{"2-byte NAL lengths", hvcCBody(2, sps(100, 100)), nil, 0, 0, "2-byte NAL lengths"},
		{"hvcC cut short", hvcCBody(4, sps(100, 100))[:30], nil, 0, 0, "hvcC: truncated"},
		{"NAL past the end", hvcCBody(4, sps(100, 100)), lengthPrefixed(slice)[:8], 0, 0, "7 bytes, 4 left"},
		{"length cut short", hvcCBody(4, sps(100, 100)), append(lengthPrefixed(slice), 0, 0), 0, 0, "cut short"},
		{"window too large", hvcCBody(4, spsNAL(spsSpec{chroma: 1, w: 8192, h: 8192, window: &[4]uint32{0, 4000, 0, 4000}})), nil, 0, 0, "conformance window crops"},
		{"window at the limit", hvcCBody(4, spsNAL(spsSpec{chroma: 1, w: 8192, h: 8192, window: &[4]uint32{16, 16, 0, 32}})), nil, 8128, 8128, ""},
		{"window over the limit", hvcCBody(4, spsNAL(spsSpec{chroma: 1, w: 8192, h: 8192, window: &[4]uint32{16, 17, 0, 0}})), nil, 0, 0, "conformance window crops"},
		{"window as large as the picture", hvcCBody(4, spsNAL(spsSpec{chroma: 0, w: 8, h: 8, window: &[4]uint32{4, 4, 0, 0}})), nil, 0, 0, "cropped by"},
		{"zero width", hvcCBody(4, sps(0, 100)), nil, 0, 0, "cropped by"},
		{"chroma_format_idc 4", hvcCBody(4, spsNAL(spsSpec{chroma: 4, w: 8, h: 8})), nil, 0, 0, "chroma_format_idc"},
		{"id 16", hvcCBody(4, spsNAL(spsSpec{id: 16, chroma: 1, w: 8, h: 8})), nil, 0, 0, "id 16"},
		{"seven sub-layers", hvcCBody(4, spsNAL(spsSpec{subLayers: 7, chroma: 1, w: 8, h: 8})), nil, 0, 0, "8 sub-layers"},
		{"SPS cut short", hvcCBody(4, sps(100, 100)[:10]), nil, 0, 0, "truncated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, h, err := hevcSize(tt.hvcC, split(tt.data, 3), nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || w != tt.w || h != tt.h {
				t.Fatalf("got %dx%d, %v; want %dx%d", w, h, err, tt.w, tt.h)
			}
		})
	}
}

// TestHevcSizeBudget checks that hevcSize spends the budget it is given, one
// unit per NAL unit and one header per SPS, and stops when it runs out.
func TestHevcSizeBudget(t *testing.T) {
	sps := spsNAL(spsSpec{chroma: 1, w: 64, h: 64})
	pps := []byte{34 << 1, 1, 0xc1}
	hvcC, data := hvcCBody(4, sps, pps), lengthPrefixed(pps, sps, pps)
	b := new(heifBudget)
	if _, _, err := hevcSize(hvcC, [][]byte{data}, b); err != nil || b.units != 5 || b.headers != 2 {
		t.Fatalf("spent %+v, %v; want 5 units, 2 headers", *b, err)
	}
	for _, b := range []*heifBudget{{units: maxHeifUnits - 4}, {headers: maxHeifHeaders - 1}} {
		if _, _, err := hevcSize(hvcC, [][]byte{data}, b); err == nil || !strings.Contains(err.Error(), "in all") {
			t.Errorf("budget %+v: err = %v", *b, err)
		}
	}
}

// TestUnescapeRBSP checks emulation prevention removal against the
// escaping the tests use, including runs of zeros and a 0x03 at the end.
func TestUnescapeRBSP(t *testing.T) {
	for _, p := range [][]byte{
		{}, {0, 0}, {0, 0, 0}, {0, 0, 1}, {0, 0, 2, 0, 0, 3}, {0, 0, 0, 0, 0, 0}, {1, 0, 0, 3, 0, 0, 3},
		{0, 0, 4, 0, 0}, bytes.Repeat([]byte{0}, 100),
	} {
		t.Run(fmt.Sprint(p), func(t *testing.T) {
			if got := unescapeRBSP(escapeRBSP(p)); !slices.Equal(got, p) {
				t.Errorf("unescape(escape(%v)) = %v (escaped %v)", p, got, escapeRBSP(p))
			}
		})
	}
	if got := unescapeRBSP([]byte{0, 0, 3, 0, 0, 3, 3}); !slices.Equal(got, []byte{0, 0, 0, 0, 3}) {
		t.Errorf("got %v", got)
	}
}
