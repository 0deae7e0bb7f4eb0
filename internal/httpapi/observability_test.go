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
	"github.com/resizer/resizer/internal/storage"
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

// Every line logged while a request is served carries its request id,
// the lines of the work it starts beside its answer too: here the
// delivery's, when the cache it writes to refuses the writes (a file
// stands where its folder should be), so that the image is served but
// neither kept nor its path recorded.
func TestEveryLineOfARequestCarriesItsID(t *testing.T) {
	s := newTestServer(t, nil)
	s.putOriginal(t, "uploads/x.jpg", testJPEG(t, 32, 32))
	if _, err := s.local.Put(t.Context(), "resized/_cache", []byte("in the way"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i, w := range []string{"8", "9", "10"} {
		id := fmt.Sprintf("req-%d", i)
		ids[id] = true
		p := sign(t, testSigningKey, imageurl.Request{Key: "uploads/x.jpg", Options: opts("width", w)})
		resp, body := s.do(t, "GET", p, nil, http.Header{"X-Request-Id": {id}})
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "private, no-store" {
			t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
		}
	}
	s.deps.Delivery.Wait()
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(s.logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		id, _ := m["req_id"].(string)
		if !ids[id] {
			t.Errorf("a line without its request's id: %s", l)
		}
		seen[m["message"].(string)] = true
	}
	for _, msg := range []string{"request", "derived image not kept", "served path not recorded: answered uncacheable"} {
		if !seen[msg] {
			t.Errorf("no line %q in %s", msg, s.logs.String())
		}
	}
}

// /metrics does not grow with what clients choose: thousands of distinct
// paths, keys, methods and request ids add no series once each kind of
// answer has been counted.
func TestMetricsDoNotGrowWithClientChoices(t *testing.T) {
	s := newTestServer(t, nil)
	series := func() int {
		mfs, err := s.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mf := range mfs {
			n += len(mf.GetMetric())
		}
		return n
	}
	send := func(i int) {
		m := []string{"GET", "POST", "PUT", "DELETE", fmt.Sprintf("M%d", i)}[i%5]
		p := []string{"/nowhere/%d", "/objects/uploads%%2F%d.jpg", "/img/%d/width=8/uploads/x.jpg", "/uploads/k%d.jpg", "/healthz/%d"}[i/5%5]
		req, err := http.NewRequest(m, s.URL+fmt.Sprintf(p, i), nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Request-Id", fmt.Sprintf("id-%d", i))
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	for i := range 50 {
		send(i)
	}
	before := series()
	for i := 50; i < 3000; i++ {
		send(i)
	}
	if after := series(); after != before {
		t.Fatalf("%d series after 50 requests, %d after 3000", before, after)
	}
}
