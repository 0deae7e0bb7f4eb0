package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/resizer/resizer"
	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/httpapi"
	"github.com/resizer/resizer/internal/imageproc"
)

// run wires the service together, serves until ctx ends or SIGINT/SIGTERM
// arrives, then drains in-flight requests for at most SHUTDOWN_TIMEOUT.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Load(getenv)
	for _, a := range args[1:] {
		switch a {
		case "-h", "-help", "--help":
			_, err := io.WriteString(stdout, config.Usage())
			return err
		case "healthcheck":
			if err != nil {
				return err
			}
			return healthcheck(ctx, cfg.Addr)
		default:
			return fmt.Errorf("unknown argument %q (try --help or healthcheck)", a)
		}
	}
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	if getenv("GOGC") == "" {
		// Request bodies are large (MiBs), short-lived and pointer-free.
		// At the default of 100 the heap grows to twice the bodies in
		// flight before a collection; 50 takes a sixth off peak RSS under
		// load for GC work that is cheap on pointer-free memory.
		debug.SetGCPercent(50)
	}

	formats := make([]imageproc.Format, len(cfg.InputFormats))
	for i, name := range cfg.InputFormats {
		if formats[i], err = imageproc.ParseFormat(name); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	proc, err := imageproc.New(imageproc.Config{
		Formats:         formats,
		MaxPixels:       cfg.MaxPixels,
		MaxOutputPixels: cfg.MaxOutputPixels,
		MaxDimension:    cfg.MaxDimension,
		MaxJPEGScans:    cfg.MaxJPEGScans,
		Concurrency:     cfg.Concurrency,
		QueueSize:       cfg.QueueSize,
		QueueTimeout:    cfg.QueueTimeout,
		Timeout:         cfg.ProcessTimeout,
	}, reg)
	if err != nil {
		return err
	}
	// Whatever libvips is doing when run returns, its workers are killed:
	// the process never waits on an image to exit.
	defer proc.Close()
	st, err := wireStorage(ctx, cfg, proc)
	if err != nil {
		return err
	}
	if st.local != nil {
		defer st.local.Close()
	}
	st.checks["libvips"] = proc.Check
	uploadTypes := []string{}
	for _, f := range formats {
		uploadTypes = append(uploadTypes, f.ContentType())
		if f == imageproc.FormatHEIF {
			uploadTypes = append(uploadTypes, "image/heic")
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
	handler, err := httpapi.New(httpapi.Config{
		APIKeys:       cfg.APIKeys,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		MaxDimension:  cfg.MaxDimension,
		UploadTypes:   uploadTypes,
		PresignExpiry: cfg.PresignExpiry,
		PublicURL:     cfg.PublicURL,
		ListenAddr:    ln.Addr().String(),

		WebhookSecrets:    cfg.WebhookSecrets,
		WebhookMaxBytes:   cfg.WebhookMaxBytes,
		WebhookMaxRecords: cfg.WebhookMaxRecords,
		InputBucket:       cfg.S3Bucket,
		UI:                cfg.UI,

		BodyMemory:       cfg.BodyMemory,
		ReadTimeout:      cfg.ReadTimeout,
		MinBodyRate:      cfg.MinBodyRate,
		MinBodyRateGrace: cfg.MinBodyRateGrace,
		MaxPerClient:     cfg.MaxPerClient,
		TrustedProxies:   cfg.TrustedProxies,
	}, httpapi.Deps{
		Logger:    log,
		Processor: proc,
		Registry:  reg,
		Spec:      resizer.OpenAPI,
		Checks:    st.checks,
		Draining:  &draining,
		Pipeline:  st.pipeline,
		S3:        st.s3,
		Local:     st.local,
		ObjectURL: st.objectURL,
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// The image routes replace this deadline with their own while they
		// read a body (READ_TIMEOUT from the end of its headers, and
		// MIN_BODY_RATE); it still bounds every other request.
		ReadTimeout: cfg.ReadTimeout,
		// A response may follow the whole body, a wait at the gate and the
		// processing; past that the connection is cut.
		WriteTimeout:   cfg.ReadTimeout + cfg.QueueTimeout + cfg.ProcessTimeout + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       newStdLogger(log),
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	storageDesc := "dir:" + cfg.DataDir
	if cfg.S3Mode() {
		storageDesc = "s3:" + cfg.S3Bucket
	}
	log.Info().Str("addr", ln.Addr().String()).Str("libvips", proc.Version()).
		Int("concurrency", cfg.Concurrency).Bool("api_keys", len(cfg.APIKeys) > 0).
		Str("storage", storageDesc).Msg("listening")

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	if cfg.DrainDelay > 0 {
		// Still serving, with /readyz at 503, so that a platform that
		// routes by readiness moves traffic away before the listener closes.
		log.Info().Dur("delay", cfg.DrainDelay).Msg("draining: readiness off")
		time.Sleep(cfg.DrainDelay)
	}
	log.Info().Dur("timeout", cfg.ShutdownTimeout).Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
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
