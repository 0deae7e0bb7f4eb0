package httpapi

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/pipeline"
)

// purger forgets what was derived from an original that changed or went.
type purger interface {
	Purge(ctx context.Context, key, keep string) (delivery.Purged, error)
}

// purgingRunner is the pipeline as the webhook drives it, followed, for an
// original that was replaced or deleted, by the purge of the images
// derived from its other versions (and of their CDN paths): the webhook
// learns of both. A purge that fails fails the record, which the sender
// then retries; redoing the rest is harmless.
type purgingRunner struct {
	runner
	purger purger
}

func (p purgingRunner) Run(ctx context.Context, key, etag string) (pipeline.Result, error) {
	res, err := p.runner.Run(ctx, key, etag)
	if err != nil {
		return res, err
	}
	switch res.Status {
	case pipeline.StatusProcessed, pipeline.StatusUpToDate:
		keep := res.ETag
		if keep == "" {
			keep = etag
		}
		err = p.purge(ctx, key, keep)
	case pipeline.StatusRejected: // no longer an image: nothing of it stands
		err = p.purge(ctx, key, "")
	}
	return res, err
}

func (p purgingRunner) Remove(ctx context.Context, key string) (pipeline.Result, error) {
	res, err := p.runner.Remove(ctx, key)
	if err == nil && res.Status == pipeline.StatusDeleted {
		err = p.purge(ctx, key, "")
	}
	return res, err
}

func (p purgingRunner) purge(ctx context.Context, key, keep string) error {
	if _, err := p.purger.Purge(ctx, key, keep); err != nil {
		return fmt.Errorf("purge images derived from %q: %w", key, err)
	}
	return nil
}

// purgingUploader is the pipeline as the upload routes drive it: an
// upload that replaces an original purges what was derived from the
// version it replaced at once (with local storage no event will). The
// upload stands when the purge fails: what is left is only images of the
// old version, which unpinned URLs no longer reach (and with S3, the
// upload's event purges again).
type purgingUploader struct {
	uploader
	purger purger
}

func (p purgingUploader) Upload(ctx context.Context, key string, data []byte, meta map[string]string) (pipeline.Result, error) {
	res, err := p.uploader.Upload(ctx, key, data, meta)
	if err != nil {
		return res, err
	}
	if _, err := p.purger.Purge(ctx, key, res.ETag); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("key", key).Msg("images derived from the replaced original not purged")
	}
	return res, nil
}
