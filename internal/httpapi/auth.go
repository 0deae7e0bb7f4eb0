package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// requireAPIKey lets a request through when it carries
// "Authorization: Bearer <key>" with one of keys. With no keys configured
// every request passes: the server refuses to start that way unless
// anonymous access was allowed explicitly. Keys are compared as SHA-256
// digests in constant time, so neither their content nor their length leaks
// through timing.
func requireAPIKey(keys []string) func(http.Handler) http.Handler {
	digests := make([][32]byte, len(keys))
	for i, k := range keys {
		digests[i] = sha256.Sum256([]byte(k))
	}
	return func(next http.Handler) http.Handler {
		if len(keys) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
				writeError(w, r, fmt.Errorf("%w: no bearer token", errUnauthorized))
				return
			}
			d := sha256.Sum256([]byte(strings.TrimSpace(key)))
			match := 0
			for i := range digests {
				match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
			}
			if match != 1 {
				writeError(w, r, fmt.Errorf("%w: unknown key", errUnauthorized))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
