package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/emf"
)

// run is the whole service: it checks the configuration (every fault at
// once), opens the stores, starts the image workers (watermarks come from
// the originals' store), listens, and serves until ctx ends or
// SIGINT/SIGTERM arrives (serve). With the argument reconcile it runs that
// command instead, on the same configuration and wiring, until it is done
// or a signal stops it. Tests call it as main does, with their own
// environment.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	if len(args) > 1 {
		return command(ctx, args, cfg, err, getenv, stdout)
	}
	s, err := settle(cfg, err)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	// What the start does through ctx (the uploads a crash cut short,
	// finished before anything is served) logs as a request's work does.
	ctx = log.WithContext(ctx)
	if getenv("GOGC") == "" {
		// Request bodies are large (MiBs), short-lived and pointer-free.
		// At the default of 100 the heap grows to twice the bodies in
		// flight before a collection; 50 takes a sixth off peak RSS under
		// load for GC work that is cheap on pointer-free memory.
		debug.SetGCPercent(50)
	}
	reg := newRegistry()
	b, err := openBase(ctx, s, reg)
	if err != nil {
		return err
	}
	defer b.close()
	s, st, proc := b.s, b.st, b.proc
	if st.local != nil {
		// Before the uploads cut short are finished (Recover): on a
		// directory another server writes, they are that server's
		// uploads under way.
		if err := st.local.LockServer(); err != nil {
			return fmt.Errorf("DATA_DIR: %w", err)
		}
	}
	// Listen before the handler is made: its upload URLs name the address
	// the listener got (the real port when ADDR asks for port 0).
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // a no-op once served: Shutdown closes it
	var draining atomic.Bool
	h, err := newHandler(ctx, s, st, proc, reg, log, &draining, ln.Addr().String())
	if err != nil {
		return err
	}
	if cfg.EMFNamespace != "" {
		// The metrics as CloudWatch EMF lines in the log, once a minute
		// (CloudWatch's resolution) and once more when the server stops.
		ectx, stopEMF := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { emf.New(cfg.EMFNamespace, reg, stdout).Run(ectx, time.Minute); close(done) }()
		defer func() { stopEMF(); <-done }()
	}
	return serve(ctx, s, newServer(s, h, log), ln, proc, &draining, log)
}

// command runs the command args name instead of the server, with the
// configuration cfg as Load gave it (loadErr: its faults).
func command(ctx context.Context, args []string, cfg config.Config, loadErr error, getenv func(string) string, stdout io.Writer) error {
	switch args[1] {
	case "reconcile":
		// It serves nothing: API keys are no concern of it.
		s, err := settle(cfg, config.Without(loadErr, config.ErrNoAPIKeys))
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		return reconcile(ctx, args[2:], s, stdout)
	case "-h", "-help", "--help":
		_, err := io.WriteString(stdout, config.Usage())
		return err
	case "healthcheck":
		if loadErr != nil {
			return loadErr
		}
		return healthcheck(ctx, cfg.Addr)
	case "sign":
		return sign(getenv, args[2:], stdout)
	}
	return fmt.Errorf("unknown argument %q (try --help, healthcheck, reconcile or sign)", args[1])
}
