package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
)

// serve serves on ln until ctx ends or SIGINT/SIGTERM arrives; then it
// turns readiness off (and goes on serving for DRAIN_DELAY), lets requests
// in flight finish for at most SHUTDOWN_TIMEOUT, and cuts what is left; a
// second signal cuts at once.
func serve(ctx context.Context, s settings, srv *http.Server, ln net.Listener, proc *imageproc.Processor,
	draining *atomic.Bool, log zerolog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	storage := "dir:" + s.DataDir
	if s.S3Mode() {
		storage = "s3:" + s.S3Bucket
	}
	log.Info().Str("addr", ln.Addr().String()).Str("libvips", proc.Version()).
		Int("concurrency", s.Concurrency).Bool("api_keys", len(s.APIKeys) > 0).
		Str("storage", storage).Msg("listening")

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	// A second SIGINT or SIGTERM comes from someone who will not wait for
	// the drain (Ctrl-C again, a supervisor's escalation): what is left of
	// DRAIN_DELAY and SHUTDOWN_TIMEOUT is cut short, as at the deadline,
	// instead of being caught and ignored by the first signal's handler.
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	cut, cutNow := context.WithCancel(context.Background())
	defer cutNow()
	go func() {
		select {
		case <-again:
			log.Warn().Msg("second signal: cutting the drain short")
			cutNow()
		case <-cut.Done():
		}
	}()
	if s.DrainDelay > 0 {
		// Still serving, with /readyz at 503, so that a platform that
		// routes by readiness moves traffic away before the listener closes.
		log.Info().Dur("delay", s.DrainDelay).Msg("draining: readiness off")
		select {
		case <-time.After(s.DrainDelay):
		case <-cut.Done():
		}
	}
	log.Info().Dur("timeout", s.ShutdownTimeout).Msg("shutting down")
	sctx, cancel := context.WithTimeout(cut, s.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Requests still in flight at the deadline are cut: their image
		// work is killed with its workers, so the process exits now,
		// within ECS' stop timeout, whatever libvips is doing.
		log.Warn().Err(err).Msg("drain timed out: stopping image work and closing connections")
		proc.Close()
		srv.Close()
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}
