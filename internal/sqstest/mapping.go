package sqstest

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Mapping plays Lambda's event source mapping from an SQS queue to a
// function, as AWS documents it, since neither goaws nor the Lambda
// emulator has one: it receives up to BatchSize messages at a time, runs
// at most MaxConcurrency invocations at once, deletes the messages of a
// batch that succeeded, leaves those the function reported in
// batchItemFailures (all of them when the invocation failed, or its
// answer cannot be read) to come back when their visibility timeout ends,
// and moves a message received more than MaxReceiveCount times to the
// dead-letter queue, as the source queue's redrive policy does. (goaws has
// a redrive policy of its own, but counts one receive too many, and
// reports every message's ApproximateReceiveCount as 1: the mapping
// counts receives itself.)
type Mapping struct {
	Server          *Server
	Source          Queue
	DeadLetter      Queue
	BatchSize       int
	MaxConcurrency  int
	MaxReceiveCount int
	// Invoke runs the function on one slot (0 to MaxConcurrency-1) with an
	// SQS event, and returns its answer; failed is a function error.
	Invoke func(ctx context.Context, slot int, event []byte) (answer []byte, failed bool, err error)

	mu       sync.Mutex
	receives map[string]int
	stats    Stats
}

// Stats is what a mapping did.
type Stats struct {
	Invocations    int // invocations of the function
	FunctionErrors int // invocations that failed, or that could not be made
	Received       int // messages received, redeliveries included
	Redelivered    int // receipts of a message received before
	Deleted        int // messages deleted after success
	Reported       int // messages the function reported in batchItemFailures
	Redriven       int // messages moved to the dead-letter queue
	MaxInFlight    int // most invocations at once
}

// Stats returns the counts so far.
func (m *Mapping) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stats
}

// Run polls until ctx ends, then waits for its invocations to finish.
// It returns the first error of the queue server.
func (m *Mapping) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.receives == nil {
		m.receives = map[string]int{}
	}
	m.mu.Unlock()
	slots := make(chan int, m.MaxConcurrency)
	for i := range m.MaxConcurrency {
		slots <- i
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	inFlight := 0
	for {
		var slot int
		select {
		case <-ctx.Done():
			return nil
		case slot = <-slots:
		}
		msgs, err := m.Server.Receive(ctx, m.Source, m.BatchSize, time.Second)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		// What was received is seen through, though ctx ends meanwhile.
		batch, err := m.redrive(context.WithoutCancel(ctx), msgs)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			slots <- slot
			continue
		}
		m.mu.Lock()
		inFlight++
		m.stats.MaxInFlight = max(m.stats.MaxInFlight, inFlight)
		m.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.invoke(context.WithoutCancel(ctx), slot, batch)
			m.mu.Lock()
			inFlight--
			m.mu.Unlock()
			slots <- slot
		}()
	}
}

// received is a message with its receive count.
type received struct {
	Message
	count int
}

// redrive counts the receipts and moves the messages received more than
// MaxReceiveCount times to the dead-letter queue; it returns the rest.
func (m *Mapping) redrive(ctx context.Context, msgs []Message) ([]received, error) {
	var keep []received
	for _, msg := range msgs {
		m.mu.Lock()
		m.receives[msg.ID]++
		n := m.receives[msg.ID]
		m.stats.Received++
		if n > 1 {
			m.stats.Redelivered++
		}
		m.mu.Unlock()
		if m.MaxReceiveCount > 0 && n > m.MaxReceiveCount {
			if err := m.Server.Send(ctx, m.DeadLetter, msg.Body); err != nil {
				return nil, err
			}
			if err := m.Server.Delete(ctx, m.Source, msg.ReceiptHandle); err != nil {
				return nil, err
			}
			m.mu.Lock()
			m.stats.Redriven++
			m.mu.Unlock()
			continue
		}
		keep = append(keep, received{msg, n})
	}
	return keep, nil
}

// invoke runs the function on a batch and deletes what succeeded.
func (m *Mapping) invoke(ctx context.Context, slot int, batch []received) {
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(batch))}
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for i, msg := range batch {
		sum := md5.Sum([]byte(msg.Body))
		ev.Records[i] = events.SQSMessage{MessageId: msg.ID, ReceiptHandle: msg.ReceiptHandle, Body: msg.Body,
			Md5OfBody: hex.EncodeToString(sum[:]), EventSource: "aws:sqs", EventSourceARN: m.Source.ARN, AWSRegion: "us-east-1",
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(msg.count), "SentTimestamp": now,
				"SenderId": Account, "ApproximateFirstReceiveTimestamp": now},
			MessageAttributes: map[string]events.SQSMessageAttribute{}}
	}
	payload, _ := json.Marshal(ev)
	answer, failed, err := m.Invoke(ctx, slot, payload)
	m.mu.Lock()
	m.stats.Invocations++
	if failed || err != nil {
		m.stats.FunctionErrors++
	}
	m.mu.Unlock()
	if failed || err != nil {
		return // every message comes back after its visibility timeout
	}
	keep, err := succeeded(answer, batch)
	if err != nil {
		m.mu.Lock()
		m.stats.FunctionErrors++
		m.mu.Unlock()
		return
	}
	for _, msg := range batch {
		if keep[msg.ID] {
			continue
		}
		if m.Server.Delete(ctx, m.Source, msg.ReceiptHandle) == nil {
			m.mu.Lock()
			m.stats.Deleted++
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	m.stats.Reported += len(keep)
	m.mu.Unlock()
}

// succeeded reads a function's answer to a batch the way Lambda does with
// ReportBatchItemFailures: an empty or null answer, or an empty or null
// batchItemFailures, is a complete success; the listed messages failed;
// an answer that is not JSON, or an item identifier that is empty, null or
// not in the batch, fails the whole batch (the error).
func succeeded(answer []byte, batch []received) (failed map[string]bool, err error) {
	failed = map[string]bool{}
	if len(answer) == 0 || string(answer) == "null" {
		return failed, nil
	}
	var resp struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, msg := range batch {
		ids[msg.ID] = true
	}
	for _, f := range resp.BatchItemFailures {
		if f.ItemIdentifier == nil || !ids[*f.ItemIdentifier] {
			return nil, errors.New("batchItemFailures names no message of the batch")
		}
		failed[*f.ItemIdentifier] = true
	}
	return failed, nil
}
