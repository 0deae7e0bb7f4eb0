// Package webhook defines how S3 events reach the service: the event
// notification types in AWS's shape (which MinIO also sends), their parsing
// and key decoding, and the Resizer-Signature scheme with which the Lambda
// forwarder signs what it posts and the server verifies it. Both sides use
// this one definition.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Event is an S3 event notification. Fields the service does not use are
// left out; unknown fields are ignored.
type Event struct {
	Records []Record `json:"Records"`
}

// Record is one change to one object.
type Record struct {
	EventVersion string    `json:"eventVersion"`
	EventSource  string    `json:"eventSource"` // aws:s3, or minio:s3
	AWSRegion    string    `json:"awsRegion"`
	EventTime    time.Time `json:"eventTime"`
	// EventName is ObjectCreated:Put from AWS, s3:ObjectCreated:Put from
	// MinIO; Name returns it without the "s3:".
	EventName string `json:"eventName"`
	S3        Entity `json:"s3"`
}

// Entity is the record's bucket and object.
type Entity struct {
	Bucket struct {
		Name string `json:"name"`
	} `json:"bucket"`
	Object Object `json:"object"`
}

// Object is the record's object. Key is as sent: URL-encoded.
type Object struct {
	Key       string `json:"key"`
	Size      int64  `json:"size,omitempty"`
	ETag      string `json:"eTag,omitempty"`
	VersionID string `json:"versionId,omitempty"`
	Sequencer string `json:"sequencer,omitempty"`
}

// Kind is what a record does to its object.
type Kind int

// The kinds of record.
const (
	Other Kind = iota
	Created
	Removed
)

// Name is the event name without MinIO's "s3:" prefix.
func (r Record) Name() string { return strings.TrimPrefix(r.EventName, "s3:") }

// Kind says whether the record created or removed its object. S3 reports
// what a lifecycle rule deletes (LifecycleExpiration:Delete and
// :DeleteMarkerCreated) apart from ObjectRemoved, never as one: a bucket
// that expires its originals, and is notified of it, removes their
// variants with them. Every other event (restores, replication, tags,
// transitions) changes no object's content.
func (r Record) Kind() Kind {
	switch name := r.Name(); {
	case strings.HasPrefix(name, "ObjectCreated:"):
		return Created
	case strings.HasPrefix(name, "ObjectRemoved:"), strings.HasPrefix(name, "LifecycleExpiration:"):
		return Removed
	}
	return Other
}

// Key returns the object's key, decoded (see decodeKey).
func (r Record) Key() string { return decodeKey(r.S3.Object.Key) }

// ETag returns the object's ETag quoted, as S3's headers give it; events
// carry it bare.
func (r Record) ETag() string {
	e := strings.Trim(r.S3.Object.ETag, `"`)
	if e == "" {
		return ""
	}
	return `"` + e + `"`
}

// Check refuses a record that names no key or no event: no change S3
// reports, and nothing to do or to skip. (S3 and MinIO name the bucket
// too; an event posted by hand to a service on its local directory may
// not.)
func (r Record) Check() error {
	if r.S3.Object.Key == "" || r.EventName == "" {
		return errors.New("a record without key or event name")
	}
	return nil
}

// Parse reads an event notification. S3's test event (sent when a
// notification is configured) parses as an event without records.
func Parse(body []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return Event{}, fmt.Errorf("s3 event: %w", err)
	}
	return e, nil
}

// decodeKey decodes a key as S3 sends it in events, the way Python's
// unquote_plus does: "+" is a space, %XX a byte (so a literal "+" arrives
// as %2B, non-ASCII as its UTF-8 bytes, and MinIO's %2F as "/"), and a "%"
// not followed by two hex digits stays as it is.
func decodeKey(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
