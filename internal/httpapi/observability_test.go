package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
)

// No credential a request carries, in its path, its query or its headers,
// reaches a log line, a problem's detail or /metrics, whatever the route
// and the method: every route of openapi.yaml, with every method, a few
// of its paths cut short or run on, each sent with an API key (right and
// wrong), a webhook token and signature, and the query parameters of
// signed upload URLs and S3 presigned URLs.
func TestNoCredentialReachesLogsProblemsOrMetrics(t *testing.T) {
	const apiKey = "api-key-secret-7f3a9c"
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.APIKeys = []string{apiKey} })
	s.putOriginal(t, "uploads/x.jpg", testJPEG(t, 16, 16))
	imgPath := sign(t, testSigningKey, imageurl.Request{Key: "uploads/x.jpg", Options: opts("width", "8"),
		Expires: time.Now().Add(time.Hour)})
	imgSig := strings.Split(imgPath, "/")[2]
	secrets := []string{apiKey, "wrong-key-9d1e44", "webhook-secret", testSigningKey, imgSig,
		"0123456789abcdef0123456789abcdef01234567", "AKIAEXAMPLE0SECRET", "amz-token-5b7c", "upload-sig-8e2f"}
	query := "?sig=upload-sig-8e2f&X-Amz-Signature=0123456789abcdef0123456789abcdef01234567" +
		"&X-Amz-Credential=AKIAEXAMPLE0SECRET%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Security-Token=amz-token-5b7c"
	headers := []http.Header{
		{"Authorization": {"Bearer " + apiKey}},
		{"Authorization": {"Bearer wrong-key-9d1e44"}},
		{"Authorization": {"Bearer webhook-secret"}},
		{"Authorization": {"Basic " + apiKey}},
		{"Resizer-Signature": {fmt.Sprintf("t=%d,v1=0123456789abcdef0123456789abcdef01234567", time.Now().Unix())}},
	}
	var paths []string
	for p := range contract.Doc(t).Paths.Map() {
		if strings.HasPrefix(p, "/img/") {
			paths = append(paths, imgPath, imgPath+"/", "/img/"+imgSig, "/img/"+imgSig+"/", "/img/"+imgSig+"/width=8")
			continue
		}
		p = strings.NewReplacer("{key}", "uploads%2Fx.jpg", "{file}", "app.js").Replace(p)
		paths = append(paths, p, p+"/")
	}
	body := testJPEG(t, 8, 8)
	sent := 0
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
			for _, q := range []string{"", query} {
				for _, h := range headers {
					if m == "PUT" && p == "/uploads/presign" {
						continue // PUT /uploads/{key}, the key "presign"
					}
					resp, b := s.do(t, m, p+q, body, h)
					sent++
					if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || m == "HEAD" {
						continue
					}
					var prob struct{ Detail string }
					if err := json.Unmarshal(b, &prob); err != nil {
						t.Fatalf("%s %s: %v", m, p, err)
					}
					for _, sec := range secrets {
						if strings.Contains(prob.Detail, sec) {
							t.Errorf("%s %s%s: the problem's detail holds %q: %s", m, p, q, sec, prob.Detail)
						}
					}
				}
			}
		}
	}
	s.deps.Delivery.Wait()
	_, metrics := s.do(t, "GET", "/metrics", nil, nil)
	for _, sec := range secrets {
		for _, l := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(l, sec) {
				t.Errorf("%q logged: %s", sec, l)
				break
			}
		}
		if strings.Contains(string(metrics), sec) {
			t.Errorf("%q in /metrics", sec)
		}
	}
	if sent < 500 {
		t.Fatalf("only %d requests sent", sent)
	}
}
