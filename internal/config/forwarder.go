package config

import (
	"errors"
	"fmt"
	"net"
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
	// OutputBucket, when set, is a bucket of the outputs' own (the
	// service's OUTPUT_BUCKET): OutputPrefix guards its keys only, and
	// in the bucket of the originals it is a folder like any other.
	OutputBucket string
	// ConnectTo, when set (host:port), is where connections go instead
	// of URL's host, which still names the server for TLS and the Host
	// header: the function reaches the service's internal load balancer
	// under the service's public name and certificate.
	ConnectTo string
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
		OutputBucket: get("OUTPUT_BUCKET", ""),
		ConnectTo:    get("RESIZER_CONNECT_TO", ""),
		LogLevel:     get("LOG_LEVEL", "info"),
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("RESIZER_URL: required, the service's base URL"))
	} else if err := checkURL(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("RESIZER_URL=%q: %w", c.URL, err))
	}
	if c.ConnectTo != "" {
		if host, port, err := net.SplitHostPort(c.ConnectTo); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("RESIZER_CONNECT_TO=%q: must be host:port", c.ConnectTo))
		}
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
