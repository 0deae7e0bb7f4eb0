package httpapi

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/imageproc"
)

// handleInfo serves POST /info: the image from the body, taken in by the
// intake as for /resize (the same limits, admission and errors), and what
// it is back as JSON. The route has no parameters: any is refused before
// the body is read, as /resize refuses the ones it does not know.
func handleInfo(p *imageproc.Processor, in *intake) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := noParameters(r.URL.RawQuery); err != nil {
			writeError(w, r, err)
			return
		}
		body, err := in.take(w, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer body.close()
		info, err := p.Info(r.Context(), body.Bytes())
		body.free() // the worker is done with the bytes
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, infoJSON(info))
	})
}

// noParameters refuses a query string with any parameter in it.
func noParameters(rawQuery string) error {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return fmt.Errorf("%w: query: %v", errBadRequest, err)
	}
	for name := range q {
		return fmt.Errorf("%w: unknown parameter %q: /info takes none", errBadRequest, name)
	}
	return nil
}

func infoJSON(i *imageproc.Info) api.ImageInfo {
	out := api.ImageInfo{Format: api.ImageInfoFormat(i.Format.String()), Width: i.Width, Height: i.Height,
		Alpha: i.Alpha, Orientation: i.Orientation, Frames: i.Frames, Pages: i.Pages, Thumbhash: i.ThumbHash}
	if i.Dominant != nil {
		c := i.Dominant.String()
		out.DominantColor = &c
	}
	return out
}
