package imageproc

import "fmt"

// Metadata is removed in Go before libvips sees a file, for two reasons:
// libvips 8.14's WebP saver ignores strip, so EXIF and XMP (GPS position,
// artist) would pass from input to output; and libvips parses or inflates
// every metadata item it is given (a WebP with 20 MiB of EXIF fails, twenty
// 1 MB zTXt chunks take a minute to inflate), which a hostile file can use
// to waste a decoder's time. The items the service needs, the EXIF
// orientation, and the Artist and Copyright that keep=copyright writes
// back, are read on the way (exifFields).

// cleaned is a file with its metadata removed, as a gather list that the
// caller writes in order (net.Buffers, writev) to the process that runs
// libvips. The parts are sub-slices of the input, so they must not be
// written to, except a few small ones the cleaners make (a WebP's RIFF
// header and VP8X flags, a JPEG's closing EOI) and, past maxParts parts,
// one copied tail.
type cleaned struct {
	parts       [][]byte   // the cleaned file, in order; concatenated it is a valid file of the same format
	size        int        // total length of parts
	orientation int        // EXIF orientation 1..8 found in the removed metadata; 1 when absent or invalid
	rights      exifRights // EXIF Artist and Copyright found there, for keep=copyright
	scans       int        // JPEG only: number of SOS markers (scans) in the file; 0 for other formats
}

// maxParts bounds the gather list. A hostile file of tiny segments, kept
// and dropped in turn, would otherwise cost a 24-byte slice header for
// every few bytes of input; past the bound, the rest of the kept bytes are
// copied into one last part, so the list never outgrows the input.
const maxParts = 1024

// gatherer builds a gather list from runs of its source. Adjacent kept
// runs merge into one part, so a file with nothing to remove comes out as
// a single slice: the input itself.
type gatherer struct {
	src      []byte
	parts    [][]byte
	size     int
	from, to int    // the pending run src[from:to], not yet in parts
	spill    []byte // the copied tail once parts reaches maxParts-1
}

// keep appends src[from:to], extending the pending run when it continues it.
func (g *gatherer) keep(from, to int) {
	if from == to {
		return
	}
	if g.to > g.from && from == g.to {
		g.to = to
		return
	}
	g.flush()
	g.from, g.to = from, to
}

// add appends p, a small slice the caller made (a rewritten header).
func (g *gatherer) add(p []byte) {
	g.flush()
	g.push(p)
}

func (g *gatherer) flush() {
	if g.to > g.from {
		g.push(g.src[g.from:g.to])
	}
	g.from, g.to = 0, 0
}

func (g *gatherer) push(p []byte) {
	g.size += len(p)
	if len(g.parts) < maxParts-1 {
		g.parts = append(g.parts, p)
		return
	}
	g.spill = append(g.spill, p...)
}

// result returns the parts and their total length.
func (g *gatherer) result() ([][]byte, int) {
	g.flush()
	if g.spill != nil {
		return append(g.parts, g.spill), g.size
	}
	return g.parts, g.size
}

// errBroken reports a file whose structure the cleaner cannot follow. The
// error wraps ErrUndecodable: libvips would refuse the file too, or decode
// it leniently from a truncated stream, which the service does not allow.
func errBroken(f Format, format string, a ...any) error {
	return fmt.Errorf("clean %s: %w: %s", f, ErrUndecodable, fmt.Sprintf(format, a...))
}
