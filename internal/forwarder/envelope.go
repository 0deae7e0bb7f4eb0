package forwarder

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"
)

// maxDepth bounds how many wrappers records opens (an SNS notification in
// a destination record is two): deeper is no event of S3's.
const maxDepth = 4

// envelope is enough of any body to tell what it is.
type envelope struct {
	Records []struct {
		EventSource string `json:"eventSource"` // aws:s3, minio:s3, aws:sqs; SNS writes EventSource
		Sns         struct {
			Message string `json:"Message"`
		} `json:"Sns"`
	} `json:"Records"`
	Event      string `json:"Event"`       // "s3:TestEvent"
	DetailType string `json:"detail-type"` // EventBridge
	Source     string `json:"source"`
	// An SNS notification, as SNS delivers it to a queue.
	Type    string  `json:"Type"`
	Message *string `json:"Message"`
	// A Lambda destination record: the event of an invocation that failed.
	RequestContext json.RawMessage `json:"requestContext"`
	RequestPayload json.RawMessage `json:"requestPayload"`
}

// source is the event source of every record, or "" when they differ or
// there are none.
func (e envelope) source() string {
	if len(e.Records) == 0 {
		return ""
	}
	src := e.Records[0].EventSource
	for _, r := range e.Records[1:] {
		if r.EventSource != src {
			return ""
		}
	}
	return src
}

// records returns the S3 records a body carries, however it came: an S3
// event notification; that notification in an SNS notification (as SNS
// delivers to a queue, or as it invokes a function); a Lambda destination
// record of a failed invocation (what a redriven dead-letter queue of the
// asynchronous path holds); or an EventBridge event of S3's. S3's test
// event and EventBridge events of other kinds carry none. Anything else is
// an error, so that the message fails and, if it keeps failing, reaches
// the dead-letter queue where someone sees it, rather than being
// acknowledged and lost.
func records(log zerolog.Logger, body []byte, depth int) ([]json.RawMessage, error) {
	if depth > maxDepth {
		return nil, errors.New("event wrapped too deep")
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("event: %v", err)
	}
	switch src := env.source(); {
	case env.Event == "s3:TestEvent":
		log.Info().Msg("S3 test event dropped")
		return nil, nil
	case env.Source == "aws.s3" && env.DetailType != "":
		rec, ok, err := fromEventBridge(body)
		if err != nil {
			return nil, err
		}
		if !ok {
			log.Info().Str("detail_type", env.DetailType).Msg("EventBridge event ignored")
			return nil, nil
		}
		raw, err := json.Marshal(rec)
		return []json.RawMessage{raw}, err
	case env.Type == "Notification" && env.Message != nil:
		return records(log, []byte(*env.Message), depth+1)
	case len(env.RequestContext) > 0 && len(env.RequestPayload) > 0:
		return records(log, env.RequestPayload, depth+1)
	case src == "aws:s3" || src == "minio:s3":
		var ev struct {
			Records []json.RawMessage `json:"Records"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			return nil, fmt.Errorf("s3 event: %v", err)
		}
		return ev.Records, nil
	case src == "aws:sns":
		var out []json.RawMessage
		for _, r := range env.Records {
			recs, err := records(log, []byte(r.Sns.Message), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, recs...)
		}
		return out, nil
	case len(env.Records) > 0:
		return nil, fmt.Errorf("records from %q, not S3", env.Records[0].EventSource)
	}
	return nil, fmt.Errorf("not an S3 event, nor a wrapper of one (fields: %s)", fields(body))
}

// fields names the top-level fields of a JSON object, for the log of a
// body the forwarder cannot read: their names only, never their values.
func fields(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return "not an object"
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) > 10 {
		names = append(names[:10], "...")
	}
	return strings.Join(names, ", ")
}
