package imageproc

// cleaned is an input with its metadata removed: parts, written in order,
// are the file. (Stub until the Go cleaners land: nothing is removed, and
// the orientation is left for libvips to read.)
type cleaned struct {
	parts       [][]byte
	size        int
	orientation int
	scans       int
}

func cleanJPEG(b []byte) (cleaned, error) { return cleaned{parts: [][]byte{b}, size: len(b)}, nil }
func cleanPNG(b []byte) (cleaned, error)  { return cleaned{parts: [][]byte{b}, size: len(b)}, nil }
func cleanWebP(b []byte) (cleaned, error) { return cleaned{parts: [][]byte{b}, size: len(b)}, nil }
