package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// keyring holds the SHA-256 digests of the tokens a route accepts. Tokens
// are compared as digests in constant time, so neither their content nor
// their length leaks through timing.
type keyring [][sha256.Size]byte

func newKeyring(tokens []string) keyring {
	k := make(keyring, len(tokens))
	for i, t := range tokens {
		k[i] = sha256.Sum256([]byte(t))
	}
	return k
}

// matches reports whether token is one of the ring's, looking at every
// entry whatever the outcome.
func (k keyring) matches(token string) bool {
	d := sha256.Sum256([]byte(token))
	match := 0
	for i := range k {
		match |= subtle.ConstantTimeCompare(d[:], k[i][:])
	}
	return match == 1
}

// bearerToken is the token of an "Authorization: Bearer <token>" header,
// trimmed; ok is false when the header is missing or of another scheme.
func bearerToken(r *http.Request) (token string, ok bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}

// requireAPIKey lets a request through when it carries
// "Authorization: Bearer <key>" with one of keys. With no keys configured
// every request passes: the server refuses to start that way unless
// anonymous access was allowed explicitly.
func requireAPIKey(keys []string) func(http.Handler) http.Handler {
	ring := newKeyring(keys)
	return func(next http.Handler) http.Handler {
		if len(keys) == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := bearerToken(r)
			if !ok || key == "" {
				writeError(w, r, fmt.Errorf("%w: no bearer token", errUnauthorized))
				return
			}
			if !ring.matches(key) {
				writeError(w, r, fmt.Errorf("%w: unknown key", errUnauthorized))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
