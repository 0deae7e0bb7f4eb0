package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/forwarder"
)

// setup runs once per cold start: it reads and checks the configuration,
// fetches the secret (from Secrets Manager when WEBHOOK_SECRET_ARN is set)
// and returns the handler, so that a misconfigured function fails at once
// with a clear error rather than on every event.
func setup(ctx context.Context, getenv func(string) string, stdout io.Writer) (func(context.Context, json.RawMessage) (any, error), error) {
	cfg, err := config.LoadForwarder(getenv)
	if err != nil {
		return nil, err
	}
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	log := zerolog.New(stdout).Level(level).With().Timestamp().Logger()
	secret := cfg.Secret
	if cfg.SecretARN != "" {
		if secret, err = fetchSecret(ctx, cfg.SecretARN); err != nil {
			return nil, err
		}
	}
	// The secret may hold "new,old" while it rotates, as the service's
	// WEBHOOK_SECRETS does: the first signs.
	secret, _, _ = strings.Cut(secret, ",")
	secret = strings.TrimSpace(secret)
	f, err := forwarder.New(forwarder.Config{
		URL:            cfg.URL + "/webhooks/s3",
		Secret:         []byte(secret),
		InputPrefix:    cfg.InputPrefix,
		OutputPrefix:   cfg.OutputPrefix,
		RequestTimeout: cfg.RequestTimeout,
	}, &http.Client{Transport: http.DefaultTransport}, log)
	if err != nil {
		return nil, err
	}
	log.Info().Str("url", cfg.URL).Str("input_prefix", cfg.InputPrefix).Str("output_prefix", cfg.OutputPrefix).Msg("cold start")
	return f.Handle, nil
}

// fetchSecret reads the secret's current string value, once per cold
// start: Lambda keeps it for the life of the execution environment.
func fetchSecret(ctx context.Context, arn string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return "", fmt.Errorf("AWS configuration: %w", err)
	}
	out, err := secretsmanager.NewFromConfig(awsCfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
	if err != nil {
		return "", fmt.Errorf("WEBHOOK_SECRET_ARN: %w", err)
	}
	if aws.ToString(out.SecretString) == "" {
		return "", fmt.Errorf("WEBHOOK_SECRET_ARN: the secret has no string value")
	}
	return aws.ToString(out.SecretString), nil
}
