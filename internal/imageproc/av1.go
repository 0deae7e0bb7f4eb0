package imageproc

import (
	"errors"
	"fmt"
)

// AV1 OBU types (AV1 specification, section 6.2.2).
const (
	obuSequenceHeader = 1
	obuFrameHeader    = 3
	obuFrame          = 6
)

const (
	// Only the start of a header OBU is parsed; these bound the copy a
	// header spanning two extents needs. A sequence header with 32
	// operating points and every option is under 400 bytes; a frame header
	// reaches its frame size within 200.
	maxSeqHeaderBytes   = 1024
	maxFrameHeaderBytes = 512
)

// av1Seq is what the frame headers that follow a sequence header need from
// it.
type av1Seq struct {
	maxW, maxH   int
	wBits, hBits int
	reduced      bool // reduced_still_picture_header
	// decoder model
	model           bool // decoder_model_info_present_flag
	equalInterval   bool // timing_info's equal_picture_interval
	presentationLen int  // frame_presentation_time_length_minus_1 + 1
	removalLen      int  // buffer_removal_time_length_minus_1 + 1
	ops             int  // operating_points_cnt_minus_1 + 1
	opIdc           [32]uint32
	opModel         [32]bool // decoder_model_present_for_this_op
	// frame ids, screen content, order hints
	frameIDs      bool
	idLen         int // additional_frame_id_length_minus_1 + delta_frame_id_length_minus_2 + 3
	deltaIDLen    int // delta_frame_id_length_minus_2 + 2
	screenContent uint32
	integerMV     uint32
	orderHintBits int
}

const av1Select = 2 // SELECT_SCREEN_CONTENT_TOOLS, SELECT_INTEGER_MV

// av1Size returns the largest frame an AV1 decoder can be made to allocate
// by an av01 item: libheif hands the decoder the av1C configOBUs followed by
// the item's data, so both are walked as one OBU stream. The size is the
// largest max_frame_width/height of the sequence headers in the data (in
// config only when the data has none: the data is what is decoded), and
// of any larger frame size a frame header declares (frame_size_override).
// It errs when no sequence header is found, when a frame header comes
// before one, when an OBU or a header is cut short, and when the budget
// (shared by the items of a file; nil for a fresh one) runs out.
func av1Size(config []byte, data [][]byte, budget *heifBudget) (w, h int, err error) {
	if budget == nil {
		budget = new(heifBudget)
	}
	s := newByteStream(append([][]byte{config}, data...)...)
	var seq *av1Seq
	var dataW, dataH, configW, configH, frameW, frameH int
	for s.left > 0 {
		if err := budget.unit(); err != nil {
			return 0, 0, err
		}
		inData := s.pos() >= uint64(len(config))
		at := s.pos()
		typ, tid, sid, size, err := readOBUHeader(s)
		if err != nil {
			return 0, 0, fmt.Errorf("OBU at byte %d: %w", at, err)
		}
		if typ == obuSequenceHeader || typ == obuFrameHeader || typ == obuFrame {
			if err := budget.header(); err != nil {
				return 0, 0, err
			}
		}
		switch typ {
		case obuSequenceHeader:
			if seq, err = parseAV1Seq(s.head(int(min(size, maxSeqHeaderBytes)))); err != nil {
				return 0, 0, fmt.Errorf("sequence header at byte %d: %w", at, err)
			}
			if inData {
				dataW, dataH = max(dataW, seq.maxW), max(dataH, seq.maxH)
			} else {
				configW, configH = max(configW, seq.maxW), max(configH, seq.maxH)
			}
		case obuFrameHeader, obuFrame:
			if seq == nil {
				return 0, 0, fmt.Errorf("frame header at byte %d before any sequence header", at)
			}
			fw, fh, ok, err := seq.frameSize(s.head(int(min(size, maxFrameHeaderBytes))), tid, sid)
			if err != nil {
				return 0, 0, fmt.Errorf("frame header at byte %d: %w", at, err)
			}
			if ok {
				frameW, frameH = max(frameW, fw), max(frameH, fh)
			}
		}
		s.skip(size)
	}
	if dataW == 0 {
		dataW, dataH = configW, configH
	}
	if dataW == 0 {
		return 0, 0, errors.New("no AV1 sequence header")
	}
	return max(dataW, frameW), max(dataH, frameH), nil
}

// readOBUHeader reads an OBU's header and size field and returns its type,
// temporal and spatial layer ids and payload size; without a size field the
// OBU runs to the end of the stream. It errs when the forbidden bit is set,
// when the size is not a valid leb128 number, and when the payload runs
// past the end.
func readOBUHeader(s *byteStream) (typ, tid, sid int, size uint64, err error) {
	c, ok := s.byte()
	if !ok {
		return 0, 0, 0, 0, errors.New("truncated header")
	}
	if c&0x80 != 0 {
		return 0, 0, 0, 0, errors.New("forbidden bit set")
	}
	typ = int(c >> 3 & 15)
	if c&4 != 0 { // obu_extension_flag
		e, ok := s.byte()
		if !ok {
			return 0, 0, 0, 0, errors.New("truncated extension header")
		}
		tid, sid = int(e>>5), int(e>>3&3)
	}
	size = s.left
	if c&2 != 0 { // obu_has_size_field
		if size, err = readLEB128(s); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	if size > s.left {
		return 0, 0, 0, 0, fmt.Errorf("%d-byte payload, %d bytes left", size, s.left)
	}
	return typ, tid, sid, size, nil
}

// readLEB128 reads AV1's leb128() size: at most eight bytes, seven bits
// each, least significant first, and less than 2^32.
func readLEB128(s *byteStream) (uint64, error) {
	var v uint64
	for i := range 8 {
		c, ok := s.byte()
		if !ok {
			return 0, errors.New("truncated size field")
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			if v > 1<<32-1 {
				return 0, fmt.Errorf("size %d too large", v)
			}
			return v, nil
		}
	}
	return 0, errors.New("size field longer than 8 bytes")
}

// parseAV1Seq parses a sequence_header_obu far enough for the frame headers
// (up to the order hint bits; color_config and after are not needed). It
// errs when the header is cut short.
func parseAV1Seq(p []byte) (*av1Seq, error) {
	r := bitReader{b: p}
	s := &av1Seq{ops: 1}
	r.skip(3 + 1) // seq_profile, still_picture
	s.reduced = r.flag()
	if s.reduced {
		r.skip(5) // seq_level_idx[0]
	} else {
		var delayLen int
		if r.flag() { // timing_info_present_flag
			r.skip(32 + 32) // num_units_in_display_tick, time_scale
			if s.equalInterval = r.flag(); s.equalInterval {
				r.uvlc() // num_ticks_per_picture_minus_1
			}
			if s.model = r.flag(); s.model {
				delayLen = int(r.u(5)) + 1
				r.skip(32) // num_units_in_decoding_tick
				s.removalLen = int(r.u(5)) + 1
				s.presentationLen = int(r.u(5)) + 1
			}
		}
		displayDelay := r.flag()
		s.ops = int(r.u(5)) + 1
		for i := 0; i < s.ops && r.err == nil; i++ {
			s.opIdc[i] = r.u(12)
			if r.u(5) > 7 { // seq_level_idx
				r.skip(1) // seq_tier
			}
			if s.model {
				if s.opModel[i] = r.flag(); s.opModel[i] {
					r.skip(2*delayLen + 1) // decoder and encoder buffer delays, low_delay_mode_flag
				}
			}
			if displayDelay && r.flag() {
				r.skip(4) // initial_display_delay_minus_1
			}
		}
	}
	s.wBits, s.hBits = int(r.u(4))+1, int(r.u(4))+1
	s.maxW, s.maxH = int(r.u(s.wBits))+1, int(r.u(s.hBits))+1
	if !s.reduced {
		if s.frameIDs = r.flag(); s.frameIDs {
			s.deltaIDLen = int(r.u(4)) + 2
			s.idLen = s.deltaIDLen + int(r.u(3)) + 1
		}
	}
	r.skip(3) // use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter
	s.screenContent, s.integerMV = av1Select, av1Select
	if !s.reduced {
		r.skip(4) // interintra, masked compound, warped motion, dual filter
		orderHint := r.flag()
		if orderHint {
			r.skip(2) // enable_jnt_comp, enable_ref_frame_mvs
		}
		if !r.flag() { // seq_choose_screen_content_tools
			s.screenContent = r.u(1)
		}
		if s.screenContent > 0 && !r.flag() { // seq_choose_integer_mv
			s.integerMV = r.u(1)
		}
		if orderHint {
			s.orderHintBits = int(r.u(3)) + 1
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// frameSize parses a frame header (uncompressed_header) up to its frame
// size and returns the size the frame is decoded at (UpscaledWidth by
// FrameHeight). ok is false when the frame takes its size from a reference
// frame (show_existing_frame, or found_ref), whose own header was counted
// when it was read. tid and sid are the OBU's temporal and spatial ids. It
// errs when the header is cut short.
func (s *av1Seq) frameSize(p []byte, tid, sid int) (w, h int, ok bool, err error) {
	const keyFrame, intraOnlyFrame, switchFrame = 0, 2, 3
	r := bitReader{b: p}
	frameType, show, errorResilient := uint32(keyFrame), true, true
	if !s.reduced {
		if r.flag() { // show_existing_frame
			return 0, 0, false, r.err
		}
		frameType = r.u(2)
		show = r.flag()
		if show && s.model && !s.equalInterval {
			r.skip(s.presentationLen) // temporal_point_info
		}
		if !show {
			r.skip(1) // showable_frame
		}
		if frameType != switchFrame && !(frameType == keyFrame && show) {
			errorResilient = r.flag()
		}
	}
	intra := frameType == keyFrame || frameType == intraOnlyFrame
	r.skip(1) // disable_cdf_update
	screen := s.screenContent
	if screen == av1Select {
		screen = r.u(1)
	}
	if screen == 1 && s.integerMV == av1Select {
		r.skip(1) // force_integer_mv
	}
	if s.frameIDs {
		r.skip(s.idLen) // current_frame_id
	}
	override := frameType == switchFrame
	if !override && !s.reduced {
		override = r.flag()
	}
	r.skip(s.orderHintBits)
	if !intra && !errorResilient {
		r.skip(3) // primary_ref_frame
	}
	if s.model && r.flag() { // buffer_removal_time_present_flag
		for i := 0; i < s.ops; i++ {
			idc := s.opIdc[i]
			if s.opModel[i] && (idc == 0 || idc>>tid&1 == 1 && idc>>(sid+8)&1 == 1) {
				r.skip(s.removalLen)
			}
		}
	}
	refresh := uint32(0xff)
	if frameType != switchFrame && !(frameType == keyFrame && show) {
		refresh = r.u(8)
	}
	if (!intra || refresh != 0xff) && errorResilient && s.orderHintBits > 0 {
		r.skip(8 * s.orderHintBits) // ref_order_hint[8]
	}
	if !intra {
		short := s.orderHintBits > 0 && r.flag() // frame_refs_short_signaling
		if short {
			r.skip(3 + 3) // last_frame_idx, gold_frame_idx
		}
		for range 7 {
			if !short {
				r.skip(3) // ref_frame_idx
			}
			if s.frameIDs {
				r.skip(s.deltaIDLen) // delta_frame_id_minus_1
			}
		}
		if override && !errorResilient {
			for range 7 {
				if r.flag() { // found_ref: the size of a reference frame
					return 0, 0, false, r.err
				}
			}
		}
	}
	w, h = s.maxW, s.maxH
	if override {
		w, h = int(r.u(s.wBits))+1, int(r.u(s.hBits))+1
	}
	if r.err != nil {
		return 0, 0, false, r.err
	}
	return w, h, true, nil
}
