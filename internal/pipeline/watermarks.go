package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// ErrMisconfigured is a variant of the configuration (VARIANTS) that no
// original can be made into: it names a watermark that cannot be used
// (none is stored under that name, or it is not an image this server
// takes). It is the operator's to mend, not the original's fault nor an
// uploader's: it is never permanent (the original stays among the inputs,
// its event is retried and succeeds once the watermark is stored), and a
// client is told to come back later, not that it sent a bad option.
var ErrMisconfigured = errors.New("misconfigured")

// misconfigured returns err, an error of making the configured variants,
// as ErrMisconfigured when it is a watermark's; any other error as it
// is. The watermark's error is kept as text only: it is an ErrBadOption,
// which would otherwise make it permanent and the client's.
func misconfigured(err error) error {
	if !errors.Is(err, imageproc.ErrBadWatermark) {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), imageproc.ErrBadOption.Error()+": ")
	return fmt.Errorf("%w: VARIANTS names a watermark that cannot be used: %s", ErrMisconfigured, msg)
}

// CheckWatermarks reads every watermark that VARIANTS names and checks it
// as making a variant would, without an original: for the service to
// find, at startup and when asked whether it is ready, a configuration
// under which every original would fail. Nothing is read when no variant
// names a watermark.
//
// Errors: ErrMisconfigured, naming VARIANTS and the watermark; the store's
// error (storage.ErrUnavailable) when it cannot be asked; ctx's.
func (p *Pipeline) CheckWatermarks(ctx context.Context) error {
	return misconfigured(p.proc.CheckWatermarks(ctx, p.options(nil)))
}

// Misconfigured returns err, an error of making a variant of VARIANTS
// outside the pipeline (delivery by URL renders a preset with the
// variant's own options), as ErrMisconfigured when the variant names a
// watermark that cannot be used; any other error as it is.
func Misconfigured(err error) error { return misconfigured(err) }
