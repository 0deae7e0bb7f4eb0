package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/resizer/resizer/internal/imageproc"
)

// intake takes in the image bodies of POST /resize, POST /uploads and
// PUT /uploads/{key}. Reading a body and processing it are bounded
// separately, because they cost different things:
//
//   - Processing costs CPU and libvips memory: it takes one of the gate's
//     places (CONCURRENCY working + QUEUE_SIZE waiting), and only once its
//     body is complete, so a client that sends slowly holds no place while
//     it sends. A request that arrives when every place is taken is refused
//     at once, before its body is read: shedding stays cheap.
//   - Reading costs memory and time. The memory is counted in the bytes
//     actually buffered, against one budget (BODY_MEMORY) shared by every
//     body in flight, from its first byte until its processing ends; a body
//     that would go over it is refused with 503. A slow client therefore
//     costs what it has sent (one small first buffer), and the memory of
//     bodies stays bounded however many connections are open. The time is
//     bounded by READ_TIMEOUT and MIN_BODY_RATE (see pacedBody), 408.
//   - Each client address and each API key may have MAX_PER_CLIENT
//     requests in flight (see perClient), 429.
//
// Buffers grow as bytes arrive, never to a Content-Length that has not
// arrived (a client declaring 32 MiB and sending a byte a second would
// otherwise hold 32 MiB), through size classes that double from
// firstBuffer to MAX_BODY_BYTES. Each class has its own pool: a fresh MiBs
// buffer per request costs page faults and zeroing of every page, and
// garbage that grows the heap, before any image work starts.
type intake struct {
	gate    *imageproc.Gate
	clients *perClient
	pacing  pacing
	maxBody int64
	budget  int64
	held    atomic.Int64 // bytes of buffers in use, charged to budget
	classes []bufferClass
}

// A bufferClass is a pool of buffers with room for size bytes of body, and
// bytes.MinRead more, which bytes.Buffer.ReadFrom needs free to see the
// end of the body without growing the buffer itself.
type bufferClass struct {
	size int
	pool sync.Pool
}

// firstBuffer is what a body holds before it has sent much: small, since a
// slow client costs this much of BODY_MEMORY; large enough for a
// thumbnail-sized image in one buffer.
const firstBuffer = 16 << 10

func newIntake(gate *imageproc.Gate, cfg Config, reg prometheus.Registerer) (*intake, error) {
	x := &intake{
		gate:    gate,
		clients: newPerClient(cfg.MaxPerClient, cfg.TrustedProxies),
		pacing:  pacing{readTimeout: cfg.ReadTimeout, minRate: cfg.MinBodyRate, grace: cfg.MinBodyRateGrace},
		maxBody: cfg.MaxBodyBytes,
		budget:  cfg.BodyMemory,
	}
	for size := int64(firstBuffer); ; size *= 2 {
		if size >= x.maxBody {
			x.classes = append(x.classes, bufferClass{size: int(x.maxBody)})
			break
		}
		x.classes = append(x.classes, bufferClass{size: int(size)})
	}
	held := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "resizer_body_memory_bytes",
		Help: "Bytes of request-body buffers in use, counted against BODY_MEMORY.",
	}, func() float64 { return float64(x.held.Load()) })
	if err := reg.Register(held); err != nil {
		return nil, err
	}
	return x, nil
}

// A body is a request's image, read whole, with what it holds: its
// buffer's worth of BODY_MEMORY, its client's count, and (once complete) a
// place at the gate.
type body struct {
	x      *intake
	buf    *bytes.Buffer // nil until the first byte is awaited
	class  int
	held   int64 // charged to x.held
	leave  func()
	done   func() // the gate place; nil until admitted
	closed bool
}

// take reads r's image and admits it to processing: the steps in order,
// each of which may refuse the request (see intake). The caller must call
// close on the body, and free once the bytes are no longer needed.
func (x *intake) take(w http.ResponseWriter, r *http.Request) (*body, error) {
	// The deadlines are set first: they also bound what net/http reads of
	// a refused body, to keep the connection, after the handler returns.
	paced, err := newPacedBody(w, r, x.pacing)
	if err != nil {
		return nil, err
	}
	if err := x.gate.Shed(); err != nil {
		return nil, refuseUnread(w, err)
	}
	leave, err := x.clients.enter(r)
	if err != nil {
		return nil, refuseUnread(w, err)
	}
	b := &body{x: x, leave: leave}
	if err := b.readImage(w, r, paced); err != nil {
		b.close()
		return nil, err
	}
	if b.done, err = x.gate.Admit(); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// refuseUnread prepares the answer to a request refused before its body
// is read. net/http reads up to 256 KiB of a body the handler left before
// it writes the answer (for clients that send everything before they
// read); from a slow client that would delay the refusal by as long as the
// read deadline. Closing the connection after the answer lets it go at
// once.
func refuseUnread(w http.ResponseWriter, err error) error {
	w.Header().Set("Connection", "close")
	return err
}

// Bytes returns the image.
func (b *body) Bytes() []byte { return b.buf.Bytes() }

// free gives the body's buffer back to BODY_MEMORY and to its pool, as
// soon as the image has been made (imageproc returns only once no worker
// reads it). close does it too, so a handler that fails on its way cannot
// skip it. free may be called more than once.
func (b *body) free() {
	if b.buf == nil {
		return
	}
	b.x.put(b.class, b.buf)
	b.x.held.Add(-b.held)
	b.buf, b.held = nil, 0
}

// close frees the body if free was not called, and gives back its gate
// place and its client's count.
func (b *body) close() {
	if b.closed {
		return
	}
	b.closed = true
	b.free()
	if b.done != nil {
		b.done()
	}
	b.leave()
}

// readImage reads the image in r's body: the body itself, or the field
// "file" of a multipart/form-data body. It fails with errTooLarge past
// MAX_BODY_BYTES, errBadRequest for an empty image or a form without the
// file, errBodyMemory when BODY_MEMORY is taken, and as readError says
// when reading fails.
func (b *body) readImage(w http.ResponseWriter, r *http.Request, paced *pacedBody) error {
	if r.ContentLength > b.x.maxBody {
		return fmt.Errorf("%w: %d bytes, over the limit of %d", errTooLarge, r.ContentLength, b.x.maxBody)
	}
	src := http.MaxBytesReader(w, paced, b.x.maxBody)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	if mt == "multipart/form-data" {
		err = b.readFilePart(src, params["boundary"], paced)
	} else {
		err = b.readAll(src, r.ContentLength, paced)
	}
	if err != nil {
		return err
	}
	if b.buf == nil || b.buf.Len() == 0 {
		return fmt.Errorf("%w: the image is empty", errBadRequest)
	}
	return nil
}

// readFilePart reads a multipart body whose one part must be the field
// "file": options belong in the query string, so any other field is a
// mistake worth reporting, and so is a second file, which would otherwise
// go unread while the first is taken, as if both were. The form is read
// to its end (within MAX_BODY_BYTES, as a whole).
func (b *body) readFilePart(src io.Reader, boundary string, paced *pacedBody) error {
	if boundary == "" {
		return fmt.Errorf("%w: multipart body without a boundary", errBadRequest)
	}
	mr := multipart.NewReader(src, boundary)
	part, err := mr.NextPart()
	if err == io.EOF {
		return fmt.Errorf("%w: the form has no field \"file\"", errBadRequest)
	}
	if err != nil {
		return readError(err, paced)
	}
	if part.FormName() != "file" {
		return fmt.Errorf("%w: unexpected form field %q before \"file\": options go in the query string", errBadRequest, part.FormName())
	}
	if err := b.readAll(part, -1, paced); err != nil {
		return err
	}
	switch next, err := mr.NextPart(); {
	case err == io.EOF:
		return nil
	case err != nil:
		return readError(err, paced)
	default:
		return fmt.Errorf("%w: the form holds one file, and then field %q: send one file a request, options in the query string",
			errBadRequest, next.FormName())
	}
}

// readAll reads src to its end, growing the buffer a class at a time as
// bytes arrive. length is the length src is known to have, or -1: a body
// that has sent all of it is not given a larger buffer to find its end.
func (b *body) readAll(src io.Reader, length int64, paced *pacedBody) error {
	if length == 0 {
		return nil
	}
	for {
		if b.buf == nil || b.room() == 0 {
			if b.buf != nil && (b.class == len(b.x.classes)-1 || int64(b.buf.Len()) == length) {
				// Full, at MAX_BODY_BYTES or at its length: it must end
				// here. Either reader answers a one-byte read with EOF
				// (MaxBytesReader with *http.MaxBytesError past its limit).
				var one [1]byte
				n, err := src.Read(one[:])
				switch {
				case err == io.EOF && n == 0:
					return nil
				case err == nil || err == io.EOF:
					return fmt.Errorf("%w: over the limit of %d bytes", errTooLarge, b.x.maxBody)
				default:
					return readError(err, paced)
				}
			}
			if err := b.grow(); err != nil {
				return err
			}
		}
		lr := io.LimitedReader{R: src, N: int64(b.room())}
		if _, err := b.buf.ReadFrom(&lr); err != nil {
			return readError(err, paced)
		}
		if lr.N > 0 {
			return nil // src ended before the buffer was full
		}
	}
}

// room is the body the buffer can still take without growing.
func (b *body) room() int { return b.x.classes[b.class].size - b.buf.Len() }

// grow moves the body to a buffer of the next class, charging it to
// BODY_MEMORY before it is taken (errBodyMemory when that would go over).
// The old buffer is held, and counted, until its bytes are copied.
func (b *body) grow() error {
	next := 0
	if b.buf != nil {
		next = b.class + 1
	}
	c := &b.x.classes[next]
	need := int64(c.size + bytes.MinRead)
	for {
		held := b.x.held.Load()
		if held+need > b.x.budget {
			return fmt.Errorf("%w: %d of BODY_MEMORY's %d bytes in use", errBodyMemory, held, b.x.budget)
		}
		if b.x.held.CompareAndSwap(held, held+need) {
			break
		}
	}
	nb, _ := c.pool.Get().(*bytes.Buffer)
	if nb == nil {
		nb = bytes.NewBuffer(make([]byte, 0, need))
	}
	if b.buf != nil {
		nb.Write(b.buf.Bytes())
		b.x.put(b.class, b.buf)
		b.x.held.Add(-b.held)
	}
	b.buf, b.class, b.held = nb, next, need
	return nil
}

func (x *intake) put(class int, buf *bytes.Buffer) {
	buf.Reset()
	x.classes[class].pool.Put(buf)
}
