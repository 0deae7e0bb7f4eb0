package httpapi

import (
	"fmt"
	"net/http"
	"runtime/debug"

	"github.com/go-chi/chi/v5/middleware"
	"github.com/rs/zerolog"
)

// withRecover turns a panic in a handler into a logged 500 problem instead
// of a dropped connection. http.ErrAbortHandler keeps its meaning. A panic
// after the response began (its status sent, part of its body perhaps)
// cannot become a problem: a document written after the body would be
// taken as its end, and a chunked body cut short looks whole to the
// client. The connection is aborted instead (http.ErrAbortHandler), so
// that the client sees a broken response, never a wrong one.
func withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			begun := ww.Status() != 0
			zerolog.Ctx(r.Context()).Error().Str("panic", fmt.Sprint(v)).Str("stack", string(debug.Stack())).Bool("response_begun", begun).Msg("panic")
			if begun {
				panic(http.ErrAbortHandler)
			}
			writeError(ww, r, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(ww, r)
	})
}
