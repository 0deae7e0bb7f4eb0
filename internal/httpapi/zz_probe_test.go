package httpapi

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/resizer/resizer/imageurl"
)

func TestZZProbe(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/x.jpg", testJPEG(t, 64, 64))
	p := sign(t, testSigningKey, imageurl.Request{Key: "uploads/x.jpg", Options: opts("width", "8")})
	s.do(t, "HEAD", "/openapi.yaml", nil, nil)
	s.do(t, "GET", "/openapi.yaml", nil, nil)
	r, _ := s.do(t, "HEAD", p, nil, nil)
	s.do(t, "GET", p, nil, http.Header{"If-None-Match": {r.Header.Get("ETag")}})
	s.do(t, "HEAD", "/nowhere", nil, nil)
	s.do(t, "HEAD", "/readyz", nil, nil)
	for _, l := range strings.Split(s.logs.String(), "\n") {
		fmt.Println(l)
	}
}
