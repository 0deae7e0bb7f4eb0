package httpapi

import (
	"context"
	"crypto/rand"
	"net/http"
	"regexp"
)

type requestIDKey struct{}

// validRequestID is what an incoming X-Request-Id must look like to be
// kept: short, and safe to put in logs and headers.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// withRequestID gives every request an id: the caller's X-Request-Id when it
// is safe to keep (a load balancer or client may set one to follow a
// request across services), a new random one otherwise. The id goes back in
// the X-Request-Id response header.
func withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID.MatchString(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id)))
	})
}

// requestID returns the request's id, or "" outside withRequestID.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
