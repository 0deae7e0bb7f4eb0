package httpapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/resizer/resizer/internal/imageproc"
)

// handleResize serves POST /resize: options from the query, the image from
// the body, the resized image back. Options are checked before the body is
// read, and the request takes its place at the gate before reading the
// body, so a flood of large uploads waits for admission instead of filling
// memory.
func handleResize(p *imageproc.Processor, maxBody int64, maxDimension int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, fmt.Errorf("%w: query: %v", imageproc.ErrBadOption, err))
			return
		}
		opts, err := imageproc.ParseOptions(q, maxDimension)
		if err != nil {
			writeError(w, r, err)
			return
		}
		done, err := p.Gate().Admit()
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer done()
		buf := getBuffer()
		body, err := readImage(w, r, maxBody, buf)
		if err != nil {
			putBuffer(buf)
			writeError(w, r, err)
			return
		}
		if opts.Auto {
			opts.Format = imageproc.Negotiate(r.Header.Get("Accept"))
			w.Header().Set("Vary", "Accept")
		}
		res, err := p.Process(r.Context(), body, opts)
		if !imageproc.MayStillRead(err) {
			putBuffer(buf)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", res.Format.ContentType())
		h.Set("Content-Length", strconv.Itoa(len(res.Data)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.Data)
	})
}

// readImage returns the image in the request body: the body itself, or the
// field "file" of a multipart/form-data body. The body is read whole, at
// most maxBody bytes (errTooLarge past that); an empty image or a form
// without the file is errBadRequest.
func readImage(w http.ResponseWriter, r *http.Request, maxBody int64, buf *bytes.Buffer) ([]byte, error) {
	if r.ContentLength > maxBody {
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", errTooLarge, r.ContentLength, maxBody)
	}
	body := http.MaxBytesReader(w, r.Body, maxBody)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var data []byte
	var err error
	if mt == "multipart/form-data" {
		data, err = readFilePart(body, params["boundary"], buf)
	} else {
		data, err = readAll(body, r.ContentLength, buf)
	}
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: the image is empty", errBadRequest)
	}
	return data, nil
}

// readAll reads r whole into b, sized up front when the length is known.
func readAll(r io.Reader, size int64, b *bytes.Buffer) ([]byte, error) {
	if size > 0 {
		b.Grow(int(size) + bytes.MinRead)
	}
	if _, err := b.ReadFrom(r); err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	return b.Bytes(), nil
}

// bodies recycles request-body buffers. Bodies are MiBs each: a fresh one
// per request costs page faults and zeroing of every page, and garbage
// that grows the heap, before any image work starts.
var bodies = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return bodies.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	b.Reset()
	bodies.Put(b)
}

// readFilePart reads a multipart body whose first part must be the field
// "file": options belong in the query string, so any other field is a
// mistake worth reporting, and nothing past the file is read.
func readFilePart(body io.Reader, boundary string, buf *bytes.Buffer) ([]byte, error) {
	if boundary == "" {
		return nil, fmt.Errorf("%w: multipart body without a boundary", errBadRequest)
	}
	part, err := multipart.NewReader(body, boundary).NextPart()
	if err == io.EOF {
		return nil, fmt.Errorf("%w: the form has no field \"file\"", errBadRequest)
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: multipart: %v", errBadRequest, err)
	}
	if part.FormName() != "file" {
		return nil, fmt.Errorf("%w: unexpected form field %q before \"file\": options go in the query string", errBadRequest, part.FormName())
	}
	return readAll(part, 0, buf)
}
