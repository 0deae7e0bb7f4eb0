package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/s3test"
)

// started is a run() in the background, on a random port.
type started struct {
	url    string
	done   chan error
	cancel context.CancelFunc
	logs   *logbuf.Buffer
}

// start calls run as main does, with env as the whole environment and
// ADDR on port 0, and waits for its "listening" log line.
func start(t *testing.T, env map[string]string) *started {
	t.Helper()
	if env["ADDR"] == "" {
		env["ADDR"] = "127.0.0.1:0"
	}
	if env["DATA_DIR"] == "" {
		env["DATA_DIR"] = t.TempDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &started{done: make(chan error, 1), cancel: cancel, logs: &logbuf.Buffer{}}
	go func() {
		err := run(ctx, []string{"server"}, func(k string) string { return env[k] }, pw)
		pw.Close()
		s.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			s.logs.Write(append(sc.Bytes(), '\n'))
			var line struct{ Message, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Message == "listening" {
				addr <- line.Addr
			}
		}
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line within 10s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-s.done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return after cancel")
		}
	})
	return s
}

func post(t *testing.T, url string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	return contract.Do(t, nil, req)
}

// The whole service, through run and real HTTP: the README's curl example.
func TestRunResizes(t *testing.T) {
	s := start(t, map[string]string{})
	resp, body := post(t, s.url+"/resize?width=800", imagetest.Photo(t))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil || format != "jpeg" || cfg.Width != 800 || cfg.Height != 500 {
		t.Fatalf("got %s %dx%d (%v)", format, cfg.Width, cfg.Height, err)
	}
	resp, body = post(t, s.url+"/resize?width=800", []byte("not an image"))
	if resp.StatusCode != 415 || !strings.Contains(string(body), "unsupported-format") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		r, err := http.Get(s.url + p)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, r, err)
		}
		r.Body.Close()
	}
}

// On the embedded default, an upload's manifest is usable in a page as it
// is: every URL of its srcset and of its variants is served by the server
// itself, and is an image of the width the srcset says.
func TestRunManifestURLsServeOnTheLocalStore(t *testing.T) {
	s := start(t, map[string]string{"VARIANTS": "thumb:64x64:cover,small:320x0,big:900x0:webp"})
	resp, body := post(t, s.url+"/uploads?key=a%20b/c.jpg", imagetest.Photo(t))
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var m struct {
		Srcset   string
		Variants []struct {
			URL   string
			Width int
		}
	}
	if err := json.Unmarshal(body, &m); err != nil || len(m.Variants) != 3 {
		t.Fatalf("%v: %s", err, body)
	}
	widths := map[string]int{}
	for _, v := range m.Variants {
		widths[v.URL] = v.Width
	}
	candidates := strings.Split(m.Srcset, ", ")
	if len(candidates) != 2 { // the square crop is no candidate
		t.Fatalf("srcset %q", m.Srcset)
	}
	for _, c := range candidates {
		u, w, _ := strings.Cut(c, " ")
		if want := fmt.Sprintf("%dw", widths[u]); w != want {
			t.Errorf("srcset candidate %q: %s, the variant's width is %s", c, w, want)
		}
	}
	for u, w := range widths {
		if !strings.HasPrefix(u, "/objects/") {
			t.Errorf("%s: not a URL of this server", u)
			continue
		}
		r, err := http.Get(s.url + u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if r.StatusCode != 200 || (err == nil && cfg.Width != w) || (err != nil && !strings.HasSuffix(u, ".webp")) {
			t.Errorf("%s: %d, %v, width %d, want %d", u, r.StatusCode, err, cfg.Width, w)
		}
	}
}

func TestRunRequiresKeysWhenConfigured(t *testing.T) {
	s := start(t, map[string]string{"API_KEYS": "secret-one,secret-two"})
	resp, _ := post(t, s.url+"/resize?width=10", imagetest.Photo(t))
	if resp.StatusCode != 401 {
		t.Fatalf("without a key: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", s.url+"/resize?width=10", bytes.NewReader(imagetest.Photo(t)))
	req.Header.Set("Authorization", "Bearer secret-two")
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("with a key: %v %v", r, err)
	}
	r.Body.Close()
	if strings.Contains(s.logs.String(), "secret-") {
		t.Fatal("a key reached the log")
	}
}

// On shutdown the server stops accepting, but a request in flight
// finishes with its answer.
func TestRunDrainsOnShutdown(t *testing.T) {
	s := start(t, map[string]string{})
	got := make(chan int, 1)
	go func() {
		// An AVIF of a 4 MP photo takes a moment: long enough to be in
		// flight when the shutdown starts.
		resp, err := http.Post(s.url+"/resize?format=avif&quality=90", "image/jpeg", bytes.NewReader(imagetest.Photo(t)))
		if err != nil {
			got <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !inFlight(t, s.url) {
		if time.Now().After(deadline) {
			t.Fatal("request never in flight")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := <-got; code != 200 {
		t.Fatalf("in-flight request got %d", code)
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after SIGTERM")
	}
	s.done <- nil // for the cleanup
	if _, err := http.Get(s.url + "/healthz"); err == nil {
		t.Fatal("still accepting after shutdown")
	}
	if !strings.Contains(s.logs.String(), `"shutting down"`) || !strings.Contains(s.logs.String(), `"stopped"`) {
		t.Fatalf("shutdown not logged: %s", s.logs.String())
	}
}

// With EMF_NAMESPACE the server writes its metrics into its log in
// CloudWatch's embedded metric format, the last minute's as it stops.
func TestRunWritesEmbeddedMetrics(t *testing.T) {
	s := start(t, map[string]string{"EMF_NAMESPACE": "resizer/test"})
	if resp, _ := post(t, s.url+"/resize?width=100", imagetest.Photo(t)); resp.StatusCode != 200 {
		t.Fatalf("resize: %d", resp.StatusCode)
	}
	s.cancel()
	if err := <-s.done; err != nil {
		t.Fatal(err)
	}
	s.done <- nil // for the cleanup
	var found bool
	for _, l := range strings.Split(s.logs.String(), "\n") {
		var line struct {
			AWS struct {
				CloudWatchMetrics []struct{ Namespace string }
			} `json:"_aws"`
			ProcessSeconds float64
		}
		if json.Unmarshal([]byte(l), &line) == nil && len(line.AWS.CloudWatchMetrics) == 1 &&
			line.AWS.CloudWatchMetrics[0].Namespace == "resizer/test" && line.ProcessSeconds > 0 {
			found = true
		}
	}
	if !found {
		t.Fatalf("no EMF line with the resize's processing time:\n%s", s.logs.String())
	}
}

// The embedded default's upload URLs lead back to the address the server
// listens on (its real port, though ADDR asked for port 0), whatever Host
// header the request for them carried, and the upload through one works.
func TestRunUploadURLsNameTheListener(t *testing.T) {
	s := start(t, map[string]string{})
	img := imagetest.Photo(t)
	presign := func(url string) string {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/uploads/presign",
			strings.NewReader(fmt.Sprintf(`{"content_type":"image/jpeg","size":%d}`, len(img))))
		req.Header.Set("Content-Type", "application/json")
		req.Host = "evil.example:666"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ URL string }
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || resp.StatusCode != 200 {
			t.Fatalf("presign: %d %v", resp.StatusCode, err)
		}
		return p.URL
	}
	u := presign(s.url)
	if !strings.HasPrefix(u, s.url+"/uploads/") {
		t.Fatalf("upload URL %s, want it under %s", u, s.url)
	}
	req, _ := http.NewRequest("PUT", u, bytes.NewReader(img))
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("upload through the URL: %d", resp.StatusCode)
	}

	s = start(t, map[string]string{"PUBLIC_URL": "https://img.example"})
	if u := presign(s.url); !strings.HasPrefix(u, "https://img.example/uploads/") {
		t.Fatalf("with PUBLIC_URL: upload URL %s", u)
	}
}

// inFlight reads the gate gauge: 1 once the request holds a slot.
func inFlight(t *testing.T, url string) bool {
	t.Helper()
	r, err := http.Get(url + "/metrics")
	if err != nil {
		return false
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return strings.Contains(string(b), "resizer_gate_working 1")
}

func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"server", "--help"}, func(string) string { return "" }, &out); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"ADDR", "MAX_BODY_BYTES", "CONCURRENCY", "32MiB"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("help lacks %s", v)
		}
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	env := map[string]string{"MAX_PIXELS": "lots", "LOG_FORMAT": "xml"}
	err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "MAX_PIXELS") || !strings.Contains(err.Error(), "LOG_FORMAT") {
		t.Fatalf("err = %v", err)
	}
	err = run(context.Background(), []string{"server", "--bogus"}, func(string) string { return "" }, io.Discard)
	if err == nil {
		t.Fatal("unknown argument accepted")
	}
	env = map[string]string{"ALLOW_ANONYMOUS": "false"}
	if err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "API_KEYS") {
		t.Fatalf("anonymous refused without keys: err = %v", err)
	}
	dir := t.TempDir()
	if err := run(context.Background(), []string{"server"}, func(k string) string {
		return map[string]string{"ADDR": "256.0.0.1:1", "DATA_DIR": dir}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("bad address: err = %v", err)
	}
}

// The S3 mode end to end: run against a real MinIO, an upload through HTTP
// leaves the original and its variants in the bucket.
func TestRunWithS3(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	s := start(t, map[string]string{
		"S3_BUCKET": bucket, "S3_ENDPOINT": srv.Endpoint, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": srv.Region, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		"API_KEYS": "e2e-key", "VARIANTS": "small:300x0,square:100x100:cover:webp",
		"VARIANTS_BASE_URL": "https://cdn.example/img",
	})
	req, _ := http.NewRequest("POST", s.url+"/uploads?key=e2e/photo.jpg", bytes.NewReader(imagetest.Photo(t)))
	req.Header.Set("Authorization", "Bearer e2e-key")
	resp, body := contract.Do(t, nil, req)
	if resp.StatusCode != 201 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	for _, k := range []string{"uploads/e2e/photo.jpg", "resized/small/e2e/photo.jpg", "resized/square/e2e/photo.jpg.webp"} {
		if _, err := srv.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: &bucket, Key: &k}); err != nil {
			t.Errorf("%s: %v", k, err)
		}
	}
	// The answer is the manifest kept beside the variants.
	mk := "resized/_manifest/e2e/photo.jpg.json"
	obj, err := srv.Client().GetObject(t.Context(), &s3.GetObjectInput{Bucket: &bucket, Key: &mk})
	if err != nil {
		t.Fatalf("manifest: %v", err)
	}
	stored, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	var answer, manifest map[string]any
	if json.Unmarshal(body, &answer) != nil || json.Unmarshal(stored, &manifest) != nil {
		t.Fatalf("answer %s, manifest %s", body, stored)
	}
	want := "https://cdn.example/img/resized/small/e2e/photo.jpg 300w" // the square crop is no candidate
	if manifest["srcset"] != want || manifest["thumbhash"] == nil || manifest["dominant_color"] == nil {
		t.Errorf("manifest %s", stored)
	}
	for k, v := range manifest {
		if fmt.Sprint(answer[k]) != fmt.Sprint(v) {
			t.Errorf("upload answer's %s: %v, manifest's %v", k, answer[k], v)
		}
	}
	r, err := http.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.Contains(string(b), `"storage":"ok"`) {
		t.Fatalf("readyz: %d %s", r.StatusCode, b)
	}
}

// The loop the original system had to fix by hand does not start.
func TestRunRefusesLoopingPrefixes(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "INPUT_PREFIX": "images/", "OUTPUT_PREFIX": "images/small/"}
	err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "OUTPUT_PREFIX") || !strings.Contains(err.Error(), "inside") {
		t.Fatalf("err = %v", err)
	}
}

func TestMain(m *testing.M) {
	imageproc.ServeWorkerIfAsked()
	code := m.Run()
	// A test run writes nothing into the source tree: a run on the
	// default DATA_DIR (./data) would.
	if _, err := os.Stat("data"); err == nil {
		fmt.Fprintln(os.Stderr, "a test wrote cmd/server/data: give every run a DATA_DIR of its own")
		code = 1
	}
	s3test.Stop()
	os.Exit(code)
}

func TestHealthcheckCommand(t *testing.T) {
	s := start(t, map[string]string{})
	addr := strings.TrimPrefix(s.url, "http://")
	env := map[string]string{"ADDR": addr}
	if err := run(context.Background(), []string{"server", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	_, port, _ := strings.Cut(addr, ":")
	env["ADDR"] = "0.0.0.0:" + port // as in the container
	if err := run(context.Background(), []string{"server", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatalf("0.0.0.0 address: %v", err)
	}
	env["ADDR"] = "127.0.0.1:1"
	if err := run(context.Background(), []string{"server", "healthcheck"}, func(k string) string { return env[k] }, io.Discard); err == nil {
		t.Fatal("no server, yet healthy")
	}
}

// With DRAIN_DELAY, a stopping server goes on serving for that long while
// /readyz answers 503 "draining", so that a platform routing by readiness
// can move traffic away before the listener closes.
func TestDrainDelay(t *testing.T) {
	s := start(t, map[string]string{"DRAIN_DELAY": "1s"})
	s.cancel() // as SIGTERM does
	eventually(t, 5*time.Second, "draining", func() error {
		resp, err := http.Get(s.url + "/readyz")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), `"draining"`) {
			return fmt.Errorf("readyz %d %s", resp.StatusCode, b)
		}
		return nil
	})
	if resp, _ := post(t, s.url+"/resize?width=10", imagetest.Photo(t)); resp.StatusCode != http.StatusOK {
		t.Fatalf("resize while draining: %d", resp.StatusCode)
	}
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after the drain delay")
	}
}

// A second SIGTERM cuts the drain short, whether it comes during
// DRAIN_DELAY or while a request in flight holds the shutdown: whoever
// sends it will not wait for the rest of either.
func TestSecondSignalCutsTheDrain(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		wait string // the log line after which the second signal goes
	}{
		{"during DRAIN_DELAY", map[string]string{"DRAIN_DELAY": "60s"}, `"draining: readiness off"`},
		{"during the shutdown", map[string]string{"SHUTDOWN_TIMEOUT": "60s", "MIN_BODY_RATE": "0", "READ_TIMEOUT": "2m"}, `"shutting down"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := start(t, c.env)
			// A body that never ends holds its request in flight.
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /resize?width=10 HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n\xff\xd8")
			time.Sleep(100 * time.Millisecond)
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, c.wait, func() error {
				if !strings.Contains(s.logs.String(), c.wait) {
					return fmt.Errorf("no %s in %s", c.wait, s.logs.String())
				}
				return nil
			})
			sent := time.Now()
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-s.done:
				s.done <- err // for the cleanup
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("run did not return after a second SIGTERM")
			}
			if d := time.Since(sent); d > 5*time.Second {
				t.Fatalf("stopped %s after the second signal", d)
			}
			if !strings.Contains(s.logs.String(), `"second signal: cutting the drain short"`) {
				t.Fatalf("not logged: %s", s.logs.String())
			}
		})
	}
}

// Every fault of the configuration is reported at once, before anything
// starts: those of config itself, a bad VARIANTS, and prefixes that loop.
func TestEveryConfigurationFaultAtOnce(t *testing.T) {
	env := map[string]string{"MAX_PIXELS": "lots", "VARIANTS": "thumb:tiny", "INPUT_PREFIX": "a/", "OUTPUT_PREFIX": "a/b/",
		"DATA_DIR": t.TempDir()}
	err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("started")
	}
	for _, want := range []string{"MAX_PIXELS", "VARIANTS", "INPUT_PREFIX/OUTPUT_PREFIX"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the report does not name %s: %v", want, err)
		}
	}
}

// A bad READY_CALLBACK_URL is reported once, as config reports it, and
// without the password it carries: the report is printed, and on ECS kept.
func TestBadCallbackURLReportedOnce(t *testing.T) {
	env := map[string]string{"READY_CALLBACK_URL": "ftp://hook:CALLBACK-SECRET@hooks.example.com/ready",
		"WEBHOOK_SECRETS": "w", "DATA_DIR": t.TempDir()}
	err := run(context.Background(), []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil {
		t.Fatal("started")
	}
	if n := strings.Count(err.Error(), "READY_CALLBACK_URL"); n != 1 || strings.Contains(err.Error(), "CALLBACK-SECRET") {
		t.Fatalf("READY_CALLBACK_URL reported %d times, or with its password: %v", n, err)
	}
}

// The formats configuration knows are the format table's, and its default
// INPUT_FORMATS are the table's defaults.
func TestConfigFormatsAreTheTable(t *testing.T) {
	c, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var defaults []string
	for _, f := range imageproc.DefaultInputFormats {
		defaults = append(defaults, f.String())
	}
	if strings.Join(c.InputFormats, ",") != strings.Join(defaults, ",") {
		t.Errorf("INPUT_FORMATS defaults to %v, the table's defaults are %v", c.InputFormats, defaults)
	}
	load := func(formats string) error {
		c, err := config.Load(func(k string) string { return map[string]string{"INPUT_FORMATS": formats}[k] })
		_, err = settle(c, err)
		return err
	}
	for _, f := range imageproc.AllFormats {
		if err := load(f.String()); err != nil {
			t.Errorf("the configuration refuses the table's format %s: %v", f, err)
		}
	}
	// The table's other names too, in any case.
	if err := load("JPG, heic,tif"); err != nil {
		t.Errorf("the configuration refuses the table's aliases: %v", err)
	}
	if err := load("jpeg,bmp"); err == nil || !strings.Contains(err.Error(), "INPUT_FORMATS") || !strings.Contains(err.Error(), "bmp") {
		t.Errorf("a format the table does not know: %v, want an error naming INPUT_FORMATS and bmp", err)
	}
}
