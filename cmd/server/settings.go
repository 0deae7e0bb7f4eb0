package main

import (
	"errors"
	"fmt"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/watermark"
	"github.com/resizer/resizer/internal/webhook"
)

// settings are the configuration with what the packages read from it
// (the formats, the variants, the pipeline's layout), every one of them
// checked before anything is started.
type settings struct {
	config.Config
	formats    []imageproc.Format
	pipeline   pipeline.Config
	watermarks watermark.Config // Prefix "": none
	// readOnly opens the local directory to read it only (server
	// reconcile --dry-run): nothing in it is made, changed or removed.
	readOnly bool
}

// settle checks the configuration and what the packages make of it, and
// reports every fault at once, each naming its variable: a bad VARIANTS or
// overlapping prefixes are found here, with the rest, not during wiring.
func settle(cfg config.Config, loadErr error) (settings, error) {
	s := settings{Config: cfg}
	errs := []error{errors.Unwrap(loadErr)} // config's joined errors, without its prefix
	for _, name := range cfg.InputFormats {
		f, err := imageproc.ParseFormat(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("INPUT_FORMATS: %w", err))
			continue
		}
		s.formats = append(s.formats, f)
	}
	variants, err := pipeline.ParseVariants(cfg.Variants, cfg.MaxDimension)
	if err != nil {
		errs = append(errs, fmt.Errorf("VARIANTS: %w", err))
	}
	qualities := s.qualities()
	for i, v := range variants {
		variants[i].Qualities = qualities
		if f := v.Options.Format; f != imageproc.FormatUnknown && !f.Writable(s.formats) {
			errs = append(errs, fmt.Errorf("VARIANTS: variant %q: %s output needs %s in INPUT_FORMATS", v.Name, f, f))
		}
	}
	s.pipeline = pipeline.Config{
		InputPrefix: cfg.InputPrefix, OutputPrefix: cfg.OutputPrefix,
		SameStore: !cfg.S3Mode() || cfg.OutputBucket == cfg.S3Bucket,
		Variants:  variants, CacheControl: cfg.CacheControl, MaxSourceBytes: cfg.MaxBodyBytes,
		RejectedPrefix: cfg.RejectedPrefix, PublicBaseURL: cfg.VariantsBaseURL, FailureTTL: cfg.FailureTTL,
	}
	if !cfg.S3Mode() {
		// The local store serves its objects itself: manifests and srcsets
		// that work in a page as they are.
		s.pipeline.ObjectURL = storage.ObjectPath
	}
	if cfg.ReadyCallbackURL != "" && len(cfg.ReadyCallbackSecrets) > 0 {
		cb, err := webhook.NewCallback(cfg.ReadyCallbackURL, webhook.Secrets(cfg.ReadyCallbackSecrets), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("READY_CALLBACK_URL: %w", err))
		}
		s.pipeline.Ready = readyCallback{cb: cb, bucket: cfg.S3Bucket}
	}
	errs = append(errs, s.pipeline.Validate())
	s.watermarks = watermark.Config{Prefix: cfg.WatermarkPrefix, MaxBytes: cfg.WatermarkMaxBytes,
		CacheBytes: cfg.WatermarkCacheBytes}
	apart := [][2]string{{"INPUT_PREFIX", cfg.InputPrefix}}
	if cfg.RejectedPrefix != "" {
		apart = append(apart, [2]string{"REJECTED_PREFIX", cfg.RejectedPrefix})
	}
	if s.pipeline.SameStore {
		apart = append(apart, [2]string{"OUTPUT_PREFIX", cfg.OutputPrefix})
	}
	for _, a := range apart {
		s.watermarks.Apart = append(s.watermarks.Apart, a[1])
		// Checked one by one, so that each fault names both variables.
		one := watermark.Config{Prefix: cfg.WatermarkPrefix, Apart: []string{a[1]}}
		if err := one.Validate(); err != nil && cfg.WatermarkPrefix != "" {
			errs = append(errs, fmt.Errorf("WATERMARK_PREFIX and %s: %w", a[0], err))
		}
	}
	for _, v := range variants {
		if w := v.Options.Watermark; w != nil && cfg.WatermarkPrefix == "" {
			errs = append(errs, fmt.Errorf("VARIANTS: variant %q: watermark %q needs WATERMARK_PREFIX, which is off", v.Name, w.Key))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("configuration: %w", err)
	}
	return s, nil
}

// qualities are the default qualities of the lossy outputs, by format.
func (s settings) qualities() map[imageproc.Format]int {
	return map[imageproc.Format]int{
		imageproc.FormatJPEG: s.JPEGQuality, imageproc.FormatWebP: s.WebPQuality, imageproc.FormatAVIF: s.AVIFQuality,
	}
}

// uploadTypes are the media types a presigned upload may declare: those of
// the enabled input formats.
func (s settings) uploadTypes() []string {
	var ts []string
	for _, f := range s.formats {
		ts = append(ts, f.ContentTypes()...)
	}
	return ts
}
