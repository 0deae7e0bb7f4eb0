package main

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/httpapi"
	"github.com/resizer/resizer/internal/pipeline"
)

// checkWatermarks checks, as the server starts, that every watermark
// VARIANTS names is stored and usable, and adds the same check to
// /readyz, which then answers not ready while one is missing (a watermark
// deleted while the server runs is found there too). A configuration that
// names none checks nothing.
//
// A watermark missing at startup stops the server with the local store,
// and not with S3, where it is logged and /readyz answers not ready until
// it is stored. The local directory is this machine's own: a missing file
// is a typo or a forgotten copy that nothing else will mend as the server
// starts, and refusing to start names it at once. A bucket is shared and
// outlives the server: the watermark may be uploaded by another step of a
// deployment after the server starts, or the bucket may not answer for a
// moment, which says nothing of the watermark. A server that refused to
// start would restart in a loop, its reason buried in its logs, and need
// a restart once mended; one that starts not ready takes no traffic from
// a load balancer, says why on /readyz, and is ready as soon as the
// watermark is stored. Uploads and events that reach it meanwhile are
// answered 503 and retried, never rejected (pipeline.ErrMisconfigured).
func checkWatermarks(ctx context.Context, s settings, pl *pipeline.Pipeline, checks map[string]httpapi.Check, log zerolog.Logger) error {
	if !slices.ContainsFunc(s.pipeline.Variants, func(v pipeline.Variant) bool { return v.Options.Watermark != nil }) {
		return nil
	}
	checks["watermarks"] = pl.CheckWatermarks
	err := pl.CheckWatermarks(ctx)
	switch {
	case err == nil:
		return nil
	case !s.S3Mode() && errors.Is(err, pipeline.ErrMisconfigured):
		return fmt.Errorf("configuration: %w (under WATERMARK_PREFIX %q of DATA_DIR)", err, s.WatermarkPrefix)
	case !s.S3Mode():
		return fmt.Errorf("watermarks: %w", err)
	}
	log.Error().Err(err).Str("prefix", s.WatermarkPrefix).
		Msg("a watermark that VARIANTS names is not usable in S3_BUCKET: not ready until it is stored")
	return nil
}
