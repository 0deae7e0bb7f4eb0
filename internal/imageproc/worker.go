package imageproc

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// workerArg is the argument with which the server runs its own binary as an
// image worker.
const workerArg = "__resizer_image_worker"

// The pipes a worker reads jobs from and writes replies to: file
// descriptors 3 and 4, so that nothing a library prints on stdout or
// stderr can ever be taken for a reply.
const (
	workerJobsFD    = 3
	workerRepliesFD = 4
)

// ServeWorkerIfAsked turns this process into an image worker when it was
// started as one (by a Processor, which runs the server's own binary), and
// then never returns. Call it first thing in main, and in TestMain of any
// test binary that makes a Processor.
func ServeWorkerIfAsked() {
	if len(os.Args) != 2 || os.Args[1] != workerArg {
		return
	}
	offerToOOMKiller()
	// A worker stops when the server says so (its jobs pipe closed, or
	// SIGKILL) or dies (Pdeathsig), never on a signal of its own: SIGINT
	// and SIGTERM sent to the server's process group (Ctrl-C in a
	// terminal, systemd's default KillMode) would otherwise kill every
	// image in work as the server begins to drain, and it would make them
	// again from the start.
	signal.Ignore(os.Interrupt, syscall.SIGTERM)
	jobs := os.NewFile(workerJobsFD, "jobs")
	replies := os.NewFile(workerRepliesFD, "replies")
	err := serveWorker(jobs, replies)
	if err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, "resizer image worker:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serveWorker starts libvips as the first message says, then makes images
// one at a time until the server closes the jobs pipe (io.EOF). Every call
// into libvips runs on this goroutine, locked to its OS thread.
func serveWorker(jobs io.Reader, replies io.Writer) error {
	runtime.LockOSThread()
	r := bufio.NewReaderSize(jobs, 64<<10)
	var init workerInit
	if err := readMessage(r, &init); err != nil {
		return err
	}
	hello := workerHello{Version: vipsVersion()}
	err := vipsInit(init.Formats, init.Arenas)
	if err == nil && !vipsCanSaveJPEG() {
		err = errors.New("libvips cannot write JPEG")
	}
	if err != nil {
		hello.Err = err.Error()
	}
	if err := writeFrame(replies, hello); err != nil || hello.Err != "" {
		return errors.Join(err, errors.New(hello.Err))
	}
	for {
		var j job
		if err := readMessage(r, &j); err != nil {
			return err
		}
		in := newCbuf(j.Size)
		if _, err := io.ReadFull(r, in.bytes()); err != nil {
			in.free()
			return fmt.Errorf("read image: %w", err)
		}
		if j.marks, err = readMarks(r, j.Marks); err != nil {
			in.free()
			return err
		}
		rep, payloads, frees := runJob(in, j)
		in.free()
		j.marks.free()
		err := writeFrame(replies, rep, payloads...)
		for _, o := range frees {
			freeC(o)
		}
		if err != nil {
			return err
		}
	}
}

// runJob makes the outputs of one job. The payloads to write are views of
// C memory, which the caller frees (frees) once they are written.
func runJob(in cbuf, j job) (rep reply, payloads [][]byte, frees [][]byte) {
	clearDecodeWarnings()
	h, outs, err := render(in, j)
	if err == nil && j.Sample == 0 {
		// With a sample, its decode is checked with the render's, once
		// (decodeWarnings may decode the input again).
		err = decodeWarnings(in, h.Format)
	}
	rep.Header = h
	for _, o := range outs {
		frees = append(frees, o.data)
	}
	if err != nil {
		rep.Err = toJobError(err)
		rep.Heap = mallocInUse()
		return rep, nil, frees
	}
	for _, o := range outs {
		parts := o.parts // o.data, finished (see encode)
		size := 0
		for _, p := range parts {
			size += len(p)
		}
		rep.Outputs = append(rep.Outputs, replyOutput{Format: o.format, Width: o.width, Height: o.height, Size: size})
		payloads = append(payloads, parts...)
	}
	if j.Sample > 0 {
		s, err := sample(in, h, j.Sample)
		frees = append(frees, s.data)
		if err == nil {
			err = decodeWarnings(in, h.Format)
		}
		if err != nil {
			rep.Outputs, rep.Err, rep.Heap = nil, toJobError(err), mallocInUse()
			return rep, nil, frees
		}
		rep.Sample = &replySample{Width: s.width, Height: s.height, Size: len(s.data)}
		payloads = append(payloads, s.data)
	}
	rep.Heap = mallocInUse()
	return rep, payloads, frees
}
