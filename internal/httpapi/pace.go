package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// pacedBody reads a request body under two limits, both enforced through
// the connection's read deadline, so that a client that sends nothing at
// all is cut as surely as one that sends slowly:
//
//   - READ_TIMEOUT: the whole body must have arrived this long after the
//     handler started reading it. (http.Server's ReadTimeout counts from the
//     start of the request; setting a deadline here replaces the server's,
//     so the body gets its own, counted from the end of the headers, which
//     ReadHeaderTimeout bounds.)
//   - MIN_BODY_RATE, with MIN_BODY_RATE_GRACE of slack: every byte received
//     moves the deadline on by 1/rate seconds, and the deadline is never
//     more than the grace ahead of the clock. A body therefore starts with
//     the grace to get going, and is cut once it falls more than the grace
//     behind the rate over any stretch of its transfer: a stall longer than
//     the grace, or a trickle below the rate. A client cannot bank more than
//     the grace by sending fast first, so it cannot then stall for long.
//
// Once a body has been read to its end, net/http lifts the deadline itself
// (it then reads in the background to notice a client that hangs up), so
// a request that waits for a slot or works past it is not disturbed. A
// multipart body is left after its file part: the deadline then stays, and
// bounds what net/http reads of the rest after the handler returns.
//
// A slow client costs little while it is read (see intake), but it holds a
// connection, a goroutine and its place in its client's cap; the rate is
// what makes that hold end early rather than at READ_TIMEOUT.
type pacedBody struct {
	r     io.ReadCloser
	rc    *http.ResponseController
	rate  float64 // bytes per second; 0: no minimum
	grace time.Duration
	end   time.Time // READ_TIMEOUT's deadline; zero: none
	due   time.Time // MIN_BODY_RATE's deadline; zero: none
	// cut is the limit that ended the body, once a deadline has fired;
	// fault a failure to set a deadline, which is ours, not the client's.
	cut, fault error
}

func newPacedBody(w http.ResponseWriter, r *http.Request, p pacing) (*pacedBody, error) {
	now := time.Now()
	b := &pacedBody{r: r.Body, rc: http.NewResponseController(w), rate: float64(p.minRate), grace: p.grace}
	if p.readTimeout > 0 {
		b.end = now.Add(p.readTimeout)
	}
	if p.minRate > 0 {
		b.due = now.Add(p.grace)
	}
	return b, b.arm()
}

// pacing is what a pacedBody enforces.
type pacing struct {
	readTimeout time.Duration
	minRate     int64 // bytes per second
	grace       time.Duration
}

// deadline is the earlier of the two deadlines, and the error that says
// which limit it is.
func (b *pacedBody) deadline() (time.Time, error) {
	if !b.end.IsZero() && (b.due.IsZero() || !b.due.Before(b.end)) {
		return b.end, fmt.Errorf("%w: the body was not complete within READ_TIMEOUT", errRequestTimeout)
	}
	if !b.due.IsZero() {
		return b.due, fmt.Errorf("%w: the body arrived slower than MIN_BODY_RATE (%d bytes/s, %s of slack)",
			errRequestTimeout, int64(b.rate), b.grace)
	}
	return time.Time{}, nil
}

func (b *pacedBody) arm() error {
	d, _ := b.deadline()
	if d.IsZero() {
		return nil // neither limit: the server's own deadline stays
	}
	if err := b.rc.SetReadDeadline(d); err != nil {
		return fmt.Errorf("set the body's read deadline: %w", err)
	}
	return nil
}

func (b *pacedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 && b.rate > 0 {
		credit := time.Duration(float64(n) / b.rate * float64(time.Second))
		b.due = b.due.Add(credit)
		if limit := time.Now().Add(b.grace); b.due.After(limit) {
			b.due = limit
		}
	}
	if err != nil {
		if isTimeout(err) {
			_, b.cut = b.deadline()
		}
		return n, err
	}
	if err := b.arm(); err != nil {
		b.fault = err
		return n, err
	}
	return n, nil
}

// Close closes the request body.
func (b *pacedBody) Close() error { return b.r.Close() }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// readError says whose fault a failed body read is. It is the one place
// that knows how net/http and mime/multipart report a body that went
// wrong, whatever wraps the error on its way up:
//
//   - a deadline that could not be set: 500;
//   - a deadline that fired: 408, naming the limit (see pacedBody);
//   - over MAX_BODY_BYTES (*http.MaxBytesError): 413;
//   - a read after Close (http.ErrBodyReadAfterClose): a bug of ours, 500;
//   - anything else is the client's mistake, 400: a body shorter than its
//     Content-Length (io.ErrUnexpectedEOF), a chunked body cut before its
//     last chunk (io.ErrUnexpectedEOF) or malformed (net/http's chunked
//     reader has plain errors such as "malformed chunked encoding"), a
//     multipart body without its closing boundary (io.ErrUnexpectedEOF from
//     mime/multipart) or with a broken part, a connection reset mid-body.
//     Only the client can cause these: the body reader reads nothing but
//     the client's bytes.
func readError(err error, b *pacedBody) error {
	var tooLarge *http.MaxBytesError
	switch {
	case b != nil && b.fault != nil:
		return b.fault
	case b != nil && b.cut != nil:
		return b.cut
	case isTimeout(err):
		return fmt.Errorf("%w: %v", errRequestTimeout, err)
	case errors.As(err, &tooLarge):
		return fmt.Errorf("%w: over the limit of %d bytes", errTooLarge, tooLarge.Limit)
	case errors.Is(err, http.ErrBodyReadAfterClose):
		return fmt.Errorf("read body: %w", err)
	default:
		return fmt.Errorf("%w: the body is incomplete or malformed: %v", errBadRequest, err)
	}
}
