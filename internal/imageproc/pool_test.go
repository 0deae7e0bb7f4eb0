package imageproc

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
