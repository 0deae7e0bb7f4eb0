package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
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
}

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
		client: &http.Client{Timeout: 30 * time.Second}}, nil
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
	if err := q.call(ctx, url.Values{"Action": {"SendMessage"}, "Version": {"2012-11-05"},
		"QueueUrl": {q.url}, "MessageBody": {string(body)}}); err != nil {
		return pipeline.Result{}, fmt.Errorf("enqueue %q: %w", t.Key, err)
	}
	return pipeline.Result{Status: pipeline.StatusEnqueued, Key: t.Key, ETag: t.ETag}, nil
}

// call posts one signed query-protocol request to the queue's URL.
func (q *eventQueue) call(ctx context.Context, params url.Values) error {
	form := []byte(params.Encode())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	creds, err := q.aws.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(form)
	if err := q.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sqs", q.aws.Region, time.Now()); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	resp, err := q.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("SQS answered %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}
