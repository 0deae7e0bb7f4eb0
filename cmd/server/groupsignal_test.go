package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/s3test"
)

// A signal sent to the server's whole process group (Ctrl-C in a
// terminal, systemd's default KillMode, kill -TERM -pgid) starts the
// drain, as one sent to the server alone does: the image in work is
// finished by the worker making it, not killed with every other worker
// and made again from the start on a fresh one, against the same deadline.
func TestGroupSignalDrains(t *testing.T) {
	photo := imagetest.Photo(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			addr, err := s3test.FreeAddr()
			if err != nil {
				t.Fatal(err)
			}
			p := &proc{logs: &logbuf.Buffer{}, done: make(chan error, 1)}
			p.cmd = exec.Command(serverBinary(t))
			p.cmd.Env = []string{"ADDR=" + addr, "DATA_DIR=" + t.TempDir(), "CONCURRENCY=1", "LOG_LEVEL=warn"}
			p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
			// A group of its own, as a shell gives a job.
			p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			if err := p.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { p.done <- p.cmd.Wait() }()
			t.Cleanup(func() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); <-p.done })
			workers := func() []string {
				out, _ := exec.Command("pgrep", "-f", "-P", fmt.Sprint(p.cmd.Process.Pid), "__resizer_image_worker").Output()
				return strings.Fields(string(out))
			}
			eventually(t, 20*time.Second, "server up", func() error {
				resp, err := http.Get("http://" + addr + "/healthz")
				if err != nil {
					return err
				}
				resp.Body.Close()
				if len(workers()) != 1 {
					return fmt.Errorf("workers %v", workers())
				}
				return nil
			})
			worker := workers()[0]
			// utime, in clock ticks: it grows once the worker is at work.
			cpu := func() string {
				b, _ := os.ReadFile("/proc/" + worker + "/stat")
				if f := strings.Fields(string(b)); len(f) > 13 {
					return f[13]
				}
				return ""
			}
			idle := cpu()
			answered := make(chan int, 1)
			go func() {
				// A 10 MP AVIF: seconds of work.
				resp, err := http.Post("http://"+addr+"/resize?width=4000&enlarge=true&format=avif", "image/jpeg", bytes.NewReader(photo))
				if err != nil {
					answered <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered <- resp.StatusCode
			}()
			eventually(t, 10*time.Second, "the image in work", func() error {
				if cpu() == idle {
					return fmt.Errorf("worker idle")
				}
				return nil
			})
			if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
				t.Fatal(err)
			}
			// Every worker seen until the answer: a replacement would be
			// seen for the seconds it takes to make the image again. Once
			// answered, the drained server may stop its worker at any
			// moment, so no look after the answer means anything.
			seen := map[string]bool{worker: true}
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(30 * time.Second)
		wait:
			for {
				select {
				case code := <-answered:
					if code != http.StatusOK {
						t.Fatalf("the image in work got %d", code)
					}
					break wait
				case <-tick.C:
					for _, w := range workers() {
						seen[w] = true
					}
				case <-deadline:
					t.Fatal("no answer 30 s after the signal")
				}
			}
			if len(seen) != 1 {
				t.Fatalf("worker %s, busy when the group got %s, was replaced (workers seen: %v): the image was made again", worker, sig, seen)
			}
			select {
			case err := <-p.done:
				p.done <- err
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, p.logs.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still running 10 s after the answer")
			}
		})
	}
}
