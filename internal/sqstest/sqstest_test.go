package sqstest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// The mapping against a real goaws, with an in-process function that
// succeeds, reports one message, answers nonsense once, and counts how
// many invocations run at once: what succeeded is deleted, what failed
// comes back after the visibility timeout, a message that never succeeds
// lands in the dead-letter queue after MaxReceiveCount receipts, and no
// more than MaxConcurrency invocations run at once.
func TestMapping(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	src, err := s.CreateQueue(ctx, "events", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := s.CreateQueue(ctx, "events-dlq", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for i := range 40 {
		bodies = append(bodies, fmt.Sprintf(`{"n":%d}`, i))
	}
	bodies = append(bodies, `poison`, `nonsense-once`)
	if err := s.Send(ctx, src, bodies...); err != nil {
		t.Fatal(err)
	}
	var running, most, nonsense atomic.Int32
	seen := map[string]int{}
	var seenMu = make(chan struct{}, 1)
	m := &Mapping{Server: s, Source: src, DeadLetter: dlq, BatchSize: 5, MaxConcurrency: 3, MaxReceiveCount: 3,
		Invoke: func(ctx context.Context, slot int, event []byte) ([]byte, bool, error) {
			n := running.Add(1)
			defer running.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(20 * time.Millisecond)
			var ev events.SQSEvent
			if err := json.Unmarshal(event, &ev); err != nil {
				return nil, true, err
			}
			resp := events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{}}
			for _, r := range ev.Records {
				if r.EventSource != "aws:sqs" || r.EventSourceARN != src.ARN {
					t.Errorf("record %+v", r)
				}
				seenMu <- struct{}{}
				seen[r.Body]++
				<-seenMu
				switch r.Body {
				case "poison":
					resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
				case "nonsense-once":
					if nonsense.Add(1) == 1 {
						return []byte(`{"batchItemFailures":[{"itemIdentifier":"no-such-id"}]}`), false, nil
					}
				}
			}
			b, _ := json.Marshal(resp)
			return b, false, nil
		}}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for {
		n, err := s.Count(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := s.Count(ctx, dlq); n == 0 && d == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("source holds %d; stats %+v", n, m.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if most.Load() > 3 || st.MaxInFlight > 3 {
		t.Errorf("%d invocations at once, limit 3", most.Load())
	}
	if seen["poison"] != 3 {
		t.Errorf("poison seen %d times, want MaxReceiveCount = 3", seen["poison"])
	}
	if seen["nonsense-once"] != 2 {
		t.Errorf("the batch with the nonsense answer: %d, want 2 (its batch failed whole once)", seen["nonsense-once"])
	}
	for i := range 40 {
		if n := seen[fmt.Sprintf(`{"n":%d}`, i)]; n < 1 {
			t.Errorf("message %d never delivered", i)
		}
	}
	// The poison is reported on each receipt but one that shared its batch
	// with the nonsense answer.
	if st.Redriven != 1 || st.Reported < 2 || st.Reported > 3 || st.FunctionErrors != 1 {
		t.Errorf("stats %+v", st)
	}
	got, err := s.Receive(t.Context(), dlq, 10, 0)
	if err != nil || len(got) != 1 || got[0].Body != "poison" {
		t.Fatalf("dead letters %+v %v", got, err)
	}
}

// SNS delivers to a subscribed queue in its JSON envelope.
func TestSNSEnvelope(t *testing.T) {
	s := Start(t)
	ctx := t.Context()
	q, err := s.CreateQueue(ctx, "parked", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := s.CreateTopic(ctx, "uploads")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(ctx, topic, q); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ctx, topic, "Amazon S3 Notification", `{"Records":[]}`); err != nil {
		t.Fatal(err)
	}
	got, err := s.Receive(ctx, q, 10, time.Second)
	if err != nil || len(got) != 1 {
		t.Fatalf("%+v %v", got, err)
	}
	var env struct{ Type, Message, TopicArn string }
	if err := json.Unmarshal([]byte(got[0].Body), &env); err != nil || env.Type != "Notification" ||
		env.Message != `{"Records":[]}` || !strings.HasSuffix(env.TopicArn, ":uploads") {
		t.Fatalf("envelope %s (%v)", got[0].Body, err)
	}
}
