package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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
	// The secret may hold "new,old" while it rotates, as the service's
	// WEBHOOK_SECRETS does: every one signs. From Secrets Manager it is
	// read again on a 401, when the service may have moved on.
	secrets, reload := cfg.Secret, (func(context.Context) (string, error))(nil)
	if cfg.SecretARN != "" {
		reload = func(ctx context.Context) (string, error) { return fetchSecret(ctx, cfg.SecretARN) }
		if secrets, err = reload(ctx); err != nil {
			return nil, err
		}
	}
	f, err := forwarder.New(forwarder.Config{
		URL:            cfg.URL + "/webhooks/s3",
		Secrets:        secrets,
		Reload:         reload,
		InputPrefix:    cfg.InputPrefix,
		OutputPrefix:   cfg.OutputPrefix,
		OutputBucket:   cfg.OutputBucket,
		RequestTimeout: cfg.RequestTimeout,
	}, &http.Client{Transport: transport(http.DefaultTransport.(*http.Transport), cfg.ConnectTo)}, log)
	if err != nil {
		return nil, err
	}
	log.Info().Str("url", cfg.URL).Str("connect_to", cfg.ConnectTo).Str("input_prefix", cfg.InputPrefix).
		Str("output_prefix", cfg.OutputPrefix).Msg("cold start")
	return f.Handle, nil
}

// transport is base, dialling connectTo instead of the URL's host when it
// is set. The URL's host still names the server: TLS verifies the
// certificate against it, and it is the Host header.
func transport(base *http.Transport, connectTo string) *http.Transport {
	t := base.Clone()
	if connectTo != "" {
		d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, connectTo)
		}
	}
	return t
}

// fetchSecret reads the secret's current string value: at a cold start
// (Lambda keeps it for the life of the execution environment), and again
// after a 401.
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
