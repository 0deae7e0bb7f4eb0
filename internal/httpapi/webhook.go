package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/api"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/webhook"
)

var errNotConfigured = errors.New("webhook not configured: WEBHOOK_SECRETS is empty")

// runner is what the webhook needs of the pipeline.
type runner interface {
	Run(ctx context.Context, key, etag string) (pipeline.Result, error)
	Remove(ctx context.Context, key string) (pipeline.Result, error)
}

// webhookDeps are the parts of POST /webhooks/s3.
type webhookDeps struct {
	secrets    [][]byte // for signatures
	tokens     keyring  // the same secrets, for bearer tokens
	pipeline   runner
	bucket     string // the input bucket; empty with local storage
	maxBytes   int64
	maxRecords int
	metrics    *webhookMetrics
}

// statusIgnored is a record that neither creates nor removes an object.
const statusIgnored pipeline.Status = "ignored"

// handleWebhook serves POST /webhooks/s3. It answers only once every
// record is done: 200 with each record's outcome, where a record that can
// never be processed (not an image, too large, a bad or conflicting key)
// is "rejected" and not an error, so that neither it nor the records after
// it are held up, and the sender does not retry it forever; a passing
// failure (storage down, busy, timed out) makes the whole request 503 or
// 500 so that the sender retries, and redoing the records already done is
// harmless.
func handleWebhook(d webhookDeps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(d.secrets) == 0 {
			writeError(w, r, errNotConfigured)
			return
		}
		// What the headers alone can refuse is refused before the body
		// is read: this is the one route that reads a body before any
		// key, and a stranger's body would otherwise cost up to
		// WEBHOOK_MAX_BYTES, for up to READ_TIMEOUT when sent slowly.
		// The connection is closed after the answer: net/http would
		// otherwise read a body of up to 256 KiB before answering, to
		// keep the connection open.
		if err := d.precheck(r); err != nil {
			w.Header().Set("Connection", "close")
			writeError(w, r, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, d.maxBytes))
		if err != nil {
			// A cut or slow body is the sender's (400, 408), as on every
			// route: a 500 would page someone for a sender's dropped
			// connection.
			writeError(w, r, fmt.Errorf("read event: %w", readError(err, nil)))
			return
		}
		if err := d.authorize(r, body); err != nil {
			writeError(w, r, err)
			return
		}
		ev, err := webhook.Parse(body)
		if err != nil {
			writeError(w, r, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
		if len(ev.Records) > d.maxRecords {
			writeError(w, r, fmt.Errorf("%w: %d records, over the limit of %d", errTooLarge, len(ev.Records), d.maxRecords))
			return
		}
		// A record that names nothing fails the whole event before any
		// record is done: a 400, which the forwarder leaves to the
		// dead-letter queue, not a 200 that acknowledges it.
		for i, rec := range ev.Records {
			if err := rec.Check(); err != nil {
				writeError(w, r, fmt.Errorf("%w: record %d: %v", errBadRequest, i+1, err))
				return
			}
		}
		out := api.WebhookResult{Records: []api.WebhookRecord{}}
		for _, rec := range ev.Records {
			res, err := d.record(r.Context(), rec)
			if err != nil {
				writeError(w, r, fmt.Errorf("%s %s: %w", rec.Name(), rec.Key(), err))
				return
			}
			if res.Status == api.WebhookRecordStatus(pipeline.StatusRejected) && res.Reason != nil {
				zerolog.Ctx(r.Context()).Warn().Str("key", res.Key).Str("reason", *res.Reason).Msg("source rejected")
			}
			out.Records = append(out.Records, res)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// precheck refuses, from the headers alone, a request that authorize
// would: neither a Resizer-Signature nor a bearer token, a signature that
// is malformed or out of date, or a token that is none of the secrets.
// Only a fresh signature is left for authorize to check against the body.
func (d webhookDeps) precheck(r *http.Request) error {
	if sig := r.Header.Get(webhook.Header); sig != "" {
		if err := webhook.Precheck(sig, time.Now()); err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		return nil
	}
	token, ok := bearerToken(r)
	if !ok {
		return fmt.Errorf("%w: neither %s nor a bearer token", errUnauthorized, webhook.Header)
	}
	if !d.tokens.matches(token) {
		return fmt.Errorf("%w: wrong token", errUnauthorized)
	}
	return nil
}

// authorize accepts a Resizer-Signature (the forwarder) of body, or a
// bearer token equal to one of the secrets (MinIO's webhook target sends
// its auth_token that way). Anything else is errUnauthorized.
func (d webhookDeps) authorize(r *http.Request, body []byte) error {
	if sig := r.Header.Get(webhook.Header); sig != "" {
		if err := webhook.Verify(sig, body, d.secrets, time.Now()); err != nil {
			return fmt.Errorf("%w: %v", errUnauthorized, err)
		}
		return nil
	}
	return d.precheck(r)
}

// record handles one record. Only a failure that may pass is an error; one
// that would recur on every retry is the record's rejection.
func (d webhookDeps) record(ctx context.Context, rec webhook.Record) (api.WebhookRecord, error) {
	out := api.WebhookRecord{Event: rec.Name(), Bucket: rec.S3.Bucket.Name, Key: rec.Key()}
	kind := rec.Kind()
	var res pipeline.Result
	var err error
	switch {
	case kind == webhook.Other:
		res.Status = statusIgnored
	case strings.HasSuffix(out.Key, "/"):
		// A folder marker (the S3 console's "Create folder": an empty
		// object whose key ends in "/") is no original, and no store key
		// of ours ends so: neither a rejection to log and count each time
		// someone makes a folder, nor variants to delete.
		res.Status = statusIgnored
	case d.bucket != "" && rec.S3.Bucket.Name != d.bucket:
		res.Status = pipeline.StatusLoopGuard // the output bucket, or one not ours
	case kind == webhook.Created:
		res, err = d.pipeline.Run(ctx, out.Key, rec.ETag())
	default:
		res, err = d.pipeline.Remove(ctx, out.Key)
	}
	if err != nil && permanent(err) {
		res, err = pipeline.Result{Status: pipeline.StatusRejected, Key: out.Key, Reason: err.Error()}, nil
	}
	if err != nil {
		d.metrics.record(kind, "error")
		return out, err
	}
	d.metrics.record(kind, res.Status)
	if res.Status == pipeline.StatusProcessed && !rec.EventTime.IsZero() {
		d.metrics.lag.Observe(time.Since(rec.EventTime).Seconds())
	}
	out.Status = api.WebhookRecordStatus(res.Status)
	if res.Reason != "" {
		out.Reason = &res.Reason
	}
	if len(res.Outputs) > 0 {
		outs := make([]api.WebhookOutput, len(res.Outputs))
		for i, o := range res.Outputs {
			outs[i] = api.WebhookOutput{Variant: o.Variant, Key: o.Key, Width: o.Width, Height: o.Height, Bytes: o.Bytes}
		}
		out.Outputs = &outs
	}
	return out, nil
}

// permanent reports whether a record's failure would recur however often
// it is retried: the pipeline's permanent failures (a bad key, not an
// image, too large), and a key that conflicts with another in local
// storage until someone removes one of them.
func permanent(err error) bool {
	return pipeline.IsPermanent(err) || errors.Is(err, storage.ErrConflict)
}

// webhookMetrics count records by kind and outcome, and the time from an
// event to its outputs.
type webhookMetrics struct {
	records *prometheus.CounterVec
	lag     prometheus.Histogram
}

func newWebhookMetrics(reg prometheus.Registerer) (*webhookMetrics, error) {
	m := &webhookMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resizer_webhook_records_total",
			Help: "S3 event records by event (created, removed, other) and outcome.",
		}, []string{"event", "outcome"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "resizer_webhook_lag_seconds",
			Help:    "Time from an S3 event to its variants written.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}),
	}
	for _, c := range []prometheus.Collector{m.records, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var kindNames = map[webhook.Kind]string{webhook.Created: "created", webhook.Removed: "removed", webhook.Other: "other"}

func (m *webhookMetrics) record(k webhook.Kind, outcome pipeline.Status) {
	m.records.WithLabelValues(kindNames[k], string(outcome)).Inc()
}
