package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/webhook"
)

// eventQueue sends originals to the SQS queue of the S3 event path
// (reconcile --enqueue), each as the event S3 itself would have sent, so
// that the forwarder and the whole fleet do them as they do uploads.
//
// It speaks SQS's query protocol, signed by the SDK's SigV4 signer with
// the SDK's credentials: AWS accepts it as it accepts the JSON protocol
// of the SDK's own SQS client, and the SQS-compatible server of the tests
// (goaws) speaks only this one.
type eventQueue struct {
	url    string
	bucket string
	aws    aws.Config
	signer *v4.Signer
	client *http.Client
	// Sends are gathered into SendMessageBatch calls of up to ten
	// messages (SQS's most): a tenth of the calls, and of their time, for
	// a bucket of millions.
	mu      sync.Mutex
	pending []*queued
	linger  time.Duration // how long a batch waits for more before it goes
	// backoff is the first wait before a batch's call is made again; it
	// doubles with each try up to maxBackoff.
	backoff time.Duration
	// stop, when set, is told of the first refusal that every call of
	// the run would meet (see refusesAll), so that the run stops rather
	// than fail each of the bucket's originals in turn.
	stop func(error)
}

// queued is one message waiting for its batch's call.
type queued struct {
	body string
	done chan error
}

// batchSize is the most messages SQS takes in one SendMessageBatch.
const batchSize = 10

// newEventQueue is the queue at EVENT_QUEUE_URL, with the stores' AWS
// configuration.
func newEventQueue(ctx context.Context, s settings) (*eventQueue, error) {
	if u, err := url.Parse(s.EventQueueURL); err != nil || u.Host == "" {
		return nil, fmt.Errorf("EVENT_QUEUE_URL %q: not a queue URL", s.EventQueueURL)
	}
	awsCfg, err := loadAWS(ctx, s)
	if err != nil {
		return nil, err
	}
	if awsCfg.Region == "" || awsCfg.Credentials == nil {
		return nil, fmt.Errorf("EVENT_QUEUE_URL: no AWS region or credentials to sign with")
	}
	return &eventQueue{url: s.EventQueueURL, bucket: s.S3Bucket, aws: awsCfg, signer: v4.NewSigner(),
		client: &http.Client{Timeout: 30 * time.Second}, linger: 20 * time.Millisecond,
		backoff: 100 * time.Millisecond}, nil
}

// send enqueues t's original as an ObjectCreated event. Its key is encoded
// as S3 encodes keys in events (spaces as "+").
func (q *eventQueue) send(ctx context.Context, t pipeline.Task) (pipeline.Result, error) {
	var rec webhook.Record
	rec.EventVersion, rec.EventSource, rec.AWSRegion = "2.1", "aws:s3", q.aws.Region
	rec.EventTime, rec.EventName = time.Now().UTC(), "ObjectCreated:Put"
	rec.S3.Bucket.Name = q.bucket
	rec.S3.Object = webhook.Object{Key: url.QueryEscape(t.Key), Size: t.Size, ETag: strings.Trim(t.ETag, `"`)}
	body, err := json.Marshal(webhook.Event{Records: []webhook.Record{rec}})
	if err != nil {
		return pipeline.Result{}, fmt.Errorf("event for %q: %w", t.Key, err)
	}
	m := &queued{body: string(body), done: make(chan error, 1)}
	q.add(m)
	if err := <-m.done; err != nil {
		return pipeline.Result{}, fmt.Errorf("enqueue %q: %w", t.Key, err)
	}
	return pipeline.Result{Status: pipeline.StatusEnqueued, Key: t.Key, ETag: t.ETag}, nil
}

// add puts m in the batch being gathered: the batch goes when it is full,
// or linger after its first message, whichever is first. Its call is
// made whatever becomes of the context of the send that started it: a
// stopped reconcile finishes the originals in hand, sends included.
func (q *eventQueue) add(m *queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending = append(q.pending, m)
	switch len(q.pending) {
	case batchSize:
		batch := q.pending
		q.pending = nil
		go q.flush(batch)
	case 1:
		time.AfterFunc(q.linger, func() {
			q.mu.Lock()
			// Still the batch this timer was started for, unless it went
			// full meanwhile (then these are another's, with their own
			// timer, which finds them in turn).
			if len(q.pending) == 0 || q.pending[0] != m {
				q.mu.Unlock()
				return
			}
			batch := q.pending
			q.pending = nil
			q.mu.Unlock()
			q.flush(batch)
		})
	}
}

// flushTries bounds the SendMessageBatch calls one batch gets: a call
// that fails (a network error, SQS's 5xx or throttling) is made again, and
// so are the entries SQS refused for its own reasons (not the sender's),
// after a wait that doubles from the queue's backoff up to maxBackoff,
// less a random part of up to a half so that the batches refused together
// do not come back together. With the default backoff a batch keeps
// trying for about 11 s: long enough to ride out a burst of throttling
// (SQS's or its KMS key's), short enough that a queue down for good is
// reported while the run is watched.
const (
	flushTries = 8
	maxBackoff = 5 * time.Second
)

// wait is how long a batch waits before its call is made again after
// try failed tries.
func (q *eventQueue) wait(try int) time.Duration {
	d := q.backoff << try
	if d > maxBackoff {
		d = maxBackoff
	}
	return d - rand.N(d/2+1)
}

// flush sends batch in SendMessageBatch calls, and tells each message its
// own outcome: SQS may refuse some entries of a batch it takes. An entry
// counts as sent only when SQS's answer lists it as sent. Sending one
// again after a failed call may enqueue it twice, which costs the fleet
// one look (the pipeline finds the original up to date), not a second
// making of its variants.
func (q *eventQueue) flush(batch []*queued) {
	ctx, cancel := context.WithTimeout(context.Background(), flushTries*(q.client.Timeout+maxBackoff))
	defer cancel()
	left := batch
	for try := 0; len(left) > 0; try++ {
		var retry []*queued
		outcomes, err := q.sendBatch(ctx, left)
		var qe *queueError
		final := errors.As(err, &qe) && qe.refusesAll()
		if final && q.stop != nil {
			q.stop(err)
		}
		for i, m := range left {
			switch o := outcomes[i]; {
			case err == nil && o.sent:
				m.done <- nil
			case try+1 < flushTries && !final && (err != nil || o.retry):
				retry = append(retry, m)
			case err != nil:
				m.done <- err
			default:
				m.done <- o.err
			}
		}
		if len(retry) > 0 {
			select {
			case <-time.After(q.wait(try)):
			case <-ctx.Done():
				for _, m := range retry {
					m.done <- context.Cause(ctx)
				}
				return
			}
		}
		left = retry
	}
}

// sent is what SQS's answer says of one entry of a batch.
type sent struct {
	sent  bool
	retry bool // refused for SQS's own reasons: worth sending again
	err   error
}

// sendBatch makes one SendMessageBatch call of batch, and reads what
// SQS's answer says of each entry (an entry it does not name was not
// sent).
func (q *eventQueue) sendBatch(ctx context.Context, batch []*queued) ([]sent, error) {
	params := url.Values{"Action": {"SendMessageBatch"}, "Version": {"2012-11-05"}, "QueueUrl": {q.url}}
	for i, m := range batch {
		prefix := fmt.Sprintf("SendMessageBatchRequestEntry.%d.", i+1)
		params.Set(prefix+"Id", strconv.Itoa(i))
		params.Set(prefix+"MessageBody", m.body)
	}
	out := make([]sent, len(batch))
	b, err := q.call(ctx, params)
	if err != nil {
		return out, err
	}
	var res struct {
		Sent []struct {
			ID string `xml:"Id"`
		} `xml:"SendMessageBatchResult>SendMessageBatchResultEntry"`
		Failed []struct {
			ID          string `xml:"Id"`
			Code        string `xml:"Code"`
			Message     string `xml:"Message"`
			SenderFault bool   `xml:"SenderFault"`
		} `xml:"SendMessageBatchResult>BatchResultErrorEntry"`
	}
	if err := xml.Unmarshal(b, &res); err != nil {
		return out, fmt.Errorf("SQS's answer: %w", err)
	}
	for i := range out {
		out[i].err = errors.New("not in SQS's answer")
	}
	for _, e := range res.Sent {
		if i, err := strconv.Atoi(e.ID); err == nil && i >= 0 && i < len(out) {
			out[i] = sent{sent: true}
		}
	}
	for _, f := range res.Failed {
		if i, err := strconv.Atoi(f.ID); err == nil && i >= 0 && i < len(out) {
			out[i] = sent{retry: !f.SenderFault, err: fmt.Errorf("SQS refused it: %s: %s", f.Code, f.Message)}
		}
	}
	return out, nil
}

// call posts one signed query-protocol request to the queue's URL, and
// returns the body of its answer.
func (q *eventQueue) call(ctx context.Context, params url.Values) ([]byte, error) {
	form := []byte(params.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(form))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	creds, err := q.aws.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(form)
	if err := q.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sqs", q.aws.Region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, newQueueError(resp.StatusCode, b)
	}
	return b, nil
}

// queueError is SQS's refusal of a whole call: its HTTP status, and the
// code and message of its ErrorResponse when it has one.
type queueError struct {
	status        int
	code, message string
}

func newQueueError(status int, body []byte) *queueError {
	var res struct {
		Code    string `xml:"Error>Code"`
		Message string `xml:"Error>Message"`
	}
	e := &queueError{status: status}
	if xml.Unmarshal(body, &res) == nil && res.Code != "" {
		e.code, e.message = strings.TrimSpace(res.Code), strings.TrimSpace(res.Message)
	} else {
		e.message = strings.Join(strings.Fields(string(body)), " ")
	}
	return e
}

func (e *queueError) Error() string {
	if e.code == "" {
		return fmt.Sprintf("SQS answered %d: %s", e.status, e.message)
	}
	return fmt.Sprintf("SQS answered %d: %s: %s", e.status, e.code, e.message)
}

// everyCallRefused are the codes of SQS's refusals that no retry and no
// other message changes: the queue does not exist (a mistyped
// EVENT_QUEUE_URL), the credentials are not valid or may not send to it,
// or its KMS key cannot be used. Throttling and SQS's own failures pass.
var everyCallRefused = map[string]bool{
	"AWS.SimpleQueueService.NonExistentQueue": true, "QueueDoesNotExist": true,
	"AccessDenied": true, "AccessDeniedException": true, "InvalidClientTokenId": true,
	"SignatureDoesNotMatch": true, "MissingAuthenticationToken": true, "UnrecognizedClientException": true,
	"ExpiredToken": true, "InvalidAddress": true,
	"KmsAccessDenied": true, "KmsDisabled": true, "KmsNotFound": true, "KmsInvalidState": true,
	"KmsInvalidKeyUsage": true, "KmsOptInRequired": true,
}

// refusesAll reports whether every call of the run would be refused as
// this one was.
func (e *queueError) refusesAll() bool { return everyCallRefused[e.code] }
