package imageproc

import (
	"encoding/binary"
	"errors"
)

// byteReader reads big-endian fields from a box body; like bitReader, a
// read past the end sets err and returns zero.
type byteReader struct {
	b   []byte
	off int
	err error
}

func (r *byteReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.err = errors.New("truncated box")
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *byteReader) skip(n int) { r.bytes(n) }

func (r *byteReader) u8() uint8 {
	if p := r.bytes(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *byteReader) u16() uint16 {
	if p := r.bytes(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *byteReader) u32() uint32 {
	if p := r.bytes(4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

// uint reads a field of size 0, 4 or 8 bytes (iloc's variable sizes); size
// 0 reads nothing and returns 0.
func (r *byteReader) uint(size int) uint64 {
	switch size {
	case 4:
		return uint64(r.u32())
	case 8:
		if p := r.bytes(8); p != nil {
			return binary.BigEndian.Uint64(p)
		}
	}
	return 0
}
