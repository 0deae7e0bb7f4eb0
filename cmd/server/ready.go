package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/webhook"
)

// readyEvent is the body of a ready signal: an original's variants and
// manifest are written.
type readyEvent struct {
	Type     string             `json:"type"`
	Time     time.Time          `json:"time"`
	Bucket   string             `json:"bucket,omitempty"`
	Key      string             `json:"key"`
	ETag     string             `json:"etag"`
	Manifest *pipeline.Manifest `json:"manifest"`
}

// readyType names the event, for receivers that take several kinds.
const readyType = "resizer.variants.ready"

// readyCallback sends ready signals to READY_CALLBACK_URL.
type readyCallback struct {
	cb     *webhook.Callback
	bucket string
}

// Ready posts the signal for m; the error is the callback's after its
// retries.
func (r readyCallback) Ready(ctx context.Context, m pipeline.Manifest) error {
	b, err := json.Marshal(readyEvent{Type: readyType, Time: time.Now().UTC(), Bucket: r.bucket, Key: m.Key, ETag: m.ETag, Manifest: &m})
	if err != nil {
		return fmt.Errorf("ready event: %w", err)
	}
	return r.cb.Post(ctx, b)
}

// readyAll tells every notifier, and reports each failure.
type readyAll []pipeline.Notifier

// Ready tells them all at once: ctx bounds the whole signal, and told in
// turn, a receiver that does not answer would take all of it with its
// tries, leaving the next target an ended context every time.
func (all readyAll) Ready(ctx context.Context, m pipeline.Manifest) error {
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, n := range all {
		wg.Go(func() { errs[i] = n.Ready(ctx, m) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// readyBus puts ready signals on an EventBridge bus (READY_EVENT_BUS),
// where rules route them to whatever wants them (a Lambda, a queue, an
// API destination); IAM signs them.
type readyBus struct {
	client *eventbridge.Client
	bus    string
	bucket string
}

// The event's fields for EventBridge's rules to match on.
const (
	readySource     = "resizer"
	readyDetailType = "Variants Ready"
)

// Ready puts one event for m. The error is the SDK's (after its own
// retries), or the bus's refusal of the entry.
func (r readyBus) Ready(ctx context.Context, m pipeline.Manifest) error {
	b, err := json.Marshal(readyEvent{Type: readyType, Time: time.Now().UTC(), Bucket: r.bucket, Key: m.Key, ETag: m.ETag, Manifest: &m})
	if err != nil {
		return fmt.Errorf("ready event: %w", err)
	}
	out, err := r.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		EventBusName: aws.String(r.bus), Source: aws.String(readySource), DetailType: aws.String(readyDetailType),
		Detail: aws.String(string(b)),
	}}})
	if err != nil {
		return fmt.Errorf("ready event to %s: %w", r.bus, err)
	}
	if out.FailedEntryCount > 0 && len(out.Entries) > 0 {
		e := out.Entries[0]
		return fmt.Errorf("ready event to %s refused: %s: %s", r.bus, aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
	}
	return nil
}

// withReadyBus adds the EventBridge bus of READY_EVENT_BUS to the
// pipeline's ready signals: it needs the AWS configuration, which settle
// does not load.
func withReadyBus(ctx context.Context, s settings, opts ...func(*eventbridge.Options)) (settings, error) {
	if s.ReadyEventBus == "" {
		return s, nil
	}
	awsCfg, err := loadAWS(ctx, s)
	if err != nil {
		return s, err
	}
	bus := readyBus{client: eventbridge.NewFromConfig(awsCfg, opts...), bus: s.ReadyEventBus, bucket: s.S3Bucket}
	if s.pipeline.Ready == nil {
		s.pipeline.Ready = bus
	} else {
		s.pipeline.Ready = readyAll{s.pipeline.Ready, bus}
	}
	return s, nil
}
