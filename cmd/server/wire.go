package main

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/httpapi"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/watermark"
)

// newRegistry is the service's metrics, with Go's and the process's own.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// newProcessor starts the image workers, with the watermarks of the
// originals' store.
func newProcessor(s settings, st *stores, reg prometheus.Registerer) (*imageproc.Processor, error) {
	var marks imageproc.Watermarks
	if s.watermarks.Prefix != "" {
		c, err := watermark.New(s.watermarks, st.in)
		if err != nil {
			return nil, err
		}
		marks = c
	}
	return imageproc.New(imageproc.Config{
		Formats:            s.formats,
		MaxPixels:          s.MaxPixels,
		MaxOutputPixels:    s.MaxOutputPixels,
		MaxDimension:       s.MaxDimension,
		MaxJPEGScans:       s.MaxJPEGScans,
		MaxFrames:          s.MaxFrames,
		MaxAnimationPixels: s.MaxAnimationPixels,
		Qualities:          s.qualities(),
		Concurrency:        s.Concurrency,
		QueueSize:          s.QueueSize,
		QueueTimeout:       s.QueueTimeout,
		Timeout:            s.ProcessTimeout,
		Watermarks:         marks,
	}, reg)
}

// stores are where originals and outputs live, and their readiness checks.
type stores struct {
	in, out pipeline.Store
	// inList and outList list them, for reconcile.
	inList  pipeline.Lister
	outList pipeline.OutputLister
	uploads httpapi.Store // = in
	// sources and cache are in and out as delivery reads them.
	sources delivery.Source
	cache   delivery.Cache
	local   *storage.Dir // nil with S3
	aws     *aws.Config  // nil with local storage
	checks  map[string]httpapi.Check
	close   func()
}

// base is what the server and reconcile both stand on: the stores, the
// settings as the ready bus settles them, and the image processor.
type base struct {
	s    settings
	st   *stores
	proc *imageproc.Processor
}

// openBase opens the stores, settles the ready bus and starts the
// processor; close stops the processor's workers (whatever libvips is
// doing: the process never waits on an image to exit), then closes the
// stores.
func openBase(ctx context.Context, s settings, reg prometheus.Registerer) (*base, error) {
	st, err := openStores(ctx, s)
	if err != nil {
		return nil, err
	}
	if s, err = withReadyBus(ctx, s); err != nil {
		st.close()
		return nil, err
	}
	proc, err := newProcessor(s, st, reg)
	if err != nil {
		st.close()
		return nil, err
	}
	return &base{s: s, st: st, proc: proc}, nil
}

func (b *base) close() {
	b.proc.Close()
	b.st.close()
}

// openStores opens S3 when S3_BUCKET is set, else the local directory.
func openStores(ctx context.Context, s settings) (*stores, error) {
	st := &stores{checks: map[string]httpapi.Check{}, close: func() {}}
	if !s.S3Mode() {
		open := storage.NewDir
		if s.readOnly {
			open = storage.OpenDirReadOnly
		}
		d, err := open(s.DataDir)
		if err != nil {
			return nil, err
		}
		st.in, st.out, st.uploads, st.close = d, d, d, func() { d.Close() }
		st.sources, st.cache, st.local = d, d, d
		st.inList, st.outList = d, d
		st.checks["storage"] = d.Check
		return st, nil
	}
	awsCfg, err := loadAWS(ctx, s)
	if err != nil {
		return nil, err
	}
	st.aws = &awsCfg
	s3cfg := storage.S3Config{Bucket: s.S3Bucket, Endpoint: s.S3Endpoint, PathStyle: s.S3PathStyle}
	in, err := storage.NewS3(s3cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	st.in, st.out, st.uploads = in, in, in
	st.sources, st.cache = in, in
	st.inList, st.outList = in, in
	st.checks["storage"] = in.Check
	if s.OutputBucket != s.S3Bucket {
		s3cfg.Bucket = s.OutputBucket
		out, err := storage.NewS3(s3cfg, awsCfg)
		if err != nil {
			return nil, err
		}
		st.out, st.cache, st.outList = out, out, out
		st.checks["output storage"] = out.Check
	}
	return st, nil
}

// loadAWS is the AWS SDK's configuration: the region and static
// credentials of the settings, else the SDK's default chain.
func loadAWS(ctx context.Context, s settings) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if s.AWSRegion != "" {
		opts = append(opts, awsconfig.WithRegion(s.AWSRegion))
	}
	if s.AWSAccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(s.AWSAccessKeyID, s.AWSSecretAccessKey, s.AWSSessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	return awsCfg, nil
}

// newHandler builds the HTTP API over the processor and the stores.
func newHandler(ctx context.Context, s settings, st *stores, proc *imageproc.Processor, reg *prometheus.Registry,
	log zerolog.Logger, draining *atomic.Bool, listenAddr string) (http.Handler, error) {
	pl, err := pipeline.New(s.pipeline, st.in, st.out, proc)
	if err != nil {
		return nil, err
	}
	// Uploads that a crash cut short (the local directory's: S3's events
	// finish those) are finished before anything is served.
	done, err := pl.Recover(ctx)
	logRecovered(log, done, err)
	if err := checkWatermarks(ctx, s, pl, st.checks, log); err != nil {
		return nil, err
	}
	dl, err := newDelivery(ctx, s, st, proc, pl, reg, log)
	if err != nil {
		return nil, err
	}
	keys, err := urlSigningKeys(s, st)
	if err != nil {
		return nil, err
	}
	st.checks["libvips"] = proc.Check
	return httpapi.New(httpapi.Config{
		APIKeys:           s.APIKeys,
		MaxBodyBytes:      s.MaxBodyBytes,
		MaxDimension:      s.MaxDimension,
		UploadTypes:       s.uploadTypes(),
		PresignExpiry:     s.PresignExpiry,
		PublicURL:         s.PublicURL,
		ListenAddr:        listenAddr,
		WebhookSecrets:    s.WebhookSecrets,
		WebhookMaxBytes:   s.WebhookMaxBytes,
		WebhookMaxRecords: s.WebhookMaxRecords,
		InputBucket:       s.S3Bucket,
		UI:                s.UI,
		BodyMemory:        s.BodyMemory,
		ReadTimeout:       s.ReadTimeout,
		MinBodyRate:       s.MinBodyRate,
		MinBodyRateGrace:  s.MinBodyRateGrace,
		MaxPerClient:      s.MaxPerClient,
		TrustedProxies:    s.TrustedProxies,
		URLSigningKeys:    keys,
		UnsignedPresets:   s.DeliveryUnsignedPresets,
		AllowOrigin:       s.DeliveryAllowOrigin,
	}, httpapi.Deps{
		Logger: log, Processor: proc, Registry: reg, Spec: resizer.OpenAPI, Checks: st.checks,
		Draining: draining, Pipeline: pl, Store: st.uploads, Delivery: dl,
	})
}

// newServer is the HTTP server: every timeout set, net/http's own
// messages in the structured log.
func newServer(s settings, h http.Handler, log zerolog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// The image routes replace this deadline with their own while they
		// read a body (READ_TIMEOUT from the end of its headers, and
		// MIN_BODY_RATE); it still bounds every other request.
		ReadTimeout: s.ReadTimeout,
		// A response may follow the whole body, a wait at the gate and the
		// processing; past that the connection is cut.
		WriteTimeout:   s.ReadTimeout + s.QueueTimeout + s.ProcessTimeout + 10*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       newStdLogger(log),
	}
}

// maxRecoveredLogged bounds the keys that logRecovered names one by one:
// thousands of notes left (a disk that refused their removal) are one
// line more, not thousands.
const maxRecoveredLogged = 20

// logRecovered logs what Recover finished: each key, up to
// maxRecoveredLogged, then how many more, and the error.
func logRecovered(log zerolog.Logger, done []string, err error) {
	for i, key := range done {
		if i == maxRecoveredLogged {
			log.Warn().Int("more", len(done)-i).Int("total", len(done)).
				Msg("more uploads cut short by a crash: their keys' outputs made to match their originals")
			break
		}
		log.Warn().Str("key", key).Msg("upload cut short by a crash: the key's outputs made to match its original")
	}
	if err != nil {
		log.Error().Err(err).Msg("an upload cut short by a crash not finished; the next start tries again")
	}
}
