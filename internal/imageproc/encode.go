package imageproc

import "fmt"

// encoded is one encoding of an output: data is libvips' memory (C), and
// parts the file as it is sent, views of data and a few pieces made in Go.
type encoded struct {
	data    []byte
	parts   [][]byte
	size    int // of parts
	quality int
}

func (e encoded) free() { freeC(e.data) }

// encode is an output's last step, on an image stripped of every metadata
// item: the encoder, then the metadata the output keeps written back
// (keep.go).
func (s *source) encode(im vimage, p plan) (rendered, error) {
	im, err := s.withProfile(im, p)
	if err != nil {
		return rendered{}, err
	}
	defer im.free()
	e, err := s.encodeAt(im, p, p.quality)
	if err != nil {
		return rendered{}, err
	}
	return rendered{data: e.data, parts: e.parts, format: p.format, width: p.Width, height: p.Height}, nil
}

// encodeAt encodes im at quality q, and finishes the file (finish).
func (s *source) encodeAt(im vimage, p plan, q int) (encoded, error) {
	data, err := im.save(p.format, q, p.options.Progressive)
	if err != nil {
		return encoded{}, err
	}
	parts, err := s.finish(p, data)
	if err != nil {
		freeC(data)
		return encoded{}, err
	}
	e := encoded{data: data, parts: parts, quality: q}
	for _, part := range parts {
		e.size += len(part)
	}
	return e, nil
}

// finish turns what libvips wrote into the file sent: a WebP loses the
// EXIF block libvips 8.14.1's saver writes of its own (orientation,
// resolution) whatever strip says, and the metadata the output keeps is
// written in (writeKept).
func (s *source) finish(p plan, data []byte) ([][]byte, error) {
	parts := [][]byte{data}
	if p.format == FormatWebP {
		c, err := cleanWebP(data)
		if err != nil {
			return nil, fmt.Errorf("clean own webp output: %v", err)
		}
		parts = c.parts
	}
	return s.writeKept(p, parts)
}
