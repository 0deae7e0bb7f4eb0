package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/webhook"
)

// eventQueue sends originals to the SQS queue of the S3 event path
// (reconcile --enqueue), each as the event S3 itself would have sent, so
// that the forwarder and the whole fleet do them as they do uploads.
type eventQueue struct {
	client *sqs.Client
	url    string
	bucket string
	region string
}

// newEventQueue is the queue at EVENT_QUEUE_URL, reached with the stores'
// AWS configuration at the queue URL's own host (AWS's, or an
// SQS-compatible server's).
func newEventQueue(ctx context.Context, s settings) (*eventQueue, error) {
	u, err := url.Parse(s.EventQueueURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("EVENT_QUEUE_URL %q: not a queue URL", s.EventQueueURL)
	}
	awsCfg, err := loadAWS(ctx, s)
	if err != nil {
		return nil, err
	}
	endpoint := u.Scheme + "://" + u.Host
	client := sqs.NewFromConfig(awsCfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
	return &eventQueue{client: client, url: s.EventQueueURL, bucket: s.S3Bucket, region: awsCfg.Region}, nil
}

// send enqueues t's original as an ObjectCreated event. Its key is encoded
// as S3 encodes keys in events (spaces as "+").
func (q *eventQueue) send(ctx context.Context, t pipeline.Task) (pipeline.Result, error) {
	var rec webhook.Record
	rec.EventVersion, rec.EventSource, rec.AWSRegion = "2.1", "aws:s3", q.region
	rec.EventTime, rec.EventName = time.Now().UTC(), "ObjectCreated:Put"
	rec.S3.Bucket.Name = q.bucket
	rec.S3.Object = webhook.Object{Key: url.QueryEscape(t.Key), Size: t.Size, ETag: strings.Trim(t.ETag, `"`)}
	body, err := json.Marshal(webhook.Event{Records: []webhook.Record{rec}})
	if err != nil {
		return pipeline.Result{}, fmt.Errorf("event for %q: %w", t.Key, err)
	}
	if _, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q.url), MessageBody: aws.String(string(body))}); err != nil {
		return pipeline.Result{}, fmt.Errorf("enqueue %q: %w", t.Key, err)
	}
	return pipeline.Result{Status: pipeline.StatusEnqueued, Key: t.Key, ETag: t.ETag}, nil
}
