package main

import (
	"context"
	"fmt"
	"net/url"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/httpapi"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// wired are the storage parts of the service: the pipeline over its stores,
// and what the HTTP layer needs of them.
type wired struct {
	pipeline  *pipeline.Pipeline
	s3        *storage.S3
	local     *storage.Dir
	objectURL func(string) string
	checks    map[string]httpapi.Check
}

// wireStorage builds the stores (S3 when S3_BUCKET is set, else the local
// directory) and the pipeline, which refuses a looping configuration.
func wireStorage(ctx context.Context, cfg config.Config, proc *imageproc.Processor) (*wired, error) {
	variants, err := pipeline.ParseVariants(cfg.Variants, cfg.MaxDimension)
	if err != nil {
		return nil, fmt.Errorf("VARIANTS: %w", err)
	}
	pcfg := pipeline.Config{
		InputPrefix: cfg.InputPrefix, OutputPrefix: cfg.OutputPrefix,
		SameStore: !cfg.S3Mode() || cfg.OutputBucket == cfg.S3Bucket,
		Variants:  variants, CacheControl: cfg.CacheControl, MaxSourceBytes: cfg.MaxBodyBytes,
		RejectedPrefix: cfg.RejectedPrefix,
	}
	w := &wired{checks: map[string]httpapi.Check{}}
	var in, out pipeline.Store
	if !cfg.S3Mode() {
		if w.local, err = storage.NewDir(cfg.DataDir); err != nil {
			return nil, err
		}
		in, out = w.local, w.local
		w.checks["storage"] = w.local.Check
		w.objectURL = func(key string) string { return "/objects/" + url.PathEscape(key) }
	} else {
		var opts []func(*awsconfig.LoadOptions) error
		if cfg.AWSRegion != "" {
			opts = append(opts, awsconfig.WithRegion(cfg.AWSRegion))
		}
		if cfg.AWSAccessKeyID != "" {
			opts = append(opts, awsconfig.WithCredentialsProvider(
				credentials.NewStaticCredentialsProvider(cfg.AWSAccessKeyID, cfg.AWSSecretAccessKey, cfg.AWSSessionToken)))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("AWS configuration: %w", err)
		}
		s3cfg := storage.S3Config{Bucket: cfg.S3Bucket, Endpoint: cfg.S3Endpoint, PathStyle: cfg.S3PathStyle}
		if w.s3, err = storage.NewS3(s3cfg, awsCfg); err != nil {
			return nil, err
		}
		in, out = w.s3, w.s3
		w.checks["storage"] = w.s3.Check
		if cfg.OutputBucket != cfg.S3Bucket {
			s3cfg.Bucket = cfg.OutputBucket
			o, err := storage.NewS3(s3cfg, awsCfg)
			if err != nil {
				return nil, err
			}
			out = o
			w.checks["output storage"] = o.Check
		}
		w.objectURL = w.s3.URL
	}
	if w.pipeline, err = pipeline.New(pcfg, in, out, proc); err != nil {
		return nil, fmt.Errorf("INPUT_PREFIX/OUTPUT_PREFIX: %w", err)
	}
	return w, nil
}
