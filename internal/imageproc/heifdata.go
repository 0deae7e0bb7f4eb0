package imageproc

import (
	"errors"
	"fmt"
)

// itemData returns an item's data as its extents, in order, each a slice of
// b (construction method 0) or of the idat box (method 1); nothing is
// copied, since extents may overlap and their sum is untrusted. It errs
// when the item has no location, when the data is in another file or built
// from other items (method 2), and when an extent does not lie within its
// container, which is how a truncated file shows.
func (m *heifMeta) itemData(b []byte, id uint32) ([][]byte, error) {
	loc, ok := m.locs[id]
	if !ok {
		return nil, errors.New("no location (iloc)")
	}
	if loc.dataRef != 0 {
		return nil, fmt.Errorf("data in another file (data_reference_index %d)", loc.dataRef)
	}
	src := b
	switch loc.method {
	case 0:
	case 1:
		if m.idat == nil {
			return nil, errors.New("data in idat, but no idat box")
		}
		src = m.idat
	default:
		return nil, fmt.Errorf("construction method %d not supported", loc.method)
	}
	if len(loc.extents) == 0 {
		return nil, errors.New("no extents")
	}
	size := uint64(len(src))
	parts := make([][]byte, 0, len(loc.extents)) // at most maxHeifExtents
	for _, e := range loc.extents {
		if loc.base > size || e.off > size-loc.base {
			return nil, fmt.Errorf("extent at %d+%d beyond the %d bytes there are", loc.base, e.off, size)
		}
		start := loc.base + e.off
		n := e.n
		if n == 0 {
			n = size - start // 0 means "to the end of the container"
		}
		if n > size-start {
			return nil, fmt.Errorf("extent of %d bytes at %d beyond the %d bytes there are", n, start, size)
		}
		parts = append(parts, src[start:start+n])
	}
	return parts, nil
}

// byteStream reads a run of byte slices as one stream (an item's extents,
// or a codec configuration followed by them, the order libheif hands them
// to the decoder), without joining them.
type byteStream struct {
	parts [][]byte
	i     int    // current part
	off   int    // offset in parts[i]
	left  uint64 // bytes from the position to the end
	size  uint64 // bytes in all
}

func newByteStream(parts ...[]byte) *byteStream {
	s := &byteStream{parts: parts}
	for _, p := range parts {
		s.left += uint64(len(p))
	}
	s.size = s.left
	s.settle()
	return s
}

// settle moves the position past exhausted (and empty) parts.
func (s *byteStream) settle() {
	for s.i < len(s.parts) && s.off == len(s.parts[s.i]) {
		s.i++
		s.off = 0
	}
}

// byte returns the next byte; ok is false at the end.
func (s *byteStream) byte() (c byte, ok bool) {
	if s.left == 0 {
		return 0, false
	}
	c = s.parts[s.i][s.off]
	s.off++
	s.left--
	s.settle()
	return c, true
}

// head returns the next min(n, left) bytes without moving; a copy when they
// span parts. Callers keep n small: it sizes the copy.
func (s *byteStream) head(n int) []byte {
	if uint64(n) > s.left {
		n = int(s.left)
	}
	if n == 0 {
		return nil
	}
	if p := s.parts[s.i][s.off:]; len(p) >= n {
		return p[:n]
	}
	out := make([]byte, 0, n)
	for i, off := s.i, s.off; len(out) < n; i, off = i+1, 0 {
		p := s.parts[i][off:]
		out = append(out, p[:min(len(p), n-len(out))]...)
	}
	return out
}

// skip moves n bytes on; it returns false, and moves to the end, when fewer
// than n are left.
func (s *byteStream) skip(n uint64) bool {
	if n > s.left {
		s.i, s.off, s.left = len(s.parts), 0, 0
		return false
	}
	s.left -= n
	for n > 0 {
		p := uint64(len(s.parts[s.i]) - s.off)
		if n < p {
			s.off += int(n)
			break
		}
		n -= p
		s.i++
		s.off = 0
	}
	s.settle()
	return true
}

// pos returns how many bytes have been read from the start.
func (s *byteStream) pos() uint64 { return s.size - s.left }

// Limits on the work heifItems does over all items together. Extents may
// overlap, so one stretch of a file can be the data of every item: limits
// per item alone would let a small file cost items × its size. A grid of
// 256 tiles needs about a thousand of each.
const (
	maxHeifUnits   = 1 << 18 // OBUs and NAL units walked
	maxHeifHeaders = 1 << 14 // sequence, frame and SPS headers parsed
)

// heifBudget counts the work spent against those limits.
type heifBudget struct{ units, headers int }

// unit spends one OBU or NAL unit; it errs once the limit is passed.
func (b *heifBudget) unit() error {
	if b.units++; b.units > maxHeifUnits {
		return fmt.Errorf("more than %d OBUs or NAL units in all", maxHeifUnits)
	}
	return nil
}

// header spends one header parse; it errs once the limit is passed.
func (b *heifBudget) header() error {
	if b.headers++; b.headers > maxHeifHeaders {
		return fmt.Errorf("more than %d codec headers in all", maxHeifHeaders)
	}
	return nil
}
