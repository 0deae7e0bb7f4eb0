package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/cdn"
	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
)

// newDelivery is delivery by URL over the stores: originals from the input
// store, derived images under OUTPUT_PREFIX's _cache/ in the output store,
// presets from the pipeline's variants, and CloudFront told what to forget
// when CLOUDFRONT_DISTRIBUTION_ID is set.
func newDelivery(ctx context.Context, s settings, st *stores, proc *imageproc.Processor, pl *pipeline.Pipeline,
	reg prometheus.Registerer, log zerolog.Logger) (*delivery.Service, error) {
	d := delivery.Deps{Sources: st.sources, Cache: st.cache, Renderer: proc, Presets: pl, Logger: log, Registry: reg}
	if s.CloudFrontDistribution != "" {
		awsCfg := st.aws
		if awsCfg == nil {
			c, err := loadAWS(ctx, s)
			if err != nil {
				return nil, err
			}
			awsCfg = &c
		}
		cf, err := cdn.NewCloudFront(s.CloudFrontDistribution, *awsCfg, "")
		if err != nil {
			return nil, err
		}
		d.Invalidator = cf
	}
	return delivery.New(delivery.Config{
		Prefixes:       s.DeliveryPrefixes,
		CachePrefix:    cachePrefix(s.Config),
		CacheControl:   s.DeliveryCacheControl,
		ETagTTL:        s.DeliveryETagTTL,
		FailureTTL:     s.FailureTTL,
		MaxSourceBytes: s.MaxBodyBytes,
		// A render waits at the gate, reads its original and is processed;
		// its write to the cache follows.
		RenderTimeout:      s.QueueTimeout + s.ProcessTimeout + 30*time.Second,
		Qualities:          s.qualities(),
		InvalidateVariants: s.CloudFrontVariants,
	}, d)
}

// urlSigningKeys are the keys of image URLs: URL_SIGNING_KEYS, or with
// local storage the key kept in DATA_DIR, so that the embedded default
// serves signed URLs (made by `server sign`) with no configuration. With
// S3 and no keys, only unsigned presets are served.
func urlSigningKeys(s settings, st *stores) ([]string, error) {
	if len(s.URLSigningKeys) > 0 || st.local == nil {
		return s.URLSigningKeys, nil
	}
	k, err := st.local.URLSigningKey()
	if err != nil {
		return nil, err
	}
	return []string{k}, nil
}

// errNoSigningKey: `server sign` has no key to sign with.
var errNoSigningKey = errors.New("no URL_SIGNING_KEYS to sign with")

// cachePrefix is where delivery keeps its derived images: the reserved
// segment of the output prefix.
func cachePrefix(cfg config.Config) string { return cfg.OutputPrefix + pipeline.CacheSegment }
