// Package forwarder is the logic of the Lambda function between S3 and the
// service: it takes S3 event notifications (directly, wrapped in SQS
// messages, or as EventBridge events), drops what the service must never
// process, signs the rest with the shared webhook scheme and posts it to
// POST /webhooks/s3, retrying until shortly before the Lambda deadline. A
// failure is returned, never swallowed, so that Lambda's retries and the
// failure destination keep the event. It runs and is tested without the
// Lambda runtime; cmd/forwarder only wires it in.
package forwarder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/webhook"
)

// Config is what the forwarder needs.
type Config struct {
	// URL is where events are posted (the service's /webhooks/s3).
	URL    string
	Secret []byte
	// Records outside InputPrefix or inside OutputPrefix are dropped.
	InputPrefix, OutputPrefix string
	// RequestTimeout bounds one attempt.
	RequestTimeout time.Duration
	// Margin is kept free before the Lambda deadline: no attempt starts,
	// and no wait ends, inside it, so the function returns its error
	// before Lambda kills it.
	Margin time.Duration
	// BaseDelay and MaxDelay shape the exponential backoff.
	BaseDelay, MaxDelay time.Duration
}

// ErrPermanent marks a refusal that retrying will not change (a 4xx other
// than 408 and 429).
var ErrPermanent = errors.New("refused by the service")

// Forwarder posts events to the service.
type Forwarder struct {
	cfg    Config
	client *http.Client
	log    zerolog.Logger
}

// New returns a Forwarder. Unset timings take defaults: 2 s margin, 200 ms
// base delay, 10 s longest delay, 60 s per attempt.
func New(cfg Config, client *http.Client, log zerolog.Logger) (*Forwarder, error) {
	if cfg.URL == "" || len(cfg.Secret) == 0 {
		return nil, errors.New("forwarder: URL and secret are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Margin, 2*time.Second)
	def(&cfg.BaseDelay, 200*time.Millisecond)
	def(&cfg.MaxDelay, 10*time.Second)
	def(&cfg.RequestTimeout, 60*time.Second)
	if client == nil {
		client = http.DefaultClient
	}
	return &Forwarder{cfg: cfg, client: client, log: log}, nil
}

// envelope is enough of any incoming event to tell its kind.
type envelope struct {
	Records []struct {
		EventSource string `json:"eventSource"`
	} `json:"Records"`
	Event      string `json:"Event"`       // "s3:TestEvent"
	DetailType string `json:"detail-type"` // EventBridge
	Source     string `json:"source"`
}

// Handle is the Lambda handler. An SQS batch is answered with the messages
// that failed (batchItemFailures), so that only those are retried; a
// direct S3 or EventBridge event returns an error when it could not be
// delivered. S3's test event is acknowledged and dropped.
func (f *Forwarder) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	start := time.Now()
	log := f.log.With().Str("lambda_request_id", requestID(ctx)).Logger()
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		log.Error().Err(err).Msg("not JSON")
		return nil, fmt.Errorf("event: %w", err)
	}
	var s summary
	switch {
	case len(env.Records) > 0 && env.Records[0].EventSource == "aws:sqs":
		var batch events.SQSEvent
		if err := json.Unmarshal(raw, &batch); err != nil {
			return nil, fmt.Errorf("sqs event: %w", err)
		}
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		for _, m := range batch.Records {
			mlog := log.With().Str("message_id", m.MessageId).Logger()
			if err := f.forwardBody(ctx, mlog, []byte(m.Body), &s); err != nil {
				mlog.Error().Err(err).Msg("message not delivered; SQS will retry it")
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
			}
		}
		s.failed = len(resp.BatchItemFailures)
		s.log(log, start)
		return resp, nil
	default:
		err := f.forwardBody(ctx, log, raw, &s)
		if err != nil {
			s.failed = 1
		}
		s.log(log, start)
		return nil, err
	}
}

// summary counts what one invocation did, for its closing log line.
type summary struct{ forwarded, dropped, failed int }

func (s summary) log(log zerolog.Logger, start time.Time) {
	log.Info().Int("forwarded", s.forwarded).Int("dropped", s.dropped).Int("failed", s.failed).
		Dur("duration", time.Since(start)).Msg("invocation")
}

// forwardBody forwards one S3 notification, EventBridge event or test
// event.
func (f *Forwarder) forwardBody(ctx context.Context, log zerolog.Logger, body []byte, s *summary) error {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%w: not JSON: %v", ErrPermanent, err)
	}
	switch {
	case env.Event == "s3:TestEvent":
		log.Info().Msg("S3 test event dropped")
		return nil
	case env.Source == "aws.s3" && env.DetailType != "":
		rec, ok, err := fromEventBridge(body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPermanent, err)
		}
		if !ok {
			log.Info().Str("detail_type", env.DetailType).Msg("EventBridge event ignored")
			return nil
		}
		raw, _ := json.Marshal(rec)
		return f.forward(ctx, log, []json.RawMessage{raw}, s)
	}
	var ev struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return fmt.Errorf("%w: s3 event: %v", ErrPermanent, err)
	}
	return f.forward(ctx, log, ev.Records, s)
}

// forward drops records the service must not process, then posts the rest
// as one S3 event notification.
func (f *Forwarder) forward(ctx context.Context, log zerolog.Logger, raws []json.RawMessage, s *summary) error {
	var keep []json.RawMessage
	for _, raw := range raws {
		var rec webhook.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("%w: record: %v", ErrPermanent, err)
		}
		key := rec.Key()
		rlog := log.With().Str("bucket", rec.S3.Bucket.Name).Str("key", key).Str("event", rec.Name()).Logger()
		if !strings.HasPrefix(key, f.cfg.InputPrefix) || strings.HasPrefix(key, f.cfg.OutputPrefix) {
			rlog.Info().Msg("dropped by the loop guard")
			s.dropped++
			continue
		}
		rlog.Info().Msg("forwarding")
		keep = append(keep, raw)
	}
	if len(keep) == 0 {
		return nil
	}
	body, err := json.Marshal(map[string]any{"Records": keep})
	if err != nil {
		return err
	}
	if err := f.post(ctx, log, body); err != nil {
		return err
	}
	s.forwarded += len(keep)
	return nil
}

// post sends body, signed, retrying network errors, 408, 429 and 5xx with
// exponential backoff and full jitter (or the Retry-After asked for) for as
// long as the Lambda deadline, less the margin, allows.
func (f *Forwarder) post(ctx context.Context, log zerolog.Logger, body []byte) error {
	budget, hasDeadline := ctx.Deadline()
	if hasDeadline {
		budget = budget.Add(-f.cfg.Margin)
	}
	for attempt := 0; ; attempt++ {
		wait, err := f.attempt(ctx, budget, hasDeadline, body)
		if err == nil {
			if attempt > 0 {
				log.Info().Int("attempts", attempt+1).Msg("delivered")
			}
			return nil
		}
		if errors.Is(err, ErrPermanent) {
			return err
		}
		if wait <= 0 {
			d := f.cfg.BaseDelay << min(attempt, 20)
			wait = time.Duration(rand.Int64N(int64(min(d, f.cfg.MaxDelay)) + 1))
		}
		if hasDeadline && time.Now().Add(wait).After(budget) {
			return fmt.Errorf("gave up before the Lambda deadline after %d attempts: %w", attempt+1, err)
		}
		log.Warn().Err(err).Int("attempt", attempt+1).Dur("retry_in", wait).Msg("retrying")
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
	}
}

// attempt posts once. A retryable failure may come with the wait the
// service asked for (Retry-After).
func (f *Forwarder) attempt(ctx context.Context, budget time.Time, hasDeadline bool, body []byte) (time.Duration, error) {
	timeout := f.cfg.RequestTimeout
	if hasDeadline {
		left := time.Until(budget)
		if left <= 0 {
			return 0, errors.New("no time left before the Lambda deadline")
		}
		timeout = min(timeout, left)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, f.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(webhook.Header, webhook.Sign(f.cfg.Secret, body, time.Now()))
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	detail, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return 0, nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return retryAfter(resp.Header.Get("Retry-After")), fmt.Errorf("HTTP %d: %s", code, bytes.TrimSpace(detail))
	default:
		return 0, fmt.Errorf("%w: HTTP %d: %s", ErrPermanent, code, bytes.TrimSpace(detail))
	}
}

// retryAfter reads a Retry-After of seconds or an HTTP date; 0 when absent.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func requestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}
