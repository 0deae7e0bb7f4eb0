package main

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/storage"
)

var progressLine = regexp.MustCompile(`^progress: (\d+)/(\d+)`)

// The reconcile command as an operator runs it, a process stopped by a
// signal partway: SIGTERM (what ECS and Ctrl-C send) lets it finish the
// originals in hand and report them, and the next run plans exactly the
// rest; SIGKILL loses at most the originals in hand, which the next run
// plans again (their outputs may be half written: never counted
// current). Either way the next run finishes, and nothing is done twice
// but those in hand at a kill.
func TestReconcileStoppedBySignal(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	const n, concurrency = 60, 2
	photo := imagetest.Photo(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			st, err := storage.NewDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if _, err := st.Put(t.Context(), fmt.Sprintf("uploads/k/%03d.jpg", i), photo, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
					t.Fatal(err)
				}
			}
			env := []string{"DATA_DIR=" + dir, "VARIANTS=thumb:64x64:cover,medium:400x0:webp", "LOG_LEVEL=warn"}
			command := func(args ...string) *exec.Cmd {
				cmd := exec.Command(serverBinary(t), append([]string{"reconcile"}, args...)...)
				cmd.Env = env
				cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
				return cmd
			}
			plan := func() map[string]int {
				t.Helper()
				out, err := command("--dry-run", "--json").Output()
				if err != nil {
					t.Fatalf("dry run: %v\n%s", err, out)
				}
				return lastJSON(t, string(out))
			}

			// Run, and signal it once 40 % is reported done.
			cmd := command("--json", "--concurrency", strconv.Itoa(concurrency), "--progress", "50ms")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			reported, signalled := 0, false
			for sc := bufio.NewScanner(stdout); sc.Scan(); {
				out.WriteString(sc.Text() + "\n")
				if m := progressLine.FindStringSubmatch(sc.Text()); m != nil {
					reported, _ = strconv.Atoi(m[1])
					if !signalled && reported >= n*4/10 {
						signalled = true
						if err := cmd.Process.Signal(sig); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			err = cmd.Wait()
			if !signalled || err == nil {
				t.Fatalf("the run was not stopped partway (signalled %v, exit %v)\n%s", signalled, err, out.String())
			}
			if reported >= n {
				t.Fatalf("all %d done before the signal took effect: the test proves nothing\n%s", n, out.String())
			}

			p := plan()
			switch sig {
			case syscall.SIGTERM:
				done := processed(t, out.String())
				if !strings.Contains(out.String(), "done:") || p["current"] != done || p["create"] != n-done {
					t.Fatalf("stopped after %d processed, the next plan is %v\n%s", done, p, out.String())
				}
			case syscall.SIGKILL:
				// Done: at least what was reported; at most what was in hand.
				if p["current"] < reported || p["current"] > reported+concurrency+1 || p["current"]+p["create"]+p["regenerate"] != n {
					t.Fatalf("killed after %d reported done, the next plan is %v\n%s", reported, p, out.String())
				}
			}
			left := n - p["current"]
			rest, err := command("--json").Output()
			if err != nil {
				t.Fatalf("the next run: %v\n%s", err, rest)
			}
			if got := processed(t, string(rest)); got != left {
				t.Errorf("the next run processed %d, want the %d left", got, left)
			}
			if p := plan(); p["current"] != n {
				t.Errorf("after the next run: %v, want all %d current", p, n)
			}
			t.Logf("%s after %d of %d reported done: %d left to the next run", sig, reported, n, left)
		})
	}
}
