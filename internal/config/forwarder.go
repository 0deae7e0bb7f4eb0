package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Forwarder is the configuration of cmd/forwarder, the Lambda function
// that posts S3 events to the service.
type Forwarder struct {
	// URL is the service's base URL; events go to URL + /webhooks/s3.
	URL string
	// Secret signs the events; SecretARN names a Secrets Manager secret
	// holding it instead (one of the two is set).
	Secret, SecretARN string
	// Records whose keys lie outside InputPrefix or inside OutputPrefix
	// are dropped before sending: the loop guard, as in the service.
	InputPrefix, OutputPrefix string
	// RequestTimeout bounds one attempt.
	RequestTimeout time.Duration
	LogLevel       string
}

// LoadForwarder reads the forwarder's configuration through getenv. The
// error lists every variable that is wrong.
func LoadForwarder(getenv func(string) string) (Forwarder, error) {
	get := func(k, def string) string {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			return v
		}
		return def
	}
	c := Forwarder{
		URL:          strings.TrimSuffix(get("RESIZER_URL", ""), "/"),
		Secret:       get("WEBHOOK_SECRET", ""),
		SecretARN:    get("WEBHOOK_SECRET_ARN", ""),
		InputPrefix:  strings.TrimPrefix(get("INPUT_PREFIX", "uploads/"), "/"),
		OutputPrefix: get("OUTPUT_PREFIX", "resized/"),
		LogLevel:     get("LOG_LEVEL", "info"),
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("RESIZER_URL: required, the service's base URL"))
	} else if err := checkURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("RESIZER_URL=%q: %w", c.URL, err))
	}
	if (c.Secret == "") == (c.SecretARN == "") {
		errs = append(errs, errors.New("WEBHOOK_SECRET or WEBHOOK_SECRET_ARN: exactly one is required"))
	}
	var err error
	if c.RequestTimeout, err = positiveDuration(get("REQUEST_TIMEOUT", "80s")); err != nil {
		errs = append(errs, fmt.Errorf("REQUEST_TIMEOUT: %w", err))
	}
	if err := oneOf(c.LogLevel, "debug", "info", "warn", "error"); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: %w", c.LogLevel, err))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %w", errors.Join(errs...))
	}
	return c, nil
}
