package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/forwarder"
	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/webhook"
)

var (
	buildOnce sync.Once
	serverBin string
	buildErr  error
)

// serverBinary builds cmd/server once, so that tests can kill it.
func serverBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "resizer-bin-")
		if err != nil {
			buildErr = err
			return
		}
		serverBin = filepath.Join(dir, "server")
		out, err := exec.Command("go", "build", "-o", serverBin, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return serverBin
}

// proc is the server as a separate process.
type proc struct {
	cmd  *exec.Cmd
	logs *logbuf.Buffer
	done chan error
}

func startProc(t *testing.T, env map[string]string) *proc {
	t.Helper()
	p := &proc{logs: &logbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(serverBinary(t))
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done; p.done <- nil })
	eventually(t, 20*time.Second, "server up", func() error {
		resp, err := http.Get("http://" + env["ADDR"] + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	return p
}

// burst is a set of sources in a bucket, and the forwarder that reports
// them to the service as a Lambda would, retrying.
type burst struct {
	t      *testing.T
	minio  *s3test.Server
	client *s3.Client
	fwd    *forwarder.Forwarder
	logs   *logbuf.Buffer
	keys   []string
	etags  map[string]string
}

// retries counts the forwarder's retries so far.
func (b *burst) retries() int { return strings.Count(b.logs.String(), `"retrying"`) }

func newBurst(t *testing.T, m *s3test.Server, serverAddr, prefix string, n int) *burst {
	t.Helper()
	logs := &logbuf.Buffer{}
	f, err := forwarder.New(forwarder.Config{URL: "http://" + serverAddr + "/webhooks/s3", Secrets: e2eSecret,
		InputPrefix: "uploads/", OutputPrefix: "resized/", RequestTimeout: 20 * time.Second,
		BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second}, nil, zerolog.New(logs).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	b := &burst{t: t, minio: m, client: m.Client(), fwd: f, logs: logs, etags: map[string]string{}}
	var mu sync.Mutex
	work(n, 8, func(i int) error {
		key := fmt.Sprintf("uploads/%s/%03d.jpg", prefix, i)
		img := image.NewRGBA(image.Rect(0, 0, 320, 200))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = uint8(i), uint8(p>>8), uint8(p), 255
		}
		var buf bytes.Buffer
		jpeg.Encode(&buf, img, nil)
		out, err := b.client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(key), Body: bytes.NewReader(buf.Bytes())})
		if err != nil {
			t.Error(err)
			return err
		}
		mu.Lock()
		b.keys = append(b.keys, key)
		b.etags[key] = strings.Trim(aws.ToString(out.ETag), `"`)
		mu.Unlock()
		return nil
	})
	return b
}

// work runs fn(0..n-1) on `workers` goroutines.
func work(n, workers int, fn func(i int) error) []error {
	errs := make([]error, n)
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				errs[i] = fn(i)
			}
		}()
	}
	wg.Wait()
	return errs
}

func (b *burst) event(key string) json.RawMessage {
	ev, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": time.Now().UTC(),
		"s3": map[string]any{"bucket": map[string]any{"name": e2eBucket},
			"object": map[string]any{"key": key, "eTag": b.etags[key]}}}}})
	return ev
}

// send forwards every event, 8 at a time, each with a Lambda-like budget;
// during fires once `at` events have started.
func (b *burst) send(at int, during func()) []error {
	var started atomic.Int64
	var once sync.Once
	return work(len(b.keys), 8, func(i int) error {
		if started.Add(1) == int64(at) {
			once.Do(func() { go during() })
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_, err := b.fwd.Handle(ctx, b.event(b.keys[i]))
		return err
	})
}

// verify: every source has every variant, whole (it decodes to its last
// pixel), at its size, made from the source's current version.
func (b *burst) verify() {
	b.t.Helper()
	want := map[string][2]int{"small": {64, 40}, "square": {32, 32}}
	errs := work(len(b.keys), 8, func(i int) error {
		key := b.keys[i]
		for name, wh := range want {
			k := "resized/" + name + "/" + strings.TrimPrefix(key, "uploads/")
			out, err := b.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(k)})
			if err != nil {
				return fmt.Errorf("%s: %v", k, err)
			}
			data, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil {
				return err
			}
			img, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("%s: corrupt: %v", k, err)
			}
			if img.Bounds().Dx() != wh[0] || img.Bounds().Dy() != wh[1] {
				return fmt.Errorf("%s: %v", k, img.Bounds())
			}
			if out.Metadata["source-etag"] != b.etags[key] {
				return fmt.Errorf("%s: source-etag %q, want %q", k, out.Metadata["source-etag"], b.etags[key])
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		b.t.Fatal(err)
	}
}

// Faults in the S3 flow: storage dies and comes back during a burst;
// the service is killed outright and restarted; the service is stopped
// with SIGTERM mid-burst. Events are sent as the forwarder sends them,
// with its retries. Afterwards every source has all its variants, whole.
func TestFaultsInTheS3Flow(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	minioAddr, _ := s3test.FreeAddr()
	serverAddr, _ := s3test.FreeAddr()
	m := s3test.New(t, minioAddr)
	if _, err := m.Client().CreateBucket(t.Context(), &s3.CreateBucketInput{Bucket: aws.String(e2eBucket)}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"ADDR": serverAddr, "S3_BUCKET": e2eBucket, "S3_ENDPOINT": "http://" + minioAddr, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": s3test.Region, "AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey,
		"API_KEYS": e2eKey, "WEBHOOK_SECRETS": e2eSecret, "VARIANTS": "small:64x0,square:32x32:cover",
		"HOME": os.Getenv("HOME"),
	}
	// Servers belong to the whole test: a subtest's end must not kill the
	// one the next subtest uses.
	top := t
	server := startProc(top, env)

	t.Run("storage stops and restarts during 200 events", func(t *testing.T) {
		b := newBurst(t, m, serverAddr, "storage", 200)
		errs := b.send(40, func() {
			m.Stop()
			time.Sleep(2 * time.Second)
			m.Restart(t)
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("events lost: %v", err)
		}
		b.verify()
		t.Logf("200 events sent, 200 completed, %d retries; MinIO down for 2 s", b.retries())
	})

	t.Run("the service is killed and restarted during 200 events", func(t *testing.T) {
		b := newBurst(t, m, serverAddr, "kill", 200)
		errs := b.send(60, func() {
			server.cmd.Process.Signal(syscall.SIGKILL)
			<-server.done
			server.done <- nil
			time.Sleep(time.Second)
			server = startProc(top, env)
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("events lost: %v", err)
		}
		b.verify()
		t.Logf("200 events sent, 200 completed, %d retries; the service killed and back after 1 s", b.retries())
	})

	t.Run("SIGTERM mid-burst: in-flight requests finish, new ones are refused", func(t *testing.T) {
		b := newBurst(t, m, serverAddr, "term", 200)
		var mu sync.Mutex
		outcomes := map[string]int{}
		var terminated atomic.Bool
		work(len(b.keys), 8, func(i int) error {
			if i == 50 {
				// The flag first: a request refused between the signal and
				// the flag would be counted as an error before SIGTERM.
				terminated.Store(true)
				server.cmd.Process.Signal(syscall.SIGTERM)
			}
			body := b.event(b.keys[i])
			req, _ := http.NewRequest("POST", "http://"+serverAddr+"/webhooks/s3", bytes.NewReader(body))
			req.Header.Set("Resizer-Signature", signFor(body))
			resp, err := http.DefaultClient.Do(req)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil && terminated.Load():
				outcomes["refused"]++
			case err != nil:
				outcomes["error before SIGTERM: "+err.Error()]++
			default:
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				outcomes[fmt.Sprint(resp.StatusCode)]++
			}
			return nil
		})
		if err := <-server.done; err != nil {
			t.Fatalf("server exit: %v\n%s", err, server.logs.String())
		}
		server.done <- nil
		if !strings.Contains(server.logs.String(), `"stopped"`) {
			t.Fatalf("no clean stop: %s", server.logs.String())
		}
		for k := range outcomes {
			if k != "200" && k != "refused" && k != "503" {
				t.Errorf("outcome %q: %d", k, outcomes[k])
			}
		}
		t.Logf("outcomes: %v", outcomes)
		// Whatever was refused is redelivered once the service is back.
		server = startProc(top, env)
		if err := errors.Join(b.send(0, func() {})...); err != nil {
			t.Fatal(err)
		}
		b.verify()
		t.Logf("after redelivery: 200 sources, all variants whole")
	})
}

func signFor(body []byte) string { return webhook.Sign([]byte(e2eSecret), body, time.Now()) }

// SIGTERM stops the server within SHUTDOWN_TIMEOUT whatever libvips is
// doing, and its image workers with it: a server busy on an SVG bomb was
// alive five minutes later (vips_shutdown waits for busy threads).
func TestShutdownWhileBusy(t *testing.T) {
	addr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	server := startProc(t, map[string]string{"ADDR": addr, "DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn",
		"INPUT_FORMATS": "jpeg,svg", "PROCESS_TIMEOUT": "5m", "SHUTDOWN_TIMEOUT": "1s"})
	bomb := `<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000">` +
		`<filter id="f"><feGaussianBlur stdDeviation="400"/></filter>` +
		`<rect width="4000" height="4000" fill="red" filter="url(#f)"/></svg>`
	answered := make(chan int, 2)
	for i := 0; i < 2; i++ {
		go func() {
			resp, err := http.Post("http://"+addr+"/resize?width=4000&height=4000&fit=fill&enlarge=true",
				"image/svg+xml", strings.NewReader(bomb))
			if err != nil {
				answered <- 0
				return
			}
			resp.Body.Close()
			answered <- resp.StatusCode
		}()
	}
	var pids []string
	eventually(t, 10*time.Second, "two workers at work", func() error {
		out, _ := exec.Command("pgrep", "-f", "-P", fmt.Sprint(server.cmd.Process.Pid), "__resizer_image_worker").Output()
		if pids = strings.Fields(string(out)); len(pids) != 2 {
			return fmt.Errorf("%d workers", len(pids))
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // both deep in librsvg
	start := time.Now()
	server.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-server.done:
		server.done <- err
		if err != nil {
			t.Errorf("exit: %v\n%s", err, server.logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM (SHUTDOWN_TIMEOUT=1s)\n%s", server.logs.String())
	}
	took := time.Since(start)
	if took > 3*time.Second {
		t.Errorf("exited %s after SIGTERM, SHUTDOWN_TIMEOUT=1s", took)
	}
	for i := 0; i < 2; i++ {
		if code := <-answered; code == http.StatusOK {
			t.Errorf("a bomb was answered 200: the test's bomb is too weak to prove anything")
		}
	}
	eventually(t, 5*time.Second, "the workers gone", func() error {
		for _, pid := range pids {
			b, err := os.ReadFile("/proc/" + pid + "/status")
			if err == nil && !strings.Contains(string(b), "State:\tZ") {
				return fmt.Errorf("worker %s outlived its server", pid)
			}
		}
		return nil
	})
	t.Logf("exited %s after SIGTERM with two images in libvips", took)
}
