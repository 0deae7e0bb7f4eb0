package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/resizer/resizer/api"
)

// A Check reports whether one dependency works.
type Check func(ctx context.Context) error

// checkTimeout bounds each readiness check: a load balancer's probe must
// get an answer before its own timeout.
const checkTimeout = 2 * time.Second

func handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, api.Health{Status: api.Ok})
	})
}

// handleReady runs every check; any failure, or draining, answers 503 so
// that the load balancer sends new requests elsewhere.
func handleReady(checks map[string]Check, draining *atomic.Bool) http.Handler {
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		res := api.Readiness{Status: api.Ready, Checks: map[string]string{}}
		for _, n := range names {
			res.Checks[n] = "ok"
			if err := checks[n](ctx); err != nil {
				res.Checks[n] = err.Error()
				res.Status = api.NotReady
			}
		}
		if draining.Load() {
			res.Status = api.Draining
		}
		code := http.StatusOK
		if res.Status != api.Ready {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, res)
	})
}

func handleOpenAPI(spec []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(spec)
	})
}

// writeJSON answers v, with its Content-Length: the answer is whole once
// it is flushed, even while the handler still works after it (an upload's
// ready signal), where a chunked one would end only with the handler.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // URLs keep their & for people reading them
	_ = enc.Encode(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(code)
	_, _ = w.Write(b.Bytes())
}
