package imageproc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The image work runs in worker processes: the server's own binary, run
// again with workerArg, one image at a time each. libvips checks its kill
// flag only between tiles, and the expensive inputs (a progressive JPEG of
// thousands of scans, a PNG of inflated text, an AV1 decode, the AV1
// encoder) spend their time inside single codec calls that never look at
// it; killing the process is the only way to stop them. So when an image's
// time is up, its worker is killed and replaced, and the slot is free
// again at once whatever the input; a codec that crashes or hangs costs one
// worker, never the service; and the server itself never runs libvips, so
// it stops within its shutdown timeout whatever libvips is doing.

// errWorkerDied is a worker that exited (crashed) while making an image.
var errWorkerDied = errors.New("image worker died")

// errWorkerOutOfMemory is a worker that the kernel killed while making an
// image (SIGKILL, which the server had not sent): out of memory, since
// workers offer themselves to the OOM killer first. It wraps errWorkerDied.
var errWorkerOutOfMemory = fmt.Errorf("%w: killed by the kernel, out of memory", errWorkerDied)

// worker is one running worker process.
type worker struct {
	cmd     *exec.Cmd
	jobs    *os.File      // write end
	replies *bufio.Reader // of the read end
	rfile   *os.File
	exited  chan struct{} // closed once the process is reaped
	busy    atomic.Bool   // making an image (for tests: pids)
	killed  atomic.Bool   // the server sent SIGKILL (see kill)
}

// pool runs the workers: size of them, each in one of the gate's slots.
type pool struct {
	exe  string
	init workerInit
	size int

	idle    chan *worker
	spawns  chan spawnRequest
	quit    chan struct{} // closed by close
	mu      sync.Mutex
	all     map[*worker]bool
	closed  bool
	healthy error // the last spawn's failure, nil when it worked
	version string
}

type spawnRequest struct {
	reply chan spawnResult
}

type spawnResult struct {
	w   *worker
	err error
}

// newPool starts size workers of exe. It fails when the first cannot start
// (libvips missing, the binary not re-runnable).
func newPool(exe string, init workerInit, size int) (*pool, error) {
	p := &pool{exe: exe, init: init, size: size, idle: make(chan *worker, size),
		spawns: make(chan spawnRequest), quit: make(chan struct{}), all: map[*worker]bool{}}
	go p.spawner()
	for i := 0; i < size; i++ {
		w, err := p.spawn()
		if err != nil {
			p.close()
			return nil, err
		}
		p.idle <- w
	}
	return p, nil
}

// spawner starts every worker from one goroutine locked to its OS thread.
// A worker is killed when the server dies (Pdeathsig), and Linux ties that
// signal to the thread that started the child, not to the process: a
// thread that Go retired would take its workers with it.
func (p *pool) spawner() {
	runtime.LockOSThread()
	// Unlocked, not left to die with this goroutine: a locked thread whose
	// goroutine ends is destroyed, and with it any other process that was
	// started from it with a death signal (a test's MinIO).
	defer runtime.UnlockOSThread()
	for {
		select {
		case req := <-p.spawns:
			w, err := p.start()
			req.reply <- spawnResult{w, err}
		case <-p.quit:
			return
		}
	}
}

// errClosed is an image whose worker Close killed, or that came after
// Close: the server is stopping, which says nothing of the image. It is an
// ErrBusy, which callers retry (elsewhere), not the image's failure: taken
// for a crash, it was tried on a spare worker that Close then killed too,
// and refused as undecodable, which the S3 pipeline does for good.
var errClosed = fmt.Errorf("%w: image workers stopped", ErrBusy)

func (p *pool) spawn() (*worker, error) {
	req := spawnRequest{reply: make(chan spawnResult, 1)}
	select {
	case p.spawns <- req:
	case <-p.quit:
		return nil, errClosed
	}
	r := <-req.reply
	p.mu.Lock()
	defer p.mu.Unlock()
	p.healthy = r.err
	if r.err != nil {
		return nil, r.err
	}
	if p.closed {
		r.w.kill()
		return nil, errClosed
	}
	p.all[r.w] = true
	return r.w, nil
}

// start runs one worker and waits for its hello.
func (p *pool) start() (*worker, error) {
	jobsR, jobsW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		jobsR.Close()
		jobsW.Close()
		return nil, err
	}
	growPipe(jobsW)
	growPipe(repW)
	cmd := exec.Command(p.exe, workerArg)
	cmd.Env = workerEnv(os.Environ())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stderr, os.Stderr
	cmd.ExtraFiles = []*os.File{jobsR, repW} // fds 3 and 4
	cmd.SysProcAttr = workerProcAttr()
	err = cmd.Start()
	jobsR.Close()
	repW.Close()
	if err != nil {
		jobsW.Close()
		repR.Close()
		return nil, fmt.Errorf("start image worker: %w", err)
	}
	w := &worker{cmd: cmd, jobs: jobsW, rfile: repR, replies: bufio.NewReaderSize(repR, 64<<10), exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(w.exited)
	}()
	hello := make(chan error, 1)
	go func() {
		var h workerHello
		err := writeFrame(w.jobs, p.init)
		if err == nil {
			err = readMessage(w.replies, &h)
		}
		if err == nil && h.Err != "" {
			err = errors.New(h.Err)
		}
		if err == nil {
			p.mu.Lock()
			p.version = h.Version
			p.mu.Unlock()
		}
		hello <- err
	}()
	select {
	case err = <-hello:
	case <-time.After(30 * time.Second):
		err = errors.New("no answer in 30s")
	}
	if err != nil {
		w.kill()
		return nil, fmt.Errorf("start image worker: %w", err)
	}
	return w, nil
}

// workerEnv is the environment a worker gets: what libvips, glibc and the
// Go runtime read, and nothing else. A worker decodes whatever strangers
// send; should a codec ever be exploited, the process it runs in holds no
// API key, webhook secret or AWS credential, nor the address of ECS' task
// credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI).
func workerEnv(env []string) []string {
	var keep []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "PATH", k == "HOME", k == "TMPDIR", k == "LANG", strings.HasPrefix(k, "LC_"),
			strings.HasPrefix(k, "VIPS_"), strings.HasPrefix(k, "MALLOC_"), strings.HasPrefix(k, "GO"):
			keep = append(keep, kv)
		}
	}
	return keep
}

// killedByKernel reports whether the worker, whose pipe to the server
// broke, was killed with SIGKILL that the server did not send (its own
// kills, on a timeout or when the pool closes, are marked): by the
// kernel's OOM killer. It waits a moment for the process to be reaped.
func (w *worker) killedByKernel() bool {
	select {
	case <-w.exited:
	case <-time.After(time.Second):
		return false // alive: it broke its pipe some other way
	}
	return !w.killed.Load() && killedBySIGKILL(w.cmd.ProcessState)
}

// kill stops the worker at once and waits until it is gone.
func (w *worker) kill() {
	w.killed.Store(true) // a SIGKILL of the server's, not the kernel's (the pool closing)
	_ = w.cmd.Process.Kill()
	<-w.exited
	w.jobs.Close()
	w.rfile.Close()
}

// roundTrip sends one job with its image and reads the reply and outputs.
func (w *worker) roundTrip(j job, image [][]byte) (reply, [][]byte, error) {
	if err := writeFrame(w.jobs, j, image...); err != nil {
		return reply{}, nil, fmt.Errorf("%w: %w", errNotSent, err)
	}
	var rep reply
	if err := readMessage(w.replies, &rep); err != nil {
		return reply{}, nil, err
	}
	outs := make([][]byte, len(rep.Outputs))
	for i, o := range rep.Outputs {
		outs[i] = make([]byte, o.Size)
		if _, err := io.ReadFull(w.replies, outs[i]); err != nil {
			return reply{}, nil, err
		}
	}
	if s := rep.Sample; s != nil {
		if s.Size < 0 || s.Size > 4*j.Sample*j.Sample {
			return reply{}, nil, fmt.Errorf("sample of %d bytes for a box of %d: stream out of step", s.Size, j.Sample)
		}
		s.pixels = make([]byte, s.Size)
		if _, err := io.ReadFull(w.replies, s.pixels); err != nil {
			return reply{}, nil, err
		}
	}
	return rep, outs, nil
}

// stopped is a job cut short because its time was up, its context ended
// or the pool closed; the cause says which.
type stopped struct{ cause error }

func (s stopped) Error() string { return s.cause.Error() }
func (s stopped) Unwrap() error { return s.cause }

// do runs j on an idle worker and returns once the worker has answered or
// been killed: either way the worker no longer reads image, so the caller
// may reuse its memory. deadline bounds the whole of it (waiting for a
// worker that is being replaced included); when it passes or ctx ends, the
// worker is killed and a fresh one started in the background. A worker
// found dead before it took the job (the OOM killer takes idle workers
// too) is replaced and another one tried: that is not the image's doing.
// With no worker free before the deadline, nothing was tried: ErrBusy.
func (p *pool) do(ctx context.Context, deadline time.Time, j job, image [][]byte) (reply, [][]byte, error) {
	start := time.Now()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for unsent := 0; ; unsent++ {
		var w *worker
		select {
		case w = <-p.idle:
		case <-t.C:
			return reply{}, nil, stopped{fmt.Errorf("%w: no image worker free in %s", ErrBusy, time.Since(start).Round(time.Millisecond))}
		case <-ctx.Done():
			return reply{}, nil, stopped{context.Cause(ctx)}
		case <-p.quit:
			// No worker will come: the idle ones are killed, and none is
			// started any more.
			return reply{}, nil, stopped{errClosed}
		}
		select {
		case <-w.exited: // died while idle
			p.replace(w)
			continue
		default:
		}
		rep, outs, err := p.roundTrip(ctx, t, w, j, image)
		if errors.Is(err, errNotSent) && unsent < 2 {
			continue // it died before it had the whole job; replaced
		}
		return rep, outs, err
	}
}

// errNotSent: the worker died before it had read the whole job, so before
// it began the image.
var errNotSent = errors.New("job not sent")

// roundTrip runs j on w, which it replaces when it fails or is stopped by
// t or ctx, and returns it to the idle workers otherwise.
func (p *pool) roundTrip(ctx context.Context, t *time.Timer, w *worker, j job, image [][]byte) (reply, [][]byte, error) {
	type result struct {
		rep  reply
		outs [][]byte
		err  error
	}
	done := make(chan result, 1)
	w.busy.Store(true)
	go func() {
		rep, outs, err := w.roundTrip(j, image)
		w.busy.Store(false)
		done <- result{rep, outs, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			select {
			case <-p.quit:
				// Close killed it (it closes quit first): no crash, and
				// no retry of the image on a worker Close is killing.
				p.replace(w)
				return reply{}, nil, stopped{errClosed}
			default:
			}
			died := errWorkerDied
			if w.killedByKernel() {
				died = errWorkerOutOfMemory
			}
			p.replace(w)
			return reply{}, nil, fmt.Errorf("%w: %w", died, r.err)
		}
		p.idle <- w
		return r.rep, r.outs, nil
	case <-t.C:
		p.replace(w)
		<-done
		return reply{}, nil, stopped{ErrTimeout}
	case <-ctx.Done():
		p.replace(w)
		<-done
		return reply{}, nil, stopped{context.Cause(ctx)}
	}
}

// replace kills w (its pipes close, so a round trip in flight returns at
// once) and starts a worker in its place, retrying until one starts or the
// pool is closed.
func (p *pool) replace(w *worker) {
	p.mu.Lock()
	delete(p.all, w)
	p.mu.Unlock()
	w.kill()
	go func() {
		backoff := 50 * time.Millisecond
		for {
			nw, err := p.spawn()
			if err == nil {
				p.idle <- nw
				return
			}
			select {
			case <-time.After(backoff):
			case <-p.quit:
				return // closed, during the wait or before
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
}

// check reports whether the last worker started; a worker that cannot
// start means no image can be made.
func (p *pool) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.healthy != nil {
		return fmt.Errorf("image workers: %w", p.healthy)
	}
	return nil
}

// pids returns the process ids of the running workers, the busy ones
// first (for tests).
func (p *pool) pids() (busy, idle []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for w := range p.all {
		if w.busy.Load() {
			busy = append(busy, w.cmd.Process.Pid)
		} else {
			idle = append(idle, w.cmd.Process.Pid)
		}
	}
	return busy, idle
}

// close kills every worker and starts no more.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.quit)
	ws := make([]*worker, 0, len(p.all))
	for w := range p.all {
		ws = append(ws, w)
	}
	p.all = map[*worker]bool{}
	p.mu.Unlock()
	for _, w := range ws {
		w.kill()
	}
}
