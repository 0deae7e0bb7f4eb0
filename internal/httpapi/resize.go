package httpapi

import (
	"net/http"
	"strconv"

	"github.com/resizer/resizer/internal/imageproc"
)

// handleResize serves POST /resize: options from the query, the image from
// the body, the resized image back. Options are checked before the body is
// read; the body is taken in by the intake, which bounds its memory and
// time and admits it to processing only once it is complete.
func handleResize(p *imageproc.Processor, in *intake, maxDimension int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		opts, auto, err := imageOptions(r.URL.RawQuery, fieldList(r.Header, "Accept"), maxDimension)
		if err != nil {
			writeError(w, r, err)
			return
		}
		body, err := in.take(w, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer body.close()
		if auto {
			w.Header().Set("Vary", "Accept")
		}
		res, err := p.Process(r.Context(), body.Bytes(), opts)
		body.free() // the worker has the bytes: close would free them too, later
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
