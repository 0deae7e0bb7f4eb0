package imageproc

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A worker's environment holds what libvips and the runtime read, and no
// secret of the server's.
func TestWorkerEnvHoldsNoSecrets(t *testing.T) {
	env := workerEnv([]string{"PATH=/bin", "HOME=/h", "TMPDIR=/t", "LC_ALL=C", "VIPS_CONCURRENCY=1",
		"MALLOC_ARENA_MAX=2", "GOMAXPROCS=2", "API_KEYS=k1", "WEBHOOK_SECRETS=s", "AWS_SECRET_ACCESS_KEY=x",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/abc", "URL_SIGNING_KEYS=u", "S3_BUCKET=b"})
	got := strings.Join(env, " ")
	if got != "PATH=/bin HOME=/h TMPDIR=/t LC_ALL=C VIPS_CONCURRENCY=1 MALLOC_ARENA_MAX=2 GOMAXPROCS=2" {
		t.Fatalf("worker environment: %s", got)
	}
	// And a real worker runs with it.
	t.Setenv("API_KEYS", "never-in-a-worker")
	p := newTestProcessor(t, func(c *Config) { c.Concurrency = 1 })
	_, idle := p.pool.pids()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(idle[0]) + "/environ")
	if err != nil {
		t.Skip("no /proc here")
	}
	if strings.Contains(string(b), "never-in-a-worker") {
		t.Fatal("a worker got API_KEYS")
	}
}

// Out of memory, the kernel takes a worker, never the server: every worker
// offers itself to the OOM killer first, the server keeps its own score.
func TestWorkersAreTheOOMKillersFirstChoice(t *testing.T) {
	own, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Skip("no /proc here")
	}
	p := newTestProcessor(t, func(c *Config) { c.Concurrency = 2 })
	_, idle := p.pool.pids()
	if len(idle) != 2 {
		t.Fatalf("%d idle workers", len(idle))
	}
	for _, pid := range idle {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
		if err != nil || strings.TrimSpace(string(b)) != "1000" {
			t.Errorf("worker %d: oom_score_adj %q (%v)", pid, b, err)
		}
	}
	if again, _ := os.ReadFile("/proc/self/oom_score_adj"); string(again) != string(own) || strings.TrimSpace(string(own)) == "1000" {
		t.Errorf("the server's oom_score_adj: %q, was %q", again, own)
	}
}

// killIdle waits until all n workers are idle (replacements started), kills
// them with SIGKILL, as the OOM killer would, and waits until each is gone.
func killIdle(t *testing.T, p *Processor, n int) {
	t.Helper()
	_, idle := p.pool.pids()
	for deadline := time.Now().Add(10 * time.Second); len(idle) < n; _, idle = p.pool.pids() {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle workers, want %d", len(idle), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, pid := range idle {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, pid := range idle {
		for syscall.Kill(pid, 0) == nil { // until reaped
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// Workers the kernel kills while idle (it takes workers first) are not
// the next image's doing: it is made on fresh ones, not refused as too
// large; and when no worker can be had before the deadline, nothing was
// tried: the answer is busy (retry), never a timeout of the image's.
func TestWorkersDeadBeforeTheJob(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Concurrency, c.Timeout = 2, 3*time.Second })
	photo := readTestdata(t, "ladybird.jpg")
	for range 3 {
		killIdle(t, p, 2)
		if r, err := p.Process(t.Context(), photo, Options{Width: 50}); err != nil || r.Width != 50 {
			t.Fatalf("after idle workers were killed: %v", err)
		}
	}
	killIdle(t, p, 2)                   // once all are idle again,
	p.pool.exe = "/nonexistent/resizer" // no replacement can start

	if _, err := p.Process(t.Context(), photo, Options{Width: 50}); !errors.Is(err, ErrBusy) || errors.Is(err, ErrTimeout) {
		t.Fatalf("with no worker to be had: %v, want ErrBusy", err)
	}
}

// Close, which the server calls when its drain runs out, kills the
// workers of images in flight: that says nothing of those images. They
// fail at once as busy (retry), never as an image that crashed its decoder
// (ErrUndecodable, which the S3 pipeline rejects for good and moves under
// REJECTED_PREFIX) nor as one that ran out of memory, and none waits for a
// worker until its timeout. The spare workers make the old failure likely:
// the image was tried again on an idle one that Close had not yet reached.
func TestCloseIsNotTheImagesFault(t *testing.T) {
	bomb := []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000">` +
		`<filter id="f"><feGaussianBlur stdDeviation="400"/></filter>` +
		`<rect width="4000" height="4000" fill="red" filter="url(#f)"/></svg>`)
	for round := range 4 {
		p := newTestProcessor(t, func(c *Config) {
			c.Concurrency = 3
			c.Formats = append(append([]Format{}, DefaultInputFormats...), FormatSVG)
		})
		failed := make(chan error, 1)
		go func() {
			_, err := p.Process(t.Context(), bomb, Options{Width: 4000, Height: 4000, Fit: FitFill, Enlarge: true})
			failed <- err
		}()
		for deadline := time.Now().Add(10 * time.Second); ; {
			if busy, _ := p.pool.pids(); len(busy) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the image never reached a worker")
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // deep in librsvg
		closed := time.Now()
		p.Close()
		select {
		case err := <-failed:
			if !errors.Is(err, ErrBusy) || errors.Is(err, ErrUndecodable) || errors.Is(err, ErrTooLarge) {
				t.Fatalf("round %d: an image whose worker Close killed failed with %v, want ErrBusy", round, err)
			}
			if d := time.Since(closed); d > 2*time.Second {
				t.Fatalf("round %d: failed %s after Close", round, d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: still waiting for a worker 5 s after Close (Timeout 30 s)", round)
		}
	}
}
