package imageproc

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
)

// The server and its workers talk over two pipes. Each message is a frame:
// a 4-byte big-endian length, that many bytes of JSON (the message), then
// the payloads the message announces, raw, one after the other. Images
// never pass through JSON: they are written from the request's buffer (or,
// in the worker, from libvips' memory) straight into the pipe.

// maxMessage bounds a frame's JSON: messages are small; a larger length
// means the stream is out of step.
const maxMessage = 1 << 20

// workerInit is the first message to a worker.
type workerInit struct {
	Formats []Format
	Arenas  int
}

// workerHello is a worker's answer to workerInit.
type workerHello struct {
	Version string
	Err     string `json:",omitempty"`
}

// job asks a worker to make outputs of one image, whose bytes follow.
type job struct {
	Header  Header
	Outputs []Options
	Limits  limits
	Size    int // of the image that follows
	// Frames is the number of frames of an animated GIF or WebP, counted in
	// Go from its blocks; libvips' count is checked against it.
	Frames int `json:",omitempty"`
	// Rights are the source's EXIF Artist and Copyright, read in Go,
	// when an output keeps them (keep=copyright).
	Rights *exifRights `json:",omitempty"`
	// Marks are the watermarks the outputs name; their bytes follow the
	// image's, in this order (watermark.go).
	Marks []jobMark `json:",omitempty"`
	marks markBufs  // in the worker: the Marks' bytes
	// Sample, when above zero, asks also for the pixels of the whole
	// image, upright, fit inside a Sample x Sample box (see sample).
	Sample int `json:",omitempty"`
}

// limits are the bounds a worker applies to what it learns only from
// libvips' view of the header.
type limits struct {
	MaxPixels       int64
	MaxOutputPixels int64
	MaxDimension    int
	// MaxFrames and MaxAnimationPixels bound an animation that stays
	// animated (see Config).
	MaxFrames          int
	MaxAnimationPixels int64
	// Qualities are the default qualities, by format, where the
	// configuration sets them (else the format table's).
	Qualities map[Format]int `json:",omitempty"`
}

// reply is a worker's answer to a job; the outputs' bytes follow, in order.
type reply struct {
	Header  Header
	Outputs []replyOutput
	// Sample is the sample asked for; its pixels follow the outputs'.
	Sample *replySample `json:",omitempty"`
	Err    *jobError    `json:",omitempty"`
	// Heap is the worker's C heap in use after the job, for the leak test.
	Heap int64
}

type replyOutput struct {
	Format        Format
	Width, Height int
	Size          int
}

// replySample is a small decode: Width x Height pixels of 8-bit sRGB
// and alpha, not premultiplied, in rows from the top, Size bytes.
type replySample struct {
	Width, Height int
	Size          int
	pixels        []byte // read by the server after the message
}

// jobError carries a failure from a worker, as one of the package's
// sentinels.
type jobError struct {
	Kind string
	Msg  string
}

// errorKinds are the sentinels a worker's failure can carry, by the name
// it travels under. They are looked for in order: ErrBadWatermark is an
// ErrBadOption, and must keep its own name across the pipe.
var errorKinds = []struct {
	kind     string
	sentinel error
}{
	{"undecodable", ErrUndecodable},
	{"unsatisfiable", ErrUnsatisfiable},
	{"too-large", ErrTooLarge},
	{"unsupported", ErrUnsupported},
	{"bad-watermark", ErrBadWatermark},
	{"bad-option", ErrBadOption},
}

func toJobError(err error) *jobError {
	for _, k := range errorKinds {
		if errors.Is(err, k.sentinel) {
			return &jobError{Kind: k.kind, Msg: err.Error()}
		}
	}
	return &jobError{Kind: "internal", Msg: err.Error()}
}

// err turns a jobError back into an error that wraps its sentinel. The
// message already names the sentinel.
func (e *jobError) err() error {
	for _, k := range errorKinds {
		if k.kind == e.Kind {
			return wrapped{msg: e.Msg, sentinel: k.sentinel}
		}
	}
	return fmt.Errorf("worker: %s", e.Msg)
}

// wrapped is an error with a given message that matches a sentinel.
type wrapped struct {
	msg      string
	sentinel error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.sentinel }

// writeFrame writes msg and then the payloads, with one system call where
// the pipe allows.
func writeFrame(w io.Writer, msg any, payloads ...[]byte) error {
	js, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(js)))
	bufs := net.Buffers{hdr[:], js}
	for _, p := range payloads {
		if len(p) > 0 {
			bufs = append(bufs, p)
		}
	}
	_, err = bufs.WriteTo(w)
	return err
}

// readMessage reads a frame's JSON into msg; the caller reads its payloads.
func readMessage(r *bufio.Reader, msg any) error {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxMessage {
		return fmt.Errorf("message of %d bytes: stream out of step", n)
	}
	js := make([]byte, n)
	if _, err := io.ReadFull(r, js); err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	return json.Unmarshal(js, msg)
}
