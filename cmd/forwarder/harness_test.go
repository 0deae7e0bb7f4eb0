package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/s3test"
)

// The pieces of the event path that the queue tests put together: the
// forwarder and the server built once, MinIO with the originals, service
// tasks, and forwarders under the Lambda emulator.

var (
	binOnce              sync.Once
	binDir               string
	bootstrapBin, srvBin string
	binErr               error
)

// binaries builds the forwarder's bootstrap and the server once for the
// test binary; TestMain removes them.
func binaries(t *testing.T) (bootstrap, server string) {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "forwarder-test-"); binErr != nil {
			return
		}
		for _, b := range []struct {
			pkg, out string
			env      []string
		}{
			{"./", "bootstrap", []string{"CGO_ENABLED=0", "GOFLAGS=-tags=lambda.norpc"}},
			{"../server", "server", nil},
		} {
			cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(binDir, b.out), b.pkg)
			cmd.Env = append(os.Environ(), b.env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
		bootstrapBin, srvBin = filepath.Join(binDir, "bootstrap"), filepath.Join(binDir, "server")
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return bootstrapBin, srvBin
}

// rieBinary is AWS's Lambda emulator: $RIE_BIN, else scripts/tools.sh's.
// A missing emulator fails the test.
func rieBinary(t *testing.T) string {
	t.Helper()
	rie := os.Getenv("RIE_BIN")
	if rie == "" {
		rie = filepath.Join(mustCache(t), "rie-v0.0.0-20261030222936-bef5c4ba774d", "aws-lambda-rie")
	}
	if _, err := os.Stat(rie); err != nil {
		t.Fatalf("no Lambda emulator at %s: run scripts/tools.sh rie (make test does): %v", rie, err)
	}
	return rie
}

// originals puts n copies of the 4 MP photograph of the benchmarks
// (docs/benchmarks.md) under uploads/ and returns the keys and their
// ETag: real work for the service, so that a burst finds its limit.
func originals(t *testing.T, client *s3.Client, bucket, prefix string, n int) ([]string, string) {
	t.Helper()
	photo, err := os.ReadFile("../../testdata/ladybird.jpg")
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.NewBuffer(photo)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("uploads/%s/%05d.jpg", prefix, i)
	}
	var etag atomic.Value
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				out, err := client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(k),
					Body: bytes.NewReader(buf.Bytes())})
				if err != nil {
					errs <- err
					continue
				}
				etag.Store(strings.Trim(aws.ToString(out.ETag), `"`))
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	return keys, etag.Load().(string)
}

// s3Record is an ObjectCreated record as S3 writes it into a queue.
func s3Record(bucket, key, etag string) map[string]any {
	return map[string]any{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
		"eventTime": time.Now().UTC().Format(time.RFC3339Nano), "eventName": "ObjectCreated:Put",
		"s3": map[string]any{"s3SchemaVersion": "1.0", "configurationId": "uploads",
			"bucket": map[string]any{"name": bucket, "arn": "arn:aws:s3:::" + bucket},
			"object": map[string]any{"key": url.QueryEscape(key), "size": 1000, "eTag": etag, "sequencer": "0062E99A88DC407460"}}}
}

// s3Body is the body S3 puts into a queue for one object.
func s3Body(bucket, key, etag string) string {
	b, _ := json.Marshal(map[string]any{"Records": []any{s3Record(bucket, key, etag)}})
	return string(b)
}

// task is one server process: a task of the service.
type task struct {
	addr  string
	logs  *logbuf.Buffer
	cmd   *exec.Cmd
	once  sync.Once
	final map[int]int // its webhook statuses when it stopped
}

// startTask runs the server in S3 mode on MinIO with the given webhook
// secrets and CONCURRENCY=2. An event waits at most 100 ms for a slot
// (QUEUE_TIMEOUT; 5 s by default) before its 503: the service sheds as
// soon as it is behind, as a small fleet under a large burst does.
func startTask(t *testing.T, srv *s3test.Server, bucket, secrets string, env ...string) *task {
	t.Helper()
	_, server := binaries(t)
	addr, _ := s3test.FreeAddr()
	tk := &task{addr: addr, logs: &logbuf.Buffer{}}
	tk.cmd = exec.Command(server)
	tk.cmd.Env = append(os.Environ(), "ADDR="+addr, "S3_BUCKET="+bucket, "S3_ENDPOINT="+srv.Endpoint,
		"S3_FORCE_PATH_STYLE=true", "AWS_REGION="+s3test.Region, "AWS_ACCESS_KEY_ID="+s3test.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+s3test.SecretKey, "API_KEYS=k", "WEBHOOK_SECRETS="+secrets,
		"VARIANTS=medium:800x0", "CONCURRENCY=2", "QUEUE_TIMEOUT=100ms", "LOG_LEVEL=warn")
	tk.cmd.Env = append(tk.cmd.Env, env...)
	tk.cmd.Stdout, tk.cmd.Stderr = tk.logs, tk.logs
	tk.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := tk.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tk.stop)
	waitHTTP(t, "http://"+addr+"/readyz", tk.logs)
	return tk
}

// stop drains the task as ECS does: SIGTERM, then wait for the exit. It
// keeps the task's webhook statuses first.
func (tk *task) stop() {
	tk.once.Do(func() {
		tk.final = tk.webhookStatuses()
		tk.cmd.Process.Signal(syscall.SIGTERM)
		tk.cmd.Wait()
	})
}

var requestsLine = regexp.MustCompile(`^resizer_http_requests_total\{method="POST",route="/webhooks/s3",status="(\d+)"\} (\d+)`)

// webhookStatuses reads the task's counts of POST /webhooks/s3 by status,
// from its metrics, or as it stopped.
func (tk *task) webhookStatuses() map[int]int {
	if tk.final != nil {
		return tk.final
	}
	out := map[int]int{}
	resp, err := http.Get("http://" + tk.addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if m := requestsLine.FindStringSubmatch(line); m != nil {
			code, _ := strconv.Atoi(m[1])
			n, _ := strconv.Atoi(m[2])
			out[code] += n
		}
	}
	return out
}

// balancer stands in for the load balancer in front of the tasks: round
// robin over the registered tasks; deregistering one stops sending it
// requests and waits until those it has are answered, as the target
// group's deregistration delay does before ECS stops the task.
type balancer struct {
	url     string
	mu      sync.Mutex
	targets []*task
	next    int
	busy    map[*task]int
	idle    *sync.Cond
}

func newBalancer(t *testing.T, targets ...*task) *balancer {
	b := &balancer{targets: targets, busy: map[*task]int{}}
	b.idle = sync.NewCond(&b.mu)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			tk := r.In.Context().Value(taskKey{}).(*task)
			r.SetURL(&url.URL{Scheme: "http", Host: tk.addr})
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		if len(b.targets) == 0 {
			b.mu.Unlock()
			http.Error(w, "no healthy target", http.StatusServiceUnavailable)
			return
		}
		tk := b.targets[b.next%len(b.targets)]
		b.next++
		b.busy[tk]++
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			b.busy[tk]--
			b.idle.Broadcast()
			b.mu.Unlock()
		}()
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), taskKey{}, tk)))
	})
	addr, _ := s3test.FreeAddr()
	srv := &http.Server{Addr: addr, Handler: h}
	go srv.ListenAndServe()
	t.Cleanup(func() { srv.Close() })
	b.url = "http://" + addr
	waitHTTP(t, b.url+"/healthz", &logbuf.Buffer{})
	return b
}

type taskKey struct{}

// replace registers the new tasks, deregisters the old ones, waits for
// their requests to be answered, then stops them: a rolling deployment.
func (b *balancer) replace(old []*task, fresh ...*task) {
	b.mu.Lock()
	b.targets = append(b.targets, fresh...)
	for _, o := range old {
		for i, tk := range b.targets {
			if tk == o {
				b.targets = append(b.targets[:i], b.targets[i+1:]...)
				break
			}
		}
	}
	for _, o := range old {
		for b.busy[o] > 0 {
			b.idle.Wait()
		}
	}
	b.mu.Unlock()
	for _, o := range old {
		o.stop()
	}
}

// emulators are n forwarders, each under its own Lambda emulator (one
// emulator runs one invocation at a time): the concurrency Lambda gives
// the event source mapping.
type emulators struct {
	t       *testing.T
	env     []string
	slots   []*emulator
	mu      sync.Mutex
	retired strings.Builder // the logs of emulators restarted
}

type emulator struct {
	mu   sync.Mutex
	url  string
	logs *logbuf.Buffer
	cmd  *exec.Cmd
}

func startEmulators(t *testing.T, n int, env ...string) *emulators {
	t.Helper()
	e := &emulators{t: t, env: env}
	for range n {
		s := &emulator{}
		e.start(s)
		e.slots = append(e.slots, s)
	}
	t.Cleanup(func() {
		for _, s := range e.slots {
			s.mu.Lock()
			s.cmd.Process.Signal(syscall.SIGTERM)
			s.cmd.Wait()
			s.mu.Unlock()
		}
	})
	return e
}

// start runs an emulator for slot s; the function's cold start (its
// secret read) comes with the first invocation.
func (e *emulators) start(s *emulator) {
	t := e.t
	bootstrap, _ := binaries(t)
	rieAddr, _ := s3test.FreeAddr()
	apiAddr, _ := s3test.FreeAddr()
	s.logs = &logbuf.Buffer{}
	s.cmd = exec.Command(rieBinary(t), "--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr, bootstrap)
	s.cmd.Env = append(os.Environ(), e.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + rieAddr + "/2015-03-31/functions/function/invocations"
	waitHTTP(t, "http://"+rieAddr+"/", s.logs)
}

// restart replaces slot i's emulator with a new one, as Lambda retires an
// execution environment and starts another (with a cold start) at will.
func (e *emulators) restart(i int) {
	s := e.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	e.mu.Lock()
	e.retired.WriteString(s.logs.String())
	e.mu.Unlock()
	e.start(s)
}

// invoke runs the function in slot i with event, as the mapping's Invoke.
func (e *emulators) invoke(ctx context.Context, i int, event []byte) ([]byte, bool, error) {
	s := e.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(event))
	if err != nil {
		return nil, false, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, err
	}
	failed := resp.StatusCode != http.StatusOK || resp.Header.Get("X-Amz-Function-Error") != "" || bytes.Contains(out, []byte(`"errorType"`))
	return out, failed, nil
}

// logs returns every forwarder's log, of retired emulators too.
func (e *emulators) logs() string {
	var b strings.Builder
	e.mu.Lock()
	b.WriteString(e.retired.String())
	e.mu.Unlock()
	for _, s := range e.slots {
		s.mu.Lock()
		b.WriteString(s.logs.String())
		s.mu.Unlock()
	}
	return b.String()
}

// failures returns the forwarders' log lines at warn or error level but
// the retries, and the invocations that failed a message.
func (e *emulators) failures() string {
	var b strings.Builder
	for _, l := range strings.Split(e.logs(), "\n") {
		if (strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`)) && !strings.Contains(l, `"message":"retrying"`) ||
			strings.Contains(l, `"message":"invocation"`) && !strings.Contains(l, `"failed":0`) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// count counts the forwarders' log lines with the message msg.
func (e *emulators) count(msg string) int {
	return strings.Count(e.logs(), `"message":"`+msg+`"`)
}

// variants lists the keys under prefix.
func variants(t *testing.T, client *s3.Client, bucket, prefix string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out[aws.ToString(o.Key)] = true
		}
	}
	return out
}
