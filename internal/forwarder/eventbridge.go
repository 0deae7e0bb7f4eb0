package forwarder

import (
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/resizer/resizer/internal/webhook"
)

// ebDetail is the detail of S3's EventBridge events.
type ebDetail struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object struct {
		Key       string `json:"key"`
		Size      int64  `json:"size"`
		ETag      string `json:"etag"`
		VersionID string `json:"version-id"`
		Sequencer string `json:"sequencer"`
	} `json:"object"`
	Reason string `json:"reason"`
}

// fromEventBridge turns S3's "Object Created" and "Object Deleted"
// EventBridge events into the record of an S3 event notification; ok is
// false for other detail types. EventBridge gives the key as it is, where
// notifications encode it (+ for a space), so it is encoded here for the
// service to decode as it decodes every key.
func fromEventBridge(body []byte) (rec webhook.Record, ok bool, err error) {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return rec, false, fmt.Errorf("eventbridge event: %w", err)
	}
	var name string
	switch ev.DetailType {
	case "Object Created":
		name = "ObjectCreated:"
	case "Object Deleted":
		name = "ObjectRemoved:"
	default:
		return rec, false, nil
	}
	var d ebDetail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return rec, false, fmt.Errorf("eventbridge detail: %w", err)
	}
	if d.Bucket.Name == "" || d.Object.Key == "" {
		return rec, false, fmt.Errorf("eventbridge detail without bucket or key")
	}
	rec.EventVersion = "2.1"
	rec.EventSource = "aws:s3"
	rec.AWSRegion = ev.Region
	rec.EventTime = ev.Time
	if rec.EventTime.IsZero() {
		rec.EventTime = time.Now().UTC()
	}
	rec.EventName = name + d.Reason
	rec.S3.Bucket.Name = d.Bucket.Name
	rec.S3.Object = webhook.Object{Key: url.QueryEscape(d.Object.Key), Size: d.Object.Size, ETag: d.Object.ETag,
		VersionID: d.Object.VersionID, Sequencer: d.Object.Sequencer}
	return rec, true, nil
}
