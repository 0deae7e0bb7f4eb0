package imageproc

import (
	"fmt"
)

// markSet is the watermarks of one job in a worker: their bytes, and each
// one decoded, at each size an output needs, once. Every frame of an
// output shares its decode.
type markSet struct {
	bufs    markBufs
	headers map[string]Header
	limits  limits
	made    map[markKey]vimage
}

// markKey is one watermark decoded: its name, size and opacity, and
// whether it is in the space of the job's kept profile (the one profile
// of the source) or in sRGB.
type markKey struct {
	name     string
	w, h     int
	opacity  float64
	profiled bool
}

func newMarkSet(j job) *markSet {
	ms := &markSet{bufs: j.marks, headers: map[string]Header{}, limits: j.Limits, made: map[markKey]vimage{}}
	for _, m := range j.Marks {
		ms.headers[m.Name] = m.Header
	}
	return ms
}

// free releases the decoded watermarks; their bytes are the worker's.
func (ms *markSet) free() {
	if ms == nil {
		return
	}
	for _, im := range ms.made {
		im.free()
	}
	ms.made = nil
}

// apply is the watermark step of one frame: it puts w over im (which it
// consumes) at the place markBox gives, and returns the result, of the
// same size and the same bands (an opaque frame stays opaque). A nil w
// leaves im as it is. It is a function of one frame, so that the frames
// of an animation can each go through it. icc is the profile whose space
// im's pixels are in, when the output keeps one (keep=icc), nil for sRGB:
// the watermark is converted into it, as the output's pixels were not.
//
// Errors: ErrBadWatermark (an ErrBadOption) when the watermark cannot be
// decoded or is over the pixel limit (the option's value is at fault, not
// the image).
func (ms *markSet) apply(im vimage, w *Watermark, icc []byte) (vimage, error) {
	if w == nil {
		return im, nil
	}
	if w.Opacity == 0 {
		return im, nil // nothing would show
	}
	mark, box, err := ms.mark(w, im.width(), im.height(), icc)
	if err != nil {
		im.free()
		return vimage{}, err
	}
	return im.composite(mark, box.x, box.y)
}

// mark returns w decoded for an output of W x H in the space of icc (nil:
// sRGB), and where it goes. The image stays the set's.
func (ms *markSet) mark(w *Watermark, W, H int, icc []byte) (vimage, rect, error) {
	bad := func(err error) error { return fmt.Errorf("%w: watermark %q: %v", ErrBadWatermark, w.Key, err) }
	in, ok := ms.bufs[w.Key]
	if !ok {
		return vimage{}, rect{}, fmt.Errorf("watermark %q was not sent with the job", w.Key)
	}
	vh, err := vipsHeader(in)
	if err != nil {
		return vimage{}, rect{}, bad(err)
	}
	h, err := confirm(ms.headers[w.Key], vh, ms.limits)
	if err != nil {
		return vimage{}, rect{}, bad(err)
	}
	box := markBox(W, H, h.Width, h.Height, *w)
	k := markKey{w.Key, box.w, box.h, w.Opacity, icc != nil}
	if im, ok := ms.made[k]; ok {
		return im, box, nil
	}
	im, err := decodeMark(in, h, box.w, box.h, w.Opacity, icc)
	if err != nil {
		return vimage{}, rect{}, bad(err)
	}
	ms.made[k] = im
	return im, box, nil
}

// decodeMark decodes a watermark as an input is decoded (the same
// loaders, fail_on, shrink on load, colour conversion and orientation),
// scaled to w x h, then makes it sRGB with alpha (in the space of the
// profile icc instead, when it is not nil) and multiplies its alpha by
// opacity. The result is in memory: a broken file fails here, not in the
// encoder of the output it would have gone over.
func decodeMark(in cbuf, h Header, w, ht int, opacity float64, icc []byte) (vimage, error) {
	setAsideWarnings()
	src := &source{in: in, h: h}
	im, err := src.decode(w, ht)
	if err != nil {
		return vimage{}, err
	}
	if im.bands() < 3 {
		if im, err = im.toSRGB(); err != nil {
			return vimage{}, err
		}
	}
	if !im.alpha() {
		if im, err = im.addAlpha(); err != nil {
			return vimage{}, err
		}
	}
	if icc != nil {
		if im, err = im.toProfile(icc); err != nil {
			return vimage{}, err
		}
	}
	if opacity < 1 {
		if im, err = im.fade(opacity); err != nil {
			return vimage{}, err
		}
	}
	if im, err = im.inMemory(); err != nil {
		return vimage{}, err
	}
	if err := markWarnings(in, h.Format); err != nil {
		im.free()
		return vimage{}, err
	}
	return im, nil
}
