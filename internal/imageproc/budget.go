package imageproc

import "fmt"

// maxEncodes bounds the encodes of one max_bytes search: the quality asked
// for, then quality 1, then a binary search of the qualities between,
// ceil(log2(99)) = 7 encodes at most. The pixels are made once and held in
// memory for the search, so its cost is that of the encodes: for a
// 1600-pixel photograph on one busy core, from 0.15 s (JPEG) to 1.2 s
// (WebP), against 0.08 s and 0.25 s for one encode. The search runs in
// the worker under the job's PROCESS_TIMEOUT like every other step: a
// search that would outlast it is killed with the worker (503, timeout).
const maxEncodes = 9

// fitBytes returns the encoding, made by encode, of the highest quality
// in 1..hi that fits in maxBytes, and the number of encodes it made.
//
// Size does not always grow with quality (an encoder may choose another
// subsampling or a better prediction one step up), so "highest" means
// what a binary search can promise without trying every quality: the
// quality returned fits and the one above it does not, or it is hi. It
// encodes hi first (a budget the asked quality meets costs one encode),
// then 1, then halves the gap between the highest quality known to fit
// and the lowest known not to.
//
// The error wraps ErrUnsatisfiable when even quality 1 does not fit, or
// is encode's. Every encoding but the one returned is freed.
func fitBytes(maxBytes, hi int, encode func(q int) (encoded, error)) (encoded, int, error) {
	n := 0
	try := func(q int) (encoded, bool, error) {
		n++
		e, err := encode(q)
		return e, err == nil && e.size <= maxBytes, err
	}
	best, fits, err := try(hi)
	if err != nil || fits {
		return best, n, err
	}
	top := best.size
	best.free()
	if hi <= 1 {
		return encoded{}, n, fmt.Errorf("%w: max_bytes=%d: %d bytes at quality 1", ErrUnsatisfiable, maxBytes, top)
	}
	best, fits, err = try(1)
	if err != nil {
		return encoded{}, n, err
	}
	if !fits {
		low := best.size
		best.free()
		return encoded{}, n, fmt.Errorf("%w: max_bytes=%d: %d bytes at quality 1 (%d at %d)", ErrUnsatisfiable, maxBytes, low, top, hi)
	}
	good, bad := 1, hi // good fits (best is its encoding), bad does not
	for bad-good > 1 {
		mid := good + (bad-good)/2
		e, fits, err := try(mid)
		if err != nil {
			best.free()
			return encoded{}, n, err
		}
		if fits {
			best.free()
			best, good = e, mid
		} else {
			e.free()
			bad = mid
		}
	}
	return best, n, nil
}
