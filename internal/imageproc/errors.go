package imageproc

import "errors"

// The failures of image work. Each is wrapped with detail; callers test with
// errors.Is and map them to HTTP status in one place (internal/httpapi).
var (
	// ErrBadOption: an option is unknown, repeated, malformed or out of range.
	ErrBadOption = errors.New("bad option")
	// ErrUnsupported: the bytes are not an image in an enabled input format.
	ErrUnsupported = errors.New("unsupported image format")
	// ErrUndecodable: the bytes claim a supported format but cannot be
	// decoded (truncated, corrupt, inconsistent header).
	ErrUndecodable = errors.New("undecodable image")
	// ErrTooLarge: the image, or the output asked for, is over a pixel or
	// dimension limit.
	ErrTooLarge = errors.New("image too large")
	// ErrBusy: the gate's queue is full or the wait for a slot ran out. The
	// request may be retried.
	ErrBusy = errors.New("image processing busy")
	// ErrTimeout: processing took longer than the configured timeout.
	ErrTimeout = errors.New("image processing timed out")
	// ErrUnsatisfiable: the image is decodable and the options valid, but
	// together they cannot be met (no quality fits max_bytes; trim would
	// leave nothing).
	ErrUnsatisfiable = errors.New("cannot be made as asked")
)

// ErrBadWatermark: a watermark that an option names cannot be used (there
// is none of that name, the server has no watermarks, or the file is not
// an image this server takes or is over a limit). It is an ErrBadOption,
// and reads as one ("bad option: ..."), for a client whose request named
// the watermark; a caller whose options are its own configuration (the
// pipeline's VARIANTS) tells it apart, since there the fault is neither
// the image's nor a client's but the configuration's, and a watermark
// uploaded later mends it.
var ErrBadWatermark error = &wrapped{msg: ErrBadOption.Error(), sentinel: ErrBadOption}
