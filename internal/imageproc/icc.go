package imageproc

import (
	"bytes"
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"slices"
)

// ICC profile layout (ICC.1:2022, section 7): a 128-byte header, then the
// tag count and a table of 12-byte entries (signature, offset, size), then
// the tags' data.
const (
	iccHeaderLen   = 128
	iccIDAt        = 84  // the profile ID, an MD5 of the profile; zero means not computed
	iccReservedAt  = 100 // to the header's end: reserved, zero
	iccTagEntryLen = 12
)

// iccProfileOnly returns a copy of the ICC profile b holding nothing but
// the profile as its header and tag table describe it: the bytes past the
// size its header declares are cut off, and the header's reserved bytes
// and the bytes between tags that no tag refers to are zeroed. Those bytes
// are no part of the colour description, and a profile is copied from the
// source into every output that keeps it (keep=icc): anything hidden
// there (a whole EXIF block with a GPS position, after the profile's end)
// went along with it. The profile ID is kept only when it is the
// profile's MD5 digest, else zeroed ("not computed", as the ICC
// specification allows): 16 bytes that nothing else checks would carry
// whatever the uploader put there, and a profile whose hidden bytes were
// zeroed has another digest. A profile with nothing hidden comes back
// byte for byte.
//
// It returns nil when b is not a profile it can follow: shorter than a
// header and a tag count, a declared size under those or over len(b), or a
// tag table that runs past the declared size. The tags' own data are kept
// whole, each as its entry bounds it: a tag is part of the profile.
func iccProfileOnly(b []byte) []byte {
	if len(b) < iccHeaderLen+4 {
		return nil
	}
	size := uint64(binary.BigEndian.Uint32(b))
	if size < iccHeaderLen+4 || size > uint64(len(b)) {
		return nil
	}
	p := bytes.Clone(b[:size])
	n := uint64(binary.BigEndian.Uint32(p[iccHeaderLen:]))
	table := iccHeaderLen + 4 + n*iccTagEntryLen
	if table > size {
		return nil
	}
	// The extents of the tags' data, in order: what lies outside all of
	// them (and outside the header and the table) is zeroed. Tags may
	// share data or overlap; sorted, a hostile table of many tags costs
	// n log n, not a pass over the profile per tag.
	type extent struct{ from, to uint64 }
	tags := make([]extent, 0, n)
	for i := range n {
		e := p[iccHeaderLen+4+i*iccTagEntryLen:]
		off, sz := uint64(binary.BigEndian.Uint32(e[4:])), uint64(binary.BigEndian.Uint32(e[8:]))
		tags = append(tags, extent{min(off, size), min(off+sz, size)})
	}
	slices.SortFunc(tags, func(a, b extent) int { return cmp.Compare(a.from, b.from) })
	zero := func(from, to uint64) { clear(p[from:to]) }
	zero(iccReservedAt, iccHeaderLen)
	at := table // the first byte not yet known to be covered
	for _, t := range tags {
		if t.from > at {
			zero(at, t.from)
		}
		at = max(at, t.to)
	}
	zero(at, size)
	if id := p[iccIDAt:iccReservedAt]; !bytes.Equal(id, iccID(p)) {
		clear(id)
	}
	return p
}

// iccID is the profile ID of the profile p: the MD5 digest of p with its
// flags, rendering intent and profile ID fields zeroed (ICC.1:2022, 7.2.18).
func iccID(p []byte) []byte {
	h := md5.New()
	h.Write(p[:44])
	h.Write(make([]byte, 4)) // flags
	h.Write(p[48:64])
	h.Write(make([]byte, 4)) // rendering intent
	h.Write(p[68:iccIDAt])
	h.Write(make([]byte, 16)) // the ID itself
	h.Write(p[iccReservedAt:])
	return h.Sum(nil)
}
