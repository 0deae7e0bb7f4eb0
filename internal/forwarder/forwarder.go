// Package forwarder is the logic of the Lambda function between S3 and the
// service: it takes S3 event notifications (directly, wrapped in SQS
// messages, in SNS notifications, in Lambda's records of failed
// invocations, or as EventBridge events), drops what the service must
// never process, signs the rest with the shared webhook scheme and posts
// it to POST /webhooks/s3, retrying with backoff until shortly before the
// Lambda deadline, the messages of an SQS batch in turn, each within its
// share of that time. A failure is returned, never swallowed, and so is a
// body it cannot read, so that the queue's redelivery and its dead-letter
// queue keep the event. It runs and is tested without the Lambda runtime;
// cmd/forwarder only wires it in.
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/webhook"
)

// Config is what the forwarder needs.
type Config struct {
	// URL is where events are posted (the service's /webhooks/s3).
	URL string
	// Secrets are the webhook secrets, comma-separated as in the
	// service's WEBHOOK_SECRETS ("new,old" during a rotation); every one
	// signs each request.
	Secrets string
	// Reload, when set, reads Secrets again: the forwarder calls it on a
	// 401 and retries at once when the secrets have changed, so that an
	// instance started before a rotation catches up instead of failing.
	Reload func(context.Context) (string, error)
	// Records outside InputPrefix or inside OutputPrefix are dropped;
	// with OutputBucket set (the outputs in a bucket of their own), only
	// that bucket's records inside OutputPrefix are.
	InputPrefix, OutputPrefix, OutputBucket string
	// RequestTimeout bounds one attempt.
	RequestTimeout time.Duration
	// Margin is kept free before the Lambda deadline: no attempt starts,
	// no read of the secrets runs, and no wait ends, inside it, so the
	// function returns its error before Lambda kills it.
	Margin time.Duration
	// BaseDelay and MaxDelay shape the exponential backoff: the n-th wait
	// is drawn from [d/2, d] with d = min(MaxDelay, BaseDelay * 2^n).
	BaseDelay, MaxDelay time.Duration
	// ReloadEvery is the least time between two reloads of the secrets.
	ReloadEvery time.Duration
}

// ErrPermanent marks a refusal that retrying will not change (a redirect,
// a 4xx other than 408 and 429, a body that is no event).
var ErrPermanent = errors.New("refused by the service")

// errUnauthorized is a 401: the secrets may be stale.
var errUnauthorized = errors.New("unauthorized")

// Forwarder posts events to the service.
type Forwarder struct {
	cfg    Config
	client *http.Client
	log    zerolog.Logger

	mu       sync.Mutex
	secrets  [][]byte
	reloaded time.Time
}

// New returns a Forwarder. Unset timings take defaults: 2 s margin, 250 ms
// base delay, 10 s longest delay, 80 s per attempt (longer than the
// service takes for one request, 75 s), 10 s between reloads.
func New(cfg Config, client *http.Client, log zerolog.Logger) (*Forwarder, error) {
	secrets := splitSecrets(cfg.Secrets)
	if cfg.URL == "" || len(secrets) == 0 {
		return nil, errors.New("forwarder: URL and secret are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Margin, 2*time.Second)
	def(&cfg.BaseDelay, 250*time.Millisecond)
	def(&cfg.MaxDelay, 10*time.Second)
	def(&cfg.RequestTimeout, 80*time.Second)
	def(&cfg.ReloadEvery, 10*time.Second)
	if client == nil {
		client = http.DefaultClient
	}
	// A redirect is never followed: only the webhook's own 2xx is a
	// delivery. Go's client turns a POST into a GET on a 301, 302 or 303,
	// so a login page or a folder's index answering that GET with 200
	// would acknowledge an event the service never saw; a 307 or 308
	// sends the body and its signature to wherever the Location says.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Forwarder{cfg: cfg, client: &c, log: log, secrets: secrets}, nil
}

// splitSecrets reads "new,old" into the secrets, blanks dropped.
func splitSecrets(s string) [][]byte {
	var out [][]byte
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, []byte(p))
		}
	}
	return out
}

// Handle is the Lambda handler. An SQS batch is answered with the messages
// that failed (batchItemFailures), so that only those come back, and a
// message that is no event the forwarder knows is one of them; a direct
// invocation returns an error when its event could not be delivered. S3's
// test event is acknowledged and dropped.
//
// The messages of a batch are posted one after another, never at once,
// so that a forwarder has at most one request at the service and
// ForwarderConcurrency bounds the requests in flight (the stack sizes it
// against the fleet). That is the backpressure: a forwarder that waits
// out the service's 503s holds its slot of the function's concurrency, so
// the backlog waits in the queue, whose depth scales the fleet out,
// rather than in more requests at a service already shedding (a batch
// posted at once would be up to ten). Fairness comes from time instead:
// each message keeps, for every message after it, the time of one attempt
// (see share), so that none is reported failed without an attempt. Every
// failure costs the message one of its receives, and after
// maxReceiveCount it is a dead letter, so a message that waited for
// another's retries would reach the dead-letter queue under sustained
// overload without ever having been tried.
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
	case env.source() == "aws:sqs":
		var batch events.SQSEvent
		if err := json.Unmarshal(raw, &batch); err != nil {
			return nil, fmt.Errorf("sqs event: %w", err)
		}
		resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
		for i, m := range batch.Records {
			mlog := log.With().Str("message_id", m.MessageId).Logger()
			mctx, cancel := f.share(ctx, len(batch.Records)-i)
			err := f.forwardBody(mctx, mlog, []byte(m.Body), &s)
			cancel()
			if err != nil {
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

// attemptReserve is the time share keeps for one attempt of a message
// still to come: the service answers an event in a second or two, and
// sheds a request it cannot take within QUEUE_TIMEOUT (5 s).
const attemptReserve = 5 * time.Second

// share bounds ctx for the next of n messages still to do: it may retry
// until the Lambda deadline less the time of one attempt for each of the
// n-1 after it (attemptReserve, or less when the time left is short, so
// that the reserves never take more than half of it; the margin stays on
// top, where post looks for it). The first of a full batch of ten gets at
// least 118 - 9 x 5 = 73 s of the stack's 120 s, and each later one at
// least its 5 s plus whatever those before it left unused; the last gets
// all that is left. A message that meets a busy service can so wait its
// turn at the service, which an equal share (a tenth) would often cut
// short after a 503 or two, and none is ever failed untried. Without a
// deadline, or for the last message, ctx is left as it is.
func (f *Forwarder) share(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	left := time.Until(deadline) - f.cfg.Margin
	if !ok || n <= 1 || left <= 0 {
		return context.WithCancel(ctx)
	}
	reserve := min(attemptReserve, left/time.Duration(2*(n-1)))
	return context.WithDeadline(ctx, deadline.Add(-time.Duration(n-1)*reserve))
}

// summary counts what one invocation did, for its closing log line.
type summary struct{ forwarded, dropped, failed int }

func (s summary) log(log zerolog.Logger, start time.Time) {
	log.Info().Int("forwarded", s.forwarded).Int("dropped", s.dropped).Int("failed", s.failed).
		Dur("duration", time.Since(start)).Msg("invocation")
}

// forwardBody forwards the S3 records of one event, however wrapped.
func (f *Forwarder) forwardBody(ctx context.Context, log zerolog.Logger, body []byte, s *summary) error {
	recs, err := records(log, body, 0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPermanent, err)
	}
	return f.forward(ctx, log, recs, s)
}

// isOutput reports whether key of bucket may be one of the service's
// outputs: under OutputPrefix, in the outputs' bucket (any bucket when
// they share the originals').
func (f *Forwarder) isOutput(bucket, key string) bool {
	return strings.HasPrefix(key, f.cfg.OutputPrefix) && (f.cfg.OutputBucket == "" || bucket == f.cfg.OutputBucket)
}

// forward drops records the service must not process, then posts the rest
// as one S3 event notification. A record that names no bucket, no key or
// no event is no change S3 reports: it fails the whole body, as a body
// that is no event does, rather than being dropped as outside the input
// prefix or answered as another bucket's or as a change to nothing.
func (f *Forwarder) forward(ctx context.Context, log zerolog.Logger, raws []json.RawMessage, s *summary) error {
	var keep []json.RawMessage
	for _, raw := range raws {
		var rec webhook.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("%w: record: %v", ErrPermanent, err)
		}
		if err := rec.Check(); err != nil || rec.S3.Bucket.Name == "" {
			return fmt.Errorf("%w: a record without bucket, key or event name", ErrPermanent)
		}
		key := rec.Key()
		rlog := log.With().Str("bucket", rec.S3.Bucket.Name).Str("key", key).Str("event", rec.Name()).Logger()
		if !strings.HasPrefix(key, f.cfg.InputPrefix) || f.isOutput(rec.S3.Bucket.Name, key) {
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
// jittered exponential backoff, for as long as ctx's deadline (the
// message's share), less the margin, allows. A Retry-After is honoured up
// to half the time left, so that a wait always leaves as long for the
// attempt after it: the service asks for a second, and a longer wait (a
// proxy's, a far HTTP date) would otherwise end the attempts at once. A 401 reloads the secrets once and, when they have
// changed, tries again at once.
func (f *Forwarder) post(ctx context.Context, log zerolog.Logger, body []byte) error {
	budget, hasDeadline := ctx.Deadline()
	if hasDeadline {
		budget = budget.Add(-f.cfg.Margin)
	}
	reloaded := false
	for attempt := 0; ; attempt++ {
		retryAfter, err := f.attempt(ctx, budget, hasDeadline, body)
		if err == nil {
			if attempt > 0 {
				log.Info().Int("attempts", attempt+1).Msg("delivered")
			}
			return nil
		}
		if errors.Is(err, errUnauthorized) && !reloaded {
			reloaded = true
			// The read of the secret keeps out of the margin as an
			// attempt does: a Secrets Manager that does not answer
			// would otherwise hold the invocation past its deadline,
			// and Lambda would bring back the whole batch, the
			// messages delivered with it.
			rctx, cancel := ctx, context.CancelFunc(func() {})
			if hasDeadline {
				rctx, cancel = context.WithDeadline(ctx, budget)
			}
			changed := f.reload(rctx, log)
			cancel()
			if changed {
				continue
			}
		}
		if errors.Is(err, ErrPermanent) || errors.Is(err, errUnauthorized) {
			return err
		}
		if hasDeadline {
			retryAfter = min(retryAfter, time.Until(budget)/2)
		}
		wait := f.backoff(attempt, retryAfter)
		if hasDeadline && time.Now().Add(wait).After(budget) {
			return fmt.Errorf("gave up at the end of the event's share of the time, after %d attempts: %w", attempt+1, err)
		}
		log.Warn().Err(err).Int("attempt", attempt+1).Dur("retry_in", wait).Msg("retrying")
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		}
	}
}

// backoff is the wait before retry number attempt+1: drawn from [d/2, d],
// d growing from BaseDelay to MaxDelay, so that the waits grow and a crowd
// of forwarders does not come back in step; and never under the service's
// Retry-After, which is itself spread over a quarter more for the same
// reason (a busy service tells every caller the same second). MaxDelay
// caps the backoff, not what the service asks for: post caps that by the
// time left, and a wait that would outlast it ends the attempts.
func (f *Forwarder) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := min(f.cfg.MaxDelay, f.cfg.BaseDelay<<min(attempt, 20))
	wait := d/2 + rand.N(d/2+1)
	if retryAfter > 0 {
		wait = max(wait, retryAfter+rand.N(retryAfter/4+1))
	}
	return wait
}

// reload reads the secrets again, at most once per ReloadEvery, and
// reports whether they changed.
func (f *Forwarder) reload(ctx context.Context, log zerolog.Logger) bool {
	if f.cfg.Reload == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if time.Since(f.reloaded) < f.cfg.ReloadEvery {
		return false
	}
	f.reloaded = time.Now()
	s, err := f.cfg.Reload(ctx)
	if err != nil {
		log.Error().Err(err).Msg("secrets not reloaded")
		return false
	}
	fresh := splitSecrets(s)
	if len(fresh) == 0 || slices.EqualFunc(fresh, f.secrets, bytes.Equal) {
		log.Warn().Msg("401 with the current secrets")
		return false
	}
	f.secrets = fresh
	log.Info().Int("secrets", len(fresh)).Msg("secrets reloaded after a 401")
	return true
}

func (f *Forwarder) signature(body []byte) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return webhook.SignAll(f.secrets, body, time.Now())
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
	req.Header.Set(webhook.Header, f.signature(body))
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
	case code == http.StatusUnauthorized:
		return 0, fmt.Errorf("%w: HTTP %d: %s", errUnauthorized, code, bytes.TrimSpace(detail))
	case code/100 == 3:
		return 0, fmt.Errorf("%w: HTTP %d, a redirect to %q: RESIZER_URL must name the service itself", ErrPermanent, code, location(resp))
	default:
		return 0, fmt.Errorf("%w: HTTP %d: %s", ErrPermanent, code, bytes.TrimSpace(detail))
	}
}

// location is where a redirect points, without its query (a login page's
// state and nonce are no business of the log).
func location(resp *http.Response) string {
	u, err := resp.Location()
	if err != nil {
		return ""
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// maxRetryAfter bounds what a Retry-After is read as: far more than any
// invocation lasts, and far from where seconds overflow a Duration.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads a Retry-After of seconds or an HTTP date; 0 when absent.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(min(s, int(maxRetryAfter/time.Second))) * time.Second
	} else if errors.Is(err, strconv.ErrRange) && s > 0 {
		return maxRetryAfter // more seconds than an int holds
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

func requestID(ctx context.Context) string {
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		return lc.AwsRequestID
	}
	return ""
}
