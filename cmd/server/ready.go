package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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
