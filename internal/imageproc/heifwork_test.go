package imageproc

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

// costlySeqHeader is a valid sequence header that is slow to parse: its
// timing info ends in a uvlc() of 8000 zero bits, every one of which the
// parser must read to find where the field ends.
func costlySeqHeader() []byte {
	var w bitWriter
	w.put(0, 5)  // seq_profile, still_picture, reduced_still_picture_header
	w.put(1, 1)  // timing_info_present_flag
	w.put(0, 64) // num_units_in_display_tick, time_scale
	w.put(1, 1)  // equal_picture_interval
	w.put(0, 8000)
	w.put(1, 1)  // num_ticks_per_picture_minus_1 = 2^32-1
	w.put(0, 1)  // decoder_model_info_present_flag
	w.put(0, 1)  // initial_display_delay_present_flag
	w.put(0, 5)  // operating_points_cnt_minus_1
	w.put(0, 17) // operating_point_idc[0], seq_level_idx[0]
	w.put(7, 4)  // frame_width_bits_minus_1
	w.put(7, 4)  // frame_height_bits_minus_1
	w.put(15, 8) // max_frame_width_minus_1
	w.put(15, 8) // max_frame_height_minus_1
	w.put(0, 1)  // frame_id_numbers_present_flag
	w.put(0, 8)  // superblock size to enable_order_hint
	w.put(1, 1)  // seq_choose_screen_content_tools
	w.put(1, 1)  // seq_choose_integer_mv
	return obu(obuSequenceHeader, nil, w.trailing())
}

// TestHeifItemsBoundedWork builds small files that make a parser with
// per-item limits only do work out of all proportion to their size, and
// checks that heifItems answers quickly: every item's extent covering the
// same stretch of costly sequence headers, and an item with 65535
// properties that is the source of 4096 auxl references.
func TestHeifItemsBoundedWork(t *testing.T) {
	hdlr := tfull("hdlr", 0, 0, tu32(0), []byte("pict"), make([]byte, 12), []byte{0})
	file := func(boxes ...[]byte) []byte {
		return slices.Concat(tbox("ftyp", []byte("avif"), tu32(0)), tfull("meta", 0, 0, append([][]byte{hdlr}, boxes...)...))
	}

	costly := costlySeqHeader()
	if w, h, err := av1Size(nil, [][]byte{costly}, nil); err != nil || w != 16 || h != 16 {
		t.Fatalf("the costly header reads as %dx%d, %v", w, h, err)
	}
	shared := bytes.Repeat(costly, 100) // 100 KB
	var infes, ilocs []byte
	for i := range maxHeifItems {
		id := tu16(uint16(i + 1))
		infes = append(infes, tfull("infe", 2, 0, id, tu16(0), []byte("av01"), []byte{0})...)
		ilocs = append(ilocs, slices.Concat(id, tu16(1), tu16(0), tu16(1), tu32(0), tu32(uint32(len(shared))))...) // idat
	}
	overlap := file(tfull("iinf", 0, 0, tu16(maxHeifItems), infes), tfull("iloc", 1, 0, tu16(0x4400), tu16(maxHeifItems), ilocs), tbox("idat", shared))

	var ipma []byte
	for range 257 {
		ipma = append(ipma, slices.Concat(tu16(1), []byte{255}, bytes.Repeat([]byte{1}, 255))...)
	}
	exif := func(id uint16) []byte { return tfull("infe", 2, 0, tu16(id), tu16(0), []byte("Exif"), []byte{0}) }
	auxl := file(tfull("iinf", 0, 0, tu16(2), exif(1), exif(2)),
		tfull("iloc", 0, 0, tu16(0x4400), tu16(0)),
		tbox("iprp", tbox("ipco", tfull("auxC", 0, 0, []byte("urn:example:not-alpha\x00"))), tfull("ipma", 0, 0, tu32(257), ipma)),
		tfull("iref", 0, 0, bytes.Repeat(tbox("auxl", tu16(1), tu16(1), tu16(2)), maxHeifItems/2)))

	for _, tt := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"overlapping items", overlap, "codec headers in all"},
		{"auxl references", auxl, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := heifItems(tt.b)
			d := time.Since(start)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
			if d > 3*time.Second {
				t.Errorf("%d bytes took %v", len(tt.b), d)
			}
			t.Logf("%d bytes in %v", len(tt.b), d)
		})
	}
}
