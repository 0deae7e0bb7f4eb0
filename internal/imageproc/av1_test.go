package imageproc

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// bitWriter writes most-significant-bit-first fields, for crafting codec
// headers in tests.
type bitWriter struct {
	b []byte
	n int // bits written
}

func (w *bitWriter) put(v uint64, bits int) {
	for i := bits - 1; i >= 0; i-- {
		if w.n%8 == 0 {
			w.b = append(w.b, 0)
		}
		w.b[len(w.b)-1] |= byte(v>>i&1) << (7 - w.n%8)
		w.n++
	}
}

func (w *bitWriter) flag(f bool) {
	if f {
		w.put(1, 1)
	} else {
		w.put(0, 1)
	}
}

// trailing ends the payload the way AV1 and H.265 do: a one bit, then zeros
// to a byte boundary.
func (w *bitWriter) trailing() []byte {
	w.put(1, 1)
	for w.n%8 != 0 {
		w.put(0, 1)
	}
	return w.b
}

// obu wraps a payload in an OBU header with a size field; ext, when not
// nil, adds the extension header with its temporal and spatial ids.
func obu(typ int, ext *[2]int, payload []byte) []byte {
	h := byte(typ<<3 | 2)
	out := []byte{h}
	if ext != nil {
		out[0] |= 4
		out = append(out, byte(ext[0]<<5|ext[1]<<3))
	}
	n := len(payload)
	for {
		c := byte(n & 0x7f)
		if n >>= 7; n > 0 {
			out = append(out, c|0x80)
			continue
		}
		out = append(out, c)
		break
	}
	return append(out, payload...)
}

// seqSpec is a sequence header for seqHeader to write.
type seqSpec struct {
	reduced                       bool
	timing, equal, model          bool
	delayLen, removalLen, presLen int
	displayDelay                  bool
	ops                           []opSpec
	wBits, hBits                  int
	maxW, maxH                    int
	frameIDs                      bool
	deltaLen, addLen              int // delta_frame_id_length_minus_2 + 2, additional_frame_id_length_minus_1 + 1
	orderBits                     int // 0: order hints off
	screen, intMV                 int // 0, 1, or 2 for "select"
}

type opSpec struct {
	idc   uint32
	level int
	model bool
	delay bool
}

// seqHeader writes a sequence_header_obu payload following the AV1
// specification's syntax, with 8-bit 4:2:0 colour.
func seqHeader(s seqSpec) []byte {
	var w bitWriter
	w.put(0, 3) // seq_profile
	w.flag(s.reduced)
	w.flag(s.reduced)
	if s.reduced {
		w.put(31, 5)
	} else {
		w.flag(s.timing)
		if s.timing {
			w.put(1, 32)
			w.put(25, 32)
			w.flag(s.equal)
			if s.equal {
				w.put(0b00101, 5) // uvlc: two leading zeros, value 1 -> 4
			}
			w.flag(s.model)
			if s.model {
				w.put(uint64(s.delayLen-1), 5)
				w.put(1000, 32)
				w.put(uint64(s.removalLen-1), 5)
				w.put(uint64(s.presLen-1), 5)
			}
		}
		w.flag(s.displayDelay)
		w.put(uint64(len(s.ops)-1), 5)
		for _, op := range s.ops {
			w.put(uint64(op.idc), 12)
			w.put(uint64(op.level), 5)
			if op.level > 7 {
				w.put(1, 1)
			}
			if s.model {
				w.flag(op.model)
				if op.model {
					w.put(0x5555, s.delayLen)
					w.put(0x2aaa, s.delayLen)
					w.put(1, 1)
				}
			}
			if s.displayDelay {
				w.flag(op.delay)
				if op.delay {
					w.put(9, 4)
				}
			}
		}
	}
	w.put(uint64(s.wBits-1), 4)
	w.put(uint64(s.hBits-1), 4)
	w.put(uint64(s.maxW-1), s.wBits)
	w.put(uint64(s.maxH-1), s.hBits)
	if !s.reduced {
		w.flag(s.frameIDs)
		if s.frameIDs {
			w.put(uint64(s.deltaLen-2), 4)
			w.put(uint64(s.addLen-1), 3)
		}
	}
	w.put(0b011, 3) // 128x128 superblocks off, filter intra and intra edge on
	if !s.reduced {
		w.put(0b1111, 4)
		w.flag(s.orderBits > 0)
		if s.orderBits > 0 {
			w.put(0b11, 2)
		}
		w.flag(s.screen == 2)
		if s.screen != 2 {
			w.put(uint64(s.screen), 1)
		}
		if s.screen > 0 {
			w.flag(s.intMV == 2)
			if s.intMV != 2 {
				w.put(uint64(s.intMV), 1)
			}
		}
		if s.orderBits > 0 {
			w.put(uint64(s.orderBits-1), 3)
		}
	}
	w.put(0b110, 3) // superres off, cdef and restoration on
	w.put(0, 1)     // color_config: high_bitdepth
	w.put(0, 1)     // mono_chrome
	w.put(0, 1)     // color_description_present_flag
	w.put(0, 1)     // color_range
	w.put(0, 2)     // chroma_sample_position
	w.put(0, 1)     // separate_uv_delta_q
	w.put(0, 1)     // film_grain_params_present
	return w.trailing()
}

// keyFrame writes the start of a shown key frame's header with
// frame_size_override_flag set and the given size, for the non-reduced
// sequence header s (the rest of a real header does not matter to the
// parser, which stops at the frame size). tid and sid are the OBU's layer
// ids, which decide whether buffer_removal_time is present per operating
// point.
func keyFrame(s seqSpec, w, h, tid, sid int) []byte {
	var b bitWriter
	b.put(0, 1) // show_existing_frame
	b.put(0, 2) // KEY_FRAME
	b.put(1, 1) // show_frame
	if s.model && !s.equal {
		b.put(0x7fffffff, s.presLen)
	}
	b.put(0, 1) // disable_cdf_update
	screen := s.screen
	if screen == 2 {
		b.put(1, 1)
		screen = 1
	}
	if screen == 1 && s.intMV == 2 {
		b.put(1, 1)
	}
	if s.frameIDs {
		b.put(0xffff, s.deltaLen+s.addLen)
	}
	b.put(1, 1) // frame_size_override_flag
	b.put(0xff, s.orderBits)
	if s.model {
		b.put(1, 1) // buffer_removal_time_present_flag
		for _, op := range s.ops {
			if op.model && (op.idc == 0 || op.idc>>tid&1 == 1 && op.idc>>(sid+8)&1 == 1) {
				b.put(0xfffff, s.removalLen)
			}
		}
	}
	b.put(uint64(w-1), s.wBits)
	b.put(uint64(h-1), s.hBits)
	b.put(0, 1) // use_superres would not be read: superres is off
	return b.trailing()
}

// interFrame writes the start of a shown inter frame's header with
// frame_size_override_flag set, for the non-reduced sequence header s with
// order hints on: with short set it uses frame_refs_short_signaling; found
// is the index of the reference whose size it takes, or -1 to code w and h.
func interFrame(s seqSpec, short bool, found, w, h int) []byte {
	var b bitWriter
	b.put(0, 1) // show_existing_frame
	b.put(1, 2) // INTER_FRAME
	b.put(1, 1) // show_frame
	b.put(0, 1) // error_resilient_mode
	b.put(0, 1) // disable_cdf_update
	if s.screen == 2 {
		b.put(0, 1) // allow_screen_content_tools
	}
	b.put(1, 1)           // frame_size_override_flag
	b.put(3, s.orderBits) // order_hint
	b.put(0b101, 3)       // primary_ref_frame
	b.put(0b00000001, 8)  // refresh_frame_flags
	b.flag(short)         // frame_refs_short_signaling
	if short {
		b.put(0b010111, 6) // last_frame_idx, gold_frame_idx
	} else {
		for range 7 {
			b.put(0b110, 3) // ref_frame_idx
		}
	}
	for i := range 7 {
		b.flag(i == found)
		if i == found {
			b.put(1, 1) // use_superres would be read from here on; a real header goes on
			return b.trailing()
		}
	}
	b.put(uint64(w-1), s.wBits)
	b.put(uint64(h-1), s.hBits)
	return b.trailing()
}

// av1FrameSizes walks an OBU stream as av1Size does and returns the size of
// each frame header that declares one.
func av1FrameSizes(t *testing.T, stream []byte) (seqs []*av1Seq, sizes [][2]int) {
	t.Helper()
	s := newByteStream(stream)
	var seq *av1Seq
	for s.left > 0 {
		typ, tid, sid, size, err := readOBUHeader(s)
		if err != nil {
			t.Fatal(err)
		}
		p := s.head(int(size))
		switch typ {
		case obuSequenceHeader:
			if seq, err = parseAV1Seq(p); err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		case obuFrameHeader, obuFrame:
			w, h, ok, err := seq.frameSize(p, tid, sid)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				sizes = append(sizes, [2]int{w, h})
			}
		}
		s.skip(size)
	}
	return seqs, sizes
}

// TestAV1SizeLibaom reads streams libaom encoded with the options a
// sequence and frame header can vary by (testdata/heif/aom): full and
// reduced still picture headers, timing info, a decoder model, frame ids
// (error resilience), screen content tools, order hints, and frames coded
// at sizes other than the maximum. av1Size must return the maximum the
// stream was encoded at, every frame size parsed must be one libaom's
// decoder output, and every size it output must be parsed.
func TestAV1SizeLibaom(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "heif", "aom", "*.obu"))
	if err != nil || len(files) < 10 {
		t.Fatalf("%d streams: %v", len(files), err)
	}
	var covered struct{ full, timing, equal, model, frameIDs, orderHints, screen, resized bool }
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			stream, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			sizesText, err := os.ReadFile(strings.TrimSuffix(name, ".obu") + ".sizes")
			if err != nil {
				t.Fatal(err)
			}
			var decoded [][2]int
			for _, line := range strings.Fields(string(sizesText)) {
				var w, h int
				if _, err := fmt.Sscanf(line, "%dx%d", &w, &h); err != nil {
					t.Fatal(err)
				}
				decoded = append(decoded, [2]int{w, h})
			}
			var want [2]int
			base := strings.TrimSuffix(filepath.Base(name), ".obu")
			if _, err := fmt.Sscanf(base[strings.LastIndex(base, "-")+1:], "%dx%d", &want[0], &want[1]); err != nil {
				t.Fatal(err)
			}

			w, h, err := av1Size(nil, [][]byte{stream}, nil)
			if err != nil || [2]int{w, h} != want {
				t.Fatalf("av1Size = %dx%d, %v; want %v", w, h, err, want)
			}
			seqs, sizes := av1FrameSizes(t, stream)
			for _, s := range sizes {
				if !slices.Contains(decoded, s) {
					t.Errorf("parsed a %v frame; libaom decoded %v", s, decoded)
				}
			}
			for _, d := range decoded {
				if !slices.Contains(sizes, d) {
					t.Errorf("libaom decoded a %v frame; parsed %v", d, sizes)
				}
			}
			for _, s := range seqs {
				covered.full = covered.full || !s.reduced
				covered.timing = covered.timing || s.model || s.equalInterval
				covered.equal = covered.equal || s.equalInterval
				covered.model = covered.model || s.model && s.opModel[0]
				covered.frameIDs = covered.frameIDs || s.frameIDs
				covered.orderHints = covered.orderHints || s.orderHintBits > 0
				covered.screen = covered.screen || s.screenContent == av1Select
			}
			covered.resized = covered.resized || !slices.Contains(decoded, want)

			// The same stream split into many extents reads the same.
			if w, h, err := av1Size(nil, split(stream, 13), nil); err != nil || [2]int{w, h} != want {
				t.Errorf("in 13 extents: %dx%d, %v", w, h, err)
			}
		})
	}
	if c := covered; !(c.full && c.timing && c.equal && c.model && c.frameIDs && c.orderHints && c.screen && c.resized) {
		t.Errorf("the streams do not cover every header option: %+v", c)
	}
}

// TestAV1SizeCrafted checks the cases no encoder writes: a frame header
// declaring a frame larger than its sequence header's maximum, sequence
// headers in the av1C configOBUs and in the data disagreeing, operating
// points whose buffer_removal_time fields depend on the OBU's layer ids,
// and malformed streams.
func TestAV1SizeCrafted(t *testing.T) {
	small := seqSpec{reduced: true, wBits: 16, hBits: 16, maxW: 100, maxH: 100}
	big := seqSpec{reduced: true, wBits: 16, hBits: 16, maxW: 8192, maxH: 8192}
	full := seqSpec{wBits: 16, hBits: 16, maxW: 100, maxH: 100, ops: []opSpec{{}}, orderBits: 7, screen: 2, intMV: 2}
	layered := seqSpec{
		timing: true, model: true, delayLen: 17, removalLen: 23, presLen: 11,
		displayDelay: true,
		// Which operating points carry a buffer_removal_time depends on
		// the frame's layers: 3, 2 and 1 of them in the cases below.
		ops: []opSpec{
			{idc: 0x302, level: 9, model: true, delay: true}, // temporal layer 1; spatial layers 0 and 1
			{idc: 0x103, level: 4, model: true},              // temporal layers 0 and 1; spatial layer 0
			{idc: 0, level: 4, model: true},                  // every layer
			{idc: 0x101, level: 4},                           // no decoder model: never a field
		},
		wBits: 14, hBits: 13, maxW: 100, maxH: 100,
		frameIDs: true, deltaLen: 5, addLen: 3, orderBits: 5, screen: 1, intMV: 2,
	}
	td := obu(2, nil, nil)
	seq := func(s seqSpec) []byte { return obu(obuSequenceHeader, nil, seqHeader(s)) }
	frame := func(s seqSpec, w, h int) []byte { return obu(obuFrame, nil, keyFrame(s, w, h, 0, 0)) }
	reducedFrame := obu(obuFrame, nil, []byte{0x10, 0, 0}) // a reduced header's first bits; no size in it
	for _, tt := range []struct {
		name         string
		config, data []byte
		w, h         int
		err          string
	}{
		{"reduced", nil, slices.Concat(td, seq(small), reducedFrame), 100, 100, ""},
		{"frame larger than the sequence maximum", nil, slices.Concat(td, seq(full), frame(full, 8192, 4321)), 8192, 4321, ""},
		{"frame smaller than the sequence maximum", nil, slices.Concat(seq(full), frame(full, 33, 21)), 100, 100, ""},
		{"frame header OBU, then tile group", nil, slices.Concat(seq(full), obu(obuFrameHeader, nil, keyFrame(full, 200, 7, 0, 0)), obu(4, nil, []byte{1})), 200, 100, ""},
		{"layers: temporal 1, spatial 0", nil, slices.Concat(seq(layered), obu(obuFrame, &[2]int{1, 0}, keyFrame(layered, 5000, 6000, 1, 0))), 5000, 6000, ""},
		{"layers: temporal 1, spatial 1", nil, slices.Concat(seq(layered), obu(obuFrame, &[2]int{1, 1}, keyFrame(layered, 5001, 6001, 1, 1))), 5001, 6001, ""},
		{"layers: temporal 0, spatial 1", nil, slices.Concat(seq(layered), obu(obuFrame, &[2]int{0, 1}, keyFrame(layered, 5002, 6002, 0, 1))), 5002, 6002, ""},
		{"inter frame, short ref signaling", nil, slices.Concat(seq(full), frame(full, 50, 60), obu(obuFrame, nil, interFrame(full, true, -1, 300, 99))), 300, 100, ""},
		{"inter frame, refs listed", nil, slices.Concat(seq(full), frame(full, 50, 60), obu(obuFrame, nil, interFrame(full, false, -1, 99, 400))), 100, 400, ""},
		{"inter frame, size of a reference", nil, slices.Concat(seq(full), frame(full, 50, 60), obu(obuFrame, nil, interFrame(full, true, 3, 0, 0))), 100, 100, ""},
		{"show existing frame", nil, slices.Concat(seq(full), obu(obuFrameHeader, nil, []byte{0x80})), 100, 100, ""},
		{"data's sequence header wins over config's", seq(big), slices.Concat(seq(small), reducedFrame), 100, 100, ""},
		{"config's when the data has none", seq(big), reducedFrame, 8192, 8192, ""},
		{"several sequence headers in the data: the largest", nil, slices.Concat(seq(small), seq(big), seq(small)), 8192, 8192, ""},
		{"no size field: to the end", nil, append(slices.Concat(td, seq(small)), 0x30, 0x10, 0, 0), 100, 100, ""},
		{"no sequence header", nil, td, 0, 0, "no AV1 sequence header"},
		{"empty", nil, nil, 0, 0, "no AV1 sequence header"},
		{"frame before the sequence header", nil, slices.Concat(reducedFrame, seq(small)), 0, 0, "before any sequence header"},
		{"truncated sequence header", nil, obu(obuSequenceHeader, nil, seqHeader(full)[:5]), 0, 0, "truncated"},
		{"truncated frame header", nil, slices.Concat(seq(full), obu(obuFrame, nil, keyFrame(full, 9, 9, 0, 0)[:3])), 0, 0, "truncated"},
		{"payload past the end", nil, seq(small)[:8], 0, 0, "bytes left"},
		{"forbidden bit", nil, append([]byte{0x80}, seq(small)...), 0, 0, "forbidden"},
		{"size field of 9 bytes", nil, []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 0, 0, "longer than 8"},
		{"size of 2^32", nil, []byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x10}, 0, 0, "too large"},
		{"cut in the size field", nil, []byte{0x0a, 0x80}, 0, 0, "truncated size"},
		{"cut in the extension header", nil, []byte{0x0e}, 0, 0, "extension"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, h, err := av1Size(tt.config, split(tt.data, 3), nil)
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

// TestAV1SizeBudget checks that av1Size spends the budget it is given, one
// unit per OBU and one header per sequence or frame header, and stops when
// it runs out.
func TestAV1SizeBudget(t *testing.T) {
	stream := slices.Concat(obu(2, nil, nil), obu(obuSequenceHeader, nil, seqHeader(seqSpec{reduced: true, wBits: 8, hBits: 8, maxW: 16, maxH: 16})), obu(15, nil, nil))
	b := new(heifBudget)
	if _, _, err := av1Size(nil, [][]byte{stream}, b); err != nil || b.units != 3 || b.headers != 1 {
		t.Fatalf("spent %+v, %v; want 3 units, 1 header", *b, err)
	}
	for _, b := range []*heifBudget{{units: maxHeifUnits - 2}, {headers: maxHeifHeaders}} {
		if _, _, err := av1Size(nil, [][]byte{stream}, b); err == nil || !strings.Contains(err.Error(), "in all") {
			t.Errorf("budget %+v: err = %v", *b, err)
		}
	}
}

// TestAV1InAVIF wraps libaom streams with full (not reduced) sequence
// headers in an AVIF and checks that libvips (dav1d) decodes them at the
// size heifItems reads, so the full-header path is checked against the
// decoder the service uses.
func TestAV1InAVIF(t *testing.T) {
	newTestProcessor(t, nil)
	orig := specFrom(t, readTestdata(t, "heif/alpha-333x77.avif"))
	for _, tt := range []struct {
		file string
		w, h int
	}{
		{"fullhdr-333x77.obu", 333, 77},
		{"still-64x48.obu", 64, 48},
	} {
		t.Run(tt.file, func(t *testing.T) {
			stream := readTestdata(t, "heif/aom/"+tt.file)
			s := defaultSpec("avif")
			it := orig.items[0]
			it.data = stream
			it.props = []specProp{
				{typ: "av1C", body: []byte{0x81, 0x1f, 0x0c, 0}, essential: true},
				ispeProp(uint32(tt.w), uint32(tt.h)),
				{typ: "pixi", body: []byte{0, 0, 0, 0, 3, 8, 8, 8}},
			}
			s.items = []specItem{it}
			s.refs = nil
			b := heifBuild(t, s)
			header, decoded := vipsSizes(t, b)
			if header != [2]int{tt.w, tt.h} || decoded != header {
				t.Fatalf("libvips: header %v, decoded %v", header, decoded)
			}
			items, err := heifItems(b)
			if err != nil {
				t.Fatal(err)
			}
			if p := primaryItem(t, items); p.codedW != tt.w || p.codedH != tt.h {
				t.Errorf("coded %dx%d", p.codedW, p.codedH)
			}
		})
	}
}
