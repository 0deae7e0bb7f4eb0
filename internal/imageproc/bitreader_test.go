package imageproc

import (
	"bytes"
	"testing"
)

// TestBitReader checks fixed fields across byte boundaries, Exp-Golomb and
// uvlc numbers (including the longest and the over-long), and that a read
// past the end sticks.
func TestBitReader(t *testing.T) {
	r := bitReader{b: []byte{0b10110011, 0b01011111, 0xff, 0xff, 0xff, 0xf0}}
	if v := r.u(3); v != 0b101 {
		t.Errorf("u(3) = %b", v)
	}
	if v := r.u(7); v != 0b1001101 {
		t.Errorf("u(7) = %b", v)
	}
	if v := r.u(32); v != 0x7fffffff {
		t.Errorf("u(32) = %x", v)
	}
	if r.u(0) != 0 || r.err != nil || r.pos != 42 {
		t.Fatalf("pos %d, err %v", r.pos, r.err)
	}
	r.skip(7)
	if r.err == nil || r.u(1) != 0 || r.flag() {
		t.Error("reading past the end did not stick")
	}

	var w bitWriter
	for _, v := range []uint32{0, 1, 2, 3, 254, 1<<31 - 1, 1<<32 - 2} {
		w.ue(v)
	}
	r = bitReader{b: w.trailing()}
	for _, want := range []uint32{0, 1, 2, 3, 254, 1<<31 - 1, 1<<32 - 2} {
		if v := r.ue(); v != want || r.err != nil {
			t.Fatalf("ue = %d, %v; want %d", v, r.err, want)
		}
	}
	r = bitReader{b: append(make([]byte, 4), 0xff)} // 32 zeros, then a one
	if r.ue(); r.err == nil {
		t.Error("ue with 32 leading zeros did not fail")
	}

	r = bitReader{b: []byte{0b00101000}}
	if v := r.uvlc(); v != 4 || r.err != nil {
		t.Errorf("uvlc = %d, %v", v, r.err)
	}
	r = bitReader{b: append(bytes.Repeat([]byte{0}, 5), 0x80)} // 40 zeros, then a one
	if v := r.uvlc(); v != 1<<32-1 || r.err != nil || r.pos != 41 {
		t.Errorf("long uvlc = %d, %v at %d", v, r.err, r.pos)
	}
	r = bitReader{b: make([]byte, 3)}
	if r.uvlc(); r.err == nil {
		t.Error("uvlc of only zeros did not fail")
	}
}
