package httpapi

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/pipeline"
)

// purger forgets what was derived from an original that changed or went
// (delivery's Settle).
type purger interface {
	Settle(ctx context.Context, key, etag string, res pipeline.Result) error
}

// purgingRunner is the pipeline as the webhook drives it, followed by the
// purge of what its result leaves stale (the images derived from other
// versions of an original replaced, all of one deleted or no longer an
// image, and their CDN paths): the webhook learns of both. A purge that
// fails fails the record, which the sender then retries; redoing the rest
// is harmless.
type purgingRunner struct {
	runner
	purger purger
}

func (p purgingRunner) Run(ctx context.Context, key, etag string) (pipeline.Result, error) {
	res, err := p.runner.Run(ctx, key, etag)
	if err != nil {
		return res, err
	}
	return res, p.purger.Settle(ctx, key, etag, res)
}

func (p purgingRunner) Remove(ctx context.Context, key string) (pipeline.Result, error) {
	res, err := p.runner.Remove(ctx, key)
	if err != nil {
		return res, err
	}
	return res, p.purger.Settle(ctx, key, "", res)
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
	if err := p.purger.Settle(ctx, key, "", res); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("key", key).Msg("images derived from the replaced original not purged")
	}
	return res, nil
}
