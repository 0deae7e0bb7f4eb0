package imageproc

import "errors"

// errBitsShort is what a bitReader reports once a read has run past its
// bytes: the header being parsed is truncated.
var errBitsShort = errors.New("truncated bit field")

// bitReader reads most-significant-bit-first fields, the order both the AV1
// and the H.265 headers are written in. A read past the end sets err and
// returns zero, so a parser reads a run of fields and checks err once; every
// loop that reads stops once err is set, so a short buffer cannot make one
// spin.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

// u returns the next n bits (0 <= n <= 32) as an unsigned number, or 0 once
// the bytes have run out.
func (r *bitReader) u(n int) uint32 {
	if r.err != nil {
		return 0
	}
	if n < 0 || n > 32 || r.pos+n > 8*len(r.b) {
		r.err = errBitsShort
		return 0
	}
	var v uint32
	for range n {
		bit := r.b[r.pos>>3] >> (7 - r.pos&7) & 1
		v = v<<1 | uint32(bit)
		r.pos++
	}
	return v
}

// flag returns the next bit as a bool.
func (r *bitReader) flag() bool { return r.u(1) == 1 }

// skip passes over n bits, n >= 0.
func (r *bitReader) skip(n int) {
	if r.err != nil {
		return
	}
	if n < 0 || r.pos+n > 8*len(r.b) {
		r.err = errBitsShort
		return
	}
	r.pos += n
}

// zeros reads zero bits up to and including the next one bit and returns
// how many there were, passing whole zero bytes at once so that a long run
// costs little. Running out of bits sets err.
func (r *bitReader) zeros() int {
	n := 0
	for r.err == nil {
		if r.pos&7 == 0 && r.pos>>3 < len(r.b) && r.b[r.pos>>3] == 0 {
			r.pos += 8
			n += 8
			continue
		}
		if r.u(1) == 1 {
			break
		}
		n++
	}
	return n
}

// ue returns an unsigned Exp-Golomb number (H.265 ue(v)). More than 31
// leading zeros cannot encode a number the syntax allows; that and running
// out of bits set err.
func (r *bitReader) ue() uint32 {
	zeros := r.zeros()
	if zeros > 31 && r.err == nil {
		r.err = errors.New("exp-Golomb code longer than 32 bits")
	}
	if r.err != nil {
		return 0
	}
	return uint32(1<<zeros-1) + r.u(zeros) // 2^31-1 + up to 2^31-1 fits in uint32
}

// uvlc returns an AV1 variable-length number (uvlc()); 32 or more leading
// zeros stand for 2^32-1, as the AV1 specification says.
func (r *bitReader) uvlc() uint32 {
	zeros := r.zeros()
	if r.err != nil {
		return 0
	}
	if zeros >= 32 {
		return 1<<32 - 1
	}
	return uint32(1<<zeros-1) + r.u(zeros)
}
