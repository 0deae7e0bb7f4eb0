package imageproc

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Several outputs of one source share one decode, kept in memory at the
// largest size any of them needs, when that decode is much smaller than
// the source (under reuseBelow of its scale: decoding an 18 MP JPEG costs
// ten times more than decoding the same picture at 1600 pixels) or small
// enough to hold (sharedMaxPixels: then each output saves a decode and its
// colour conversion, which for a CMYK or tagged image costs more than the
// resize). Otherwise each output is decoded from the source, streaming.
const (
	reuseBelow      = 0.8
	sharedMaxPixels = 8_000_000
)

// rendered is one output made in a worker: data is C memory, and parts
// the file as sent (see encode).
type rendered struct {
	data          []byte
	parts         [][]byte
	format        Format
	width, height int
	// quality is the quality written (0 for formats without one), and
	// encodes the number of encodes it took (a max_bytes search's).
	quality, encodes int
}

// render is a worker's whole work on one image, in steps:
//
//  1. read libvips' view of the header and settle the Header (confirm);
//  2. plan every output: its format and geometry (fitGeometry);
//  3. when several outputs are all much smaller than the source, decode
//     the source once, upright, scaled to the largest of them (source);
//  4. make each output: scale, cut, flatten, pad, strip, encode (output).
func render(in cbuf, j job) (Header, []rendered, error) {
	vh, err := vipsHeader(in)
	if err != nil {
		return j.Header, nil, fmt.Errorf("%w: %s header: %v", ErrUndecodable, j.Header.Format, err)
	}
	h, err := confirm(j.Header, vh, j.Limits)
	if err != nil {
		return h, nil, err
	}
	if err := wholeAnimation(h, j); err != nil {
		return h, nil, err
	}
	src := &source{in: in, h: h, marks: newMarkSet(j), tagged: keepsAnyICC(j.Outputs), rights: j.Rights}
	defer src.free()
	plans := make([]plan, len(j.Outputs))
	for i, o := range j.Outputs {
		var trim *rect
		if o.Trim != nil {
			_, animate := outputOf(h, vh.alpha, o)
			if trim, err = src.trim(*o.Trim, animate, j.Limits); err != nil {
				return h, nil, classify(in, err)
			}
		}
		if plans[i], err = planOutput(h, vh.alpha, o, j.Limits, trim); err != nil {
			return h, nil, err
		}
		if err := plans[i].checkFrames(h, j.Limits); err != nil {
			return h, nil, err
		}
	}
	if err := src.shareDecode(plans); err != nil {
		return h, nil, err
	}
	outs := make([]rendered, 0, len(plans))
	for _, p := range plans {
		r, err := src.output(p)
		if err != nil {
			return h, outs, classify(in, err)
		}
		outs = append(outs, r)
	}
	return h, outs, nil
}

// confirm settles the header from the server's (read in Go, before any
// slot) and libvips' view of it. For formats whose header only libvips
// reads (TIFF, SVG, PDF) this is the first look at their size, so the pixel
// limit is checked here, inside the slot and under the timer. Where libvips
// sees another size than the server's parser (a GIF frame larger than its
// screen), libvips' is the one it will decode, and is checked again.
func confirm(h Header, vh vheader, l limits) (Header, error) {
	if h.Orientation == 0 {
		h.Orientation = vh.orientation
	}
	if h.Orientation < 1 || h.Orientation > 8 {
		h.Orientation = 1
	}
	h.Pages = max(1, vh.pages)
	h.Alpha = vh.alpha
	h.Width, h.Height = upright(vh.width, vh.height, h.Orientation)
	if vh.width <= 0 || vh.height <= 0 {
		return h, fmt.Errorf("%w: %s: zero image size", ErrUndecodable, h.Format)
	}
	if px := int64(vh.width) * int64(vh.height); px > l.MaxPixels {
		return h, fmt.Errorf("%w: %dx%d is %d pixels, over the limit of %d", ErrTooLarge, vh.width, vh.height, px, l.MaxPixels)
	}
	return h, nil
}

// wholeAnimation refuses an animation that stays animated when libvips
// reads fewer frames than its blocks hold: libvips' GIF loader stops
// without an error at a frame it cannot decode (an LZW code size over 11),
// and the animation would come out cut short, or as a still. Its first
// frame, which a still output decodes alone, is whole.
func wholeAnimation(h Header, j job) error {
	if j.Frames <= h.Pages || !animates(h.Format, j.Outputs) {
		return nil
	}
	return fmt.Errorf("%w: %s: frame %d of %d cannot be decoded (animated=false takes the first)",
		ErrUndecodable, h.Format, h.Pages+1, j.Frames)
}

// plan is one output, planned.
type plan struct {
	geometry
	options    Options
	format     Format
	quality    int
	background *Color
	// animate: the source is animated and the output stays so, every
	// frame made as one image would be, the delays kept.
	animate bool
}

func planOutput(h Header, alpha bool, o Options, l limits, trim *rect) (plan, error) {
	g, err := fitGeometry(h.Width, h.Height, o, l.MaxDimension, l.MaxOutputPixels, trim)
	if err != nil {
		return plan{}, err
	}
	p := plan{geometry: g, options: o, quality: o.Quality, background: o.Background}
	p.format, p.animate = outputOf(h, alpha, o)
	// format=auto takes the next format the client accepts when one
	// cannot hold the output (a panorama 20,000 wide is no WebP); a format
	// asked for, or the source's, that cannot is the caller's to change.
	for o.Format == FormatUnknown && !p.format.holds(g.Width, g.Height) && slices.Contains(o.Prefer, p.format) {
		f := p.format
		o.Prefer = slices.DeleteFunc(slices.Clone(o.Prefer), func(p Format) bool { return p == f })
		p.format, p.animate = outputOf(h, alpha, o)
	}
	if !p.format.holds(g.Width, g.Height) {
		return plan{}, fmt.Errorf("%w: output %dx%d: a %s holds at most %d pixels a side", ErrTooLarge,
			g.Width, g.Height, p.format, p.format.info().maxSide)
	}
	if p.quality == 0 {
		p.quality = l.Qualities[p.format]
	}
	if p.quality == 0 {
		p.quality = p.format.DefaultQuality()
	}
	return p, nil
}

// outputOf is the format of output o of the source h, and whether it
// stays animated: the source is animated and the format can be.
func outputOf(h Header, alpha bool, o Options) (f Format, animate bool) {
	animated := h.Pages > 1 && h.Format.CanAnimate()
	f = outputFormat(h.Format, alpha, animated, o)
	return f, animated && !o.Still && f.CanAnimate()
}

// checkFrames bounds an animation that stays one, in and out (the input
// was checked in Go already, from its blocks; these are libvips' counts).
func (p plan) checkFrames(h Header, l limits) error {
	if !p.animate {
		return nil
	}
	return frameLimits(h, l, int64(h.Width)*int64(h.Height), int64(p.Width)*int64(p.Height))
}

// frameLimits bounds an animation of h.Pages frames of each of sizes
// pixels.
func frameLimits(h Header, l limits, sizes ...int64) error {
	if h.Pages > l.MaxFrames {
		return fmt.Errorf("%w: %d frames, over the limit of %d (animated=false takes the first)", ErrTooLarge, h.Pages, l.MaxFrames)
	}
	for _, px := range sizes {
		if total := px * int64(h.Pages); total > l.MaxAnimationPixels {
			return fmt.Errorf("%w: %d frames are %d pixels, over the limit of %d (animated=false takes the first)",
				ErrTooLarge, h.Pages, total, l.MaxAnimationPixels)
		}
	}
	return nil
}

// source is the image being rendered: the encoded input and, when outputs
// share a decode, that decode.
type source struct {
	in cbuf
	h  Header
	// mid, when set, is the source upright, in 8 bits, decoded in memory
	// at midW x midH; whole, when set, the same at full size.
	mid        vimage
	midW, midH int
	whole      vimage
	// anim, when set, is every frame of an animated source, top to
	// bottom, in 8 bits, in memory.
	anim vimage
	// marks are the job's watermarks (watermark_render.go).
	marks *markSet
	// tagged: an output keeps an RGB profile (keep=icc), so decoding
	// leaves the pixels in its space, and icc is that profile (see
	// keep.go); rights are the EXIF fields keep=copyright writes.
	tagged bool
	icc    []byte
	rights *exifRights
}

func (s *source) free() {
	s.mid.free()
	s.whole.free()
	s.anim.free()
	s.marks.free()
}

// frames returns a new reference to every frame of an animated source,
// decoded once for all its outputs.
func (s *source) frames() (vimage, error) {
	if s.anim.p == nil {
		im, err := vipsLoad(s.in, "fail_on=truncated,n=-1")
		if err != nil {
			return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
		}
		if im, err = im.to8bit(); err != nil {
			return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
		}
		if im, err = im.inMemory(); err != nil {
			return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
		}
		s.anim = im
	}
	return s.anim.ref(), nil
}

// full returns a new reference to the whole source, upright, in 8 bits,
// in memory: for the outputs that take a region of it (a crop, a trim, a
// cover that enlarges) and for finding a trim.
func (s *source) full() (vimage, error) {
	if s.mid.p != nil && s.midW == s.h.Width && s.midH == s.h.Height {
		return s.shared(), nil
	}
	if s.whole.p == nil {
		im, err := s.decode(s.h.Width, s.h.Height)
		if err != nil {
			return vimage{}, err
		}
		if im, err = im.inMemory(); err != nil {
			return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
		}
		s.whole = im
	}
	return s.whole.ref(), nil
}

// trim finds what a trim of the source's border leaves: of its first
// frame, or for an output that stays animated (every frame cut alike), of
// every frame, the box that holds what is left of any of them. A border
// only the first frame has would cut the others' pictures.
func (s *source) trim(threshold float64, animate bool, l limits) (*rect, error) {
	var box rect
	var err error
	if animate {
		box, err = s.animationTrim(threshold, l)
	} else {
		var im vimage
		if im, err = s.full(); err != nil {
			return nil, err
		}
		box, err = im.findTrim(threshold)
		im.free()
	}
	if err != nil {
		return nil, err
	}
	if box.w <= 0 || box.h <= 0 {
		return nil, fmt.Errorf("%w: trim=%g removes the whole image", ErrUnsatisfiable, threshold)
	}
	return &box, nil
}

// animationTrim is the union of the boxes a trim leaves of each frame,
// upright; empty when every frame is its border's colour. The frames are
// decoded once, for the outputs too, within the limits on animations.
func (s *source) animationTrim(threshold float64, l limits) (rect, error) {
	if err := frameLimits(s.h, l, int64(s.h.Width)*int64(s.h.Height)); err != nil {
		return rect{}, err
	}
	all, err := s.frames()
	if err != nil {
		return rect{}, err
	}
	defer all.free()
	fh := all.pageHeight()
	var box rect
	for i := 0; i < all.height()/fh; i++ {
		f, err := s.uprightFrame(all, i, fh)
		if err != nil {
			return rect{}, err
		}
		r, err := f.findTrim(threshold)
		f.free()
		if err != nil {
			return rect{}, err
		}
		switch {
		case r.w <= 0 || r.h <= 0: // all border
		case box.w == 0:
			box = r
		default:
			x0, y0 := min(box.x, r.x), min(box.y, r.y)
			x1, y1 := max(box.x+box.w, r.x+r.w), max(box.y+box.h, r.y+r.h)
			box = rect{x0, y0, x1 - x0, y1 - y0}
		}
	}
	return box, nil
}

// uprightFrame is frame i of all, the source's frames stacked fh high, as
// an image of its own, turned upright; all stays the caller's.
func (s *source) uprightFrame(all vimage, i, fh int) (vimage, error) {
	f, err := all.ref().crop(0, i*fh, all.width(), fh)
	if err == nil {
		f, err = f.frame()
	}
	if err != nil {
		return vimage{}, err
	}
	return upright8(f, s.h.Orientation)
}

// shareDecode decodes the source once for all outputs when there are
// several and the decode is worth sharing (see sharedMaxPixels). The
// shared decode is never larger than the source: outputs that enlarge
// scale up from it.
func (s *source) shareDecode(plans []plan) error {
	if len(plans) < 2 {
		return nil
	}
	scale := 0.0
	for _, p := range plans {
		if !p.regionIsWhole {
			scale = 1 // a cut before the scale needs the full-size source
		}
		scale = math.Max(scale, p.scale())
	}
	scale = math.Min(scale, 1)
	w, h := side(float64(s.h.Width)*scale), side(float64(s.h.Height)*scale)
	if scale >= reuseBelow && int64(w)*int64(h) > sharedMaxPixels {
		return nil
	}
	if scale == 1 {
		w, h = s.h.Width, s.h.Height
	}
	im, err := s.decode(w, h)
	if err != nil {
		return err
	}
	if im, err = im.inMemory(); err != nil {
		return fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	s.mid, s.midW, s.midH = im, w, h
	return nil
}

// decode reads the whole source scaled to w x h (upright), in 8 bits.
// libvips decodes lazily: decoding errors (a truncated file) may show only
// when the pixels are written, in output.
func (s *source) decode(w, h int) (vimage, error) {
	sw, sh := w, h
	if s.h.Orientation >= 5 {
		sw, sh = h, w // libvips scales the image as stored
	}
	fw, fh := upright(s.h.Width, s.h.Height, s.h.Orientation) // stored size
	scale := math.Max(float64(sw)/float64(fw), float64(sh)/float64(fh))
	im, err := vipsLoad(s.in, loadOptions(s.h.Format, scale))
	if err != nil {
		return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if im, err = im.thumbnail(sw, sh); err != nil {
		return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	if im, err = s.to8bit(im); err != nil {
		return vimage{}, fmt.Errorf("%w: %v", ErrUndecodable, err)
	}
	return upright8(im, s.h.Orientation)
}

// loadOptions are the loader options for an image of format f that will
// be scaled by scale. Every loader is told to fail on a truncated file.
// JPEG and WebP decode at a power-of-two fraction of their size where the
// output allows (a JPEG's DCT scaling makes an 18 MP decode for an
// 800-pixel output four times cheaper), as large as the output or larger,
// and the exact size is reached by resampling. libvips' own thumbnail
// leaves a factor of two more to resample, for a difference in sharpness
// that an 800-pixel output does not show, at two to three times the cost.
// SVG and PDF are drawn at the scale asked for.
func loadOptions(f Format, scale float64) string {
	opts := "fail_on=truncated"
	shrink := loadShrink(scale)
	switch {
	case f == FormatJPEG && shrink > 1:
		opts += fmt.Sprintf(",shrink=%d", shrink)
	case f == FormatWebP && shrink > 1:
		opts += fmt.Sprintf(",scale=%g", 1/float64(shrink))
	case f == FormatSVG, f == FormatPDF:
		opts += fmt.Sprintf(",scale=%g", scale)
	}
	return opts
}

// loadShrink is the largest power of two, up to 8, by which an image to
// be scaled by scale can be shrunk and still be as large as the output.
func loadShrink(scale float64) int {
	for _, n := range []int{8, 4, 2} {
		if scale*float64(n) <= 1 {
			return n
		}
	}
	return 1
}

// upright8 turns an image stored with EXIF orientation o upright: a
// clockwise rotation, then a left-right mirror. Decoding is sequential (top
// to bottom, once), which turning does not follow: the image, at its
// output size by now, is put in memory first.
func upright8(im vimage, o int) (vimage, error) {
	if o <= 1 || o > 8 {
		return im, nil
	}
	im, err := im.inMemory()
	if err != nil {
		return vimage{}, err
	}
	angle := map[int]int{3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}[o]
	if angle != 0 {
		if im, err = im.rotate(angle); err != nil {
			return vimage{}, err
		}
	}
	if o == 2 || o == 4 || o == 5 || o == 7 {
		if im, err = im.mirror(); err != nil {
			return vimage{}, err
		}
	}
	return im, nil
}

// scaled is step one of an output: its region of the source, scaled.
func (s *source) scaled(p plan) (vimage, error) {
	if p.regionIsWhole {
		if s.mid.p == nil {
			return s.decode(p.scaleW, p.scaleH)
		}
		return s.shared().thumbnail(p.scaleW, p.scaleH)
	}
	r := p.region
	var im vimage
	var err error
	if p.smartIn.w > 0 {
		if im, err = s.full(); err != nil {
			return vimage{}, err
		}
		r, err = smartRegion(im, p.smartIn, r.w, r.h)
		im.free()
		if err != nil {
			return vimage{}, err
		}
	}
	if n := regionShrink(s.h.Format, r, p.scaleW, p.scaleH); n > 1 && s.whole.p == nil {
		// A region that will be scaled down by n or more is cut from a
		// decode at 1/n of the size, as the loader shrinks for free: a
		// crop of a large JPEG then costs what its resize does. Its edges
		// move by half a pixel of the shrunk image at most, less than
		// half an output pixel.
		w, h := shrunk(s.h.Width, s.h.Height, n)
		if im, err = s.decode(w, h); err != nil {
			return vimage{}, err
		}
		r = shrinkRect(r, n, w, h)
	} else if im, err = s.full(); err != nil {
		return vimage{}, err
	}
	if im, err = im.crop(r.x, r.y, r.w, r.h); err != nil {
		return vimage{}, err
	}
	return im.thumbnail(p.scaleW, p.scaleH)
}

// regionShrink is the power of two, 1 to 8, by which the source of format
// f can be shrunk on load when region r of it is to be scaled to w x h:
// the largest that leaves the region at least w x h. Only the loaders that
// shrink as they decode (JPEG, WebP) gain from it.
func regionShrink(f Format, r rect, w, h int) int {
	if f != FormatJPEG && f != FormatWebP {
		return 1
	}
	return loadShrink(math.Max(float64(w)/float64(r.w), float64(h)/float64(r.h)))
}

// shrunk is the size of a w x h source shrunk by n on load, as the region
// path asks decode for it: rounded down, as the JPEG loader rounds (WebP's
// rounds to the nearest, a pixel more at most, which decode's resample
// takes off). Asked for a pixel more than the loader makes, loadOptions
// would shrink by n/2 only.
func shrunk(w, h, n int) (int, int) { return w / n, h / n }

// shrinkRect is r in an image shrunk by n to w x h, its corners rounded
// to the nearest pixel, never empty and never outside.
func shrinkRect(r rect, n, w, h int) rect {
	at := func(v int) int { return int(math.Round(float64(v) / float64(n))) }
	x0, y0 := min(at(r.x), w-1), min(at(r.y), h-1)
	x1, y1 := min(max(at(r.x+r.w), x0+1), w), min(max(at(r.y+r.h), y0+1), h)
	return rect{x0, y0, x1 - x0, y1 - y0}
}

// shared returns a new reference to the shared decode, for a step that
// consumes it.
func (s *source) shared() vimage {
	return s.mid.ref()
}

// output makes one output from the source: its region scaled (every
// frame's, for an animation), then the steps of one image (finish), then
// its metadata removed and encoded (encode).
func (s *source) output(p plan) (rendered, error) {
	var im vimage
	var err error
	if p.animate {
		im, err = s.animation(p)
	} else if im, err = s.scaled(p); err == nil {
		im, err = s.finish(im, p)
	}
	if err != nil {
		return rendered{}, err
	}
	defer func() { im.free() }()
	if h := im.pageHeight(); im.width() != p.Width || h != p.Height {
		return rendered{}, fmt.Errorf("made %dx%d where %dx%d was planned", im.width(), h, p.Width, p.Height)
	}
	if im, err = im.strip(p.animate); err != nil {
		return rendered{}, err
	}
	if p.animate && p.format == FormatGIF {
		if im, err = im.gifDelays(gifMaxDelay); err != nil {
			return rendered{}, err
		}
	}
	return s.encode(im, p)
}

// gifMaxDelay is the longest a GIF shows a frame, in milliseconds: 65,535
// hundredths of a second. A WebP's frame may last longer; a GIF made of it
// shows the frame as long as it can (gifDelays, which also keeps a frame
// of 11 to 14 ms from becoming one that browsers slow to 100 ms).
const gifMaxDelay = 655_350

// animation makes every frame of an animated source as one image would
// be made, and stacks them again; the delays and the loop count stay.
func (s *source) animation(p plan) (vimage, error) {
	all, err := s.frames()
	if err != nil {
		return vimage{}, err
	}
	defer all.free()
	fh := all.pageHeight()
	n := all.height() / fh
	out := make([]vimage, 0, n)
	fail := func(err error) (vimage, error) {
		for _, f := range out {
			f.free()
		}
		return vimage{}, err
	}
	r := p.region
	for i := 0; i < n; i++ {
		f, err := s.uprightFrame(all, i, fh)
		if err != nil {
			return fail(err)
		}
		if i == 0 && p.smartIn.w > 0 {
			// One place for every frame, the first frame's, as below.
			if r, err = smartRegion(f, p.smartIn, r.w, r.h); err != nil {
				f.free()
				return fail(err)
			}
		}
		if !p.regionIsWhole {
			if f, err = f.crop(r.x, r.y, r.w, r.h); err != nil {
				return fail(err)
			}
		}
		if f, err = f.thumbnail(p.scaleW, p.scaleH); err != nil {
			return fail(err)
		}
		if p.smart {
			// One cut for every frame, where the attention search puts it
			// in the first (as animated=false does): a search frame by
			// frame would follow whatever moves, and the picture would
			// jump from frame to frame.
			if f, p.crop.x, p.crop.y, err = smartPlace(f, p.crop.w, p.crop.h); err != nil {
				return fail(err)
			}
			p.smart = false
		}
		if f, err = s.finish(f, p); err != nil {
			return fail(err)
		}
		out = append(out, f)
	}
	return join(out)
}

// finish runs the steps of one image (or one frame) after the scale, in
// the order of the options: cut (cover) or padded (contain), turned and
// flipped, blurred or sharpened, padded, watermarked (each frame on its
// own, its watermark decoded once).
func (s *source) finish(im vimage, p plan) (vimage, error) {
	var err error
	if c := p.crop; c.w != p.scaleW || c.h != p.scaleH {
		if p.smart {
			im, err = smartcrop(im, c.w, c.h)
		} else {
			im, err = im.crop(c.x, c.y, c.w, c.h)
		}
		if err != nil {
			return vimage{}, err
		}
	}
	steps := []func(vimage) (vimage, error){
		func(im vimage) (vimage, error) { return s.toOutputSpace(im, p) },
		func(im vimage) (vimage, error) { return flattenFor(im, p) },
		func(im vimage) (vimage, error) {
			if !p.contain {
				return im, nil
			}
			return padTo(im, p, p.padX, p.padY, p.padW, p.padH)
		},
		func(im vimage) (vimage, error) { return turn(im, p.rotate, p.flip) },
		func(im vimage) (vimage, error) {
			if p.options.Blur > 0 {
				return im.blur(p.options.Blur)
			}
			return im, nil
		},
		func(im vimage) (vimage, error) {
			if p.options.Sharpen > 0 {
				return im.sharpen(p.options.Sharpen)
			}
			return im, nil
		},
		func(im vimage) (vimage, error) {
			t, r, b, l := p.pad[0], p.pad[1], p.pad[2], p.pad[3]
			if t+r+b+l == 0 {
				return im, nil
			}
			return padTo(im, p, l, t, im.width()+l+r, im.height()+t+b)
		},
		func(im vimage) (vimage, error) { return s.marks.apply(im, p.options.Watermark, s.keptProfile(p)) },
	}
	for _, step := range steps {
		if im, err = step(im); err != nil {
			return vimage{}, err
		}
	}
	return im, nil
}

// turn rotates im clockwise by angle, then mirrors it. Turning does not
// follow the sequential decode: the image, small by now, goes to memory.
func turn(im vimage, angle int, f Flip) (vimage, error) {
	if angle == 0 && f == FlipNone {
		return im, nil
	}
	im, err := im.inMemory()
	if err != nil {
		return vimage{}, err
	}
	if angle != 0 {
		if im, err = im.rotate(angle); err != nil {
			return vimage{}, err
		}
	}
	if f == FlipHorizontal || f == FlipBoth {
		if im, err = im.mirror(); err != nil {
			return vimage{}, err
		}
	}
	if f == FlipVertical || f == FlipBoth {
		if im, err = im.flipVertical(); err != nil {
			return vimage{}, err
		}
	}
	return im, nil
}

// smartcrop lets libvips' attention strategy choose a w x h cut. It
// reads the image more than once, so the image goes to memory first.
func smartcrop(im vimage, w, h int) (vimage, error) {
	im, err := im.inMemory()
	if err != nil {
		return vimage{}, err
	}
	return im.smartcrop(w, h)
}

// smartPlace finds where libvips' attention strategy would cut w x h out
// of im, and returns im in memory, uncut, and that place.
func smartPlace(im vimage, w, h int) (vimage, int, int, error) {
	im, err := im.inMemory()
	if err != nil {
		return vimage{}, 0, 0, err
	}
	c, err := im.ref().smartcrop(w, h)
	if err != nil {
		im.free()
		return vimage{}, 0, 0, err
	}
	x, y := c.cutAt()
	c.free()
	return im, clamp(x, 0, im.width()-w), clamp(y, 0, im.height()-h), nil
}

// smartRegion is where libvips' attention strategy places a w x h cut
// inside the part in of im (a smart cover that enlarges: see geometry), in
// im's pixels; im stays the caller's.
func smartRegion(im vimage, in rect, w, h int) (rect, error) {
	part, err := im.ref().crop(in.x, in.y, in.w, in.h)
	if err != nil {
		return rect{}, err
	}
	part, x, y, err := smartPlace(part, w, h)
	if err != nil {
		return rect{}, err
	}
	part.free()
	return rect{in.x + x, in.y + y, w, h}, nil
}

// backgroundColour is the colour of padding and of what replaces
// transparency: the one asked for, else white.
func (p plan) backgroundColour() Color {
	if p.background != nil {
		return *p.background
	}
	return white
}

// keepsAlpha: transparency stays where the output format can hold it and
// no background was asked for.
func (p plan) keepsAlpha() bool { return p.format.HasAlpha() && p.background == nil }

// flattenFor replaces transparency by the background where it does not
// stay, and makes grey pixels colour when the background is a colour.
func flattenFor(im vimage, p plan) (vimage, error) {
	var err error
	bg := p.backgroundColour()
	if im.bands() <= 2 && (bg.R != bg.G || bg.G != bg.B) {
		if im, err = im.toSRGB(); err != nil { // grey pixels, coloured background
			return vimage{}, err
		}
	}
	if im.alpha() && !p.keepsAlpha() {
		return im.flatten(colourVector(bg, im.bands()-1))
	}
	return im, nil
}

// padTo puts im on a canvas of w x h at x, y: transparent where
// transparency stays, else the background.
func padTo(im vimage, p plan, x, y, w, h int) (vimage, error) {
	vec := colourVector(p.backgroundColour(), im.bands())
	if p.keepsAlpha() {
		var err error
		if !im.alpha() {
			if im, err = im.addAlpha(); err != nil {
				return vimage{}, err
			}
		}
		vec = make([]float64, im.bands()) // transparent
	}
	return im.embed(x, y, w, h, vec)
}

// colourVector is c for an image of n bands: grey for one or two, RGB for
// three or more; a band past the colour's is opaque alpha.
func colourVector(c Color, n int) []float64 {
	col := []float64{float64(c.R), float64(c.G), float64(c.B)}
	if n <= 2 {
		col = col[:1]
	}
	for len(col) < n {
		col = append(col, 255)
	}
	return col[:max(n, 1)]
}

// classify sorts a failure of the steps after decoding began: libvips
// decodes lazily, so a broken file (truncated, corrupt) fails in whichever
// step first needs its pixels, often the encoder. It is the client's
// (ErrUndecodable, with the decoder's own message) when the input does not
// decode on its own, and the service's otherwise. A failure already
// sorted stands as it is, without a second decode: a watermark that cannot
// be used (ErrBadOption) is decoded whole before it is used, and one that
// decoded but cannot be met (ErrUnsatisfiable: no quality fits max_bytes,
// trim leaves nothing) is no fault of the decoder.
func classify(in cbuf, err error) error {
	if errors.Is(err, ErrUndecodable) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrBadOption) ||
		errors.Is(err, ErrUnsatisfiable) {
		return err
	}
	if derr := vipsDecodes(in); derr != nil {
		return fmt.Errorf("%w: %v", ErrUndecodable, derr)
	}
	return fmt.Errorf("libvips: %w", err)
}
