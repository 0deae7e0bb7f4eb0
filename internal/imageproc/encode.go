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
// (keep.go). With max_bytes, a format with a quality is encoded at the
// highest quality that fits (fitBytes), and one without fits or fails.
// The error wraps ErrUnsatisfiable when the output cannot fit.
func (s *source) encode(im vimage, p plan) (rendered, error) {
	im, err := s.withProfile(im, p)
	if err != nil {
		return rendered{}, err
	}
	defer im.free()
	r := rendered{format: p.format, width: p.Width, height: p.Height, encodes: 1}
	budget := p.options.MaxBytes
	if budget == 0 || p.format.DefaultQuality() == 0 {
		e, err := s.encodeAt(im, p, p.quality)
		if err != nil {
			return rendered{}, err
		}
		if budget > 0 && e.size > budget {
			e.free()
			return rendered{}, fmt.Errorf("%w: max_bytes=%d: the %s is %d bytes, and %s has no quality to lower",
				ErrUnsatisfiable, budget, p.format, e.size, p.format)
		}
		r.data, r.parts, r.quality = e.data, e.parts, e.quality
		return r, nil
	}
	// The search encodes several times; the pixels, decoded sequentially,
	// can be read once: they go to memory first.
	mem, err := im.memoryCopy()
	if err != nil {
		return rendered{}, err
	}
	defer mem.free()
	e, n, err := fitBytes(budget, p.quality, func(q int) (encoded, error) { return s.encodeAt(mem, p, q) })
	if err != nil {
		return rendered{}, err
	}
	r.data, r.parts, r.quality, r.encodes = e.data, e.parts, e.quality, n
	return r, nil
}

// encodeAt encodes im at quality q, and finishes the file (finishFile).
func (s *source) encodeAt(im vimage, p plan, q int) (encoded, error) {
	data, err := im.save(p.format, q, p.options.Progressive)
	if err != nil {
		return encoded{}, err
	}
	parts, err := s.finishFile(p, data)
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

// finishFile turns what libvips wrote into the file sent: a WebP loses the
// EXIF block libvips 8.14.1's saver writes of its own (orientation,
// resolution) whatever strip says, and the metadata the output keeps is
// written in (writeKept).
func (s *source) finishFile(p plan, data []byte) ([][]byte, error) {
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
