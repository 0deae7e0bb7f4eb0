package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// The error paths of --enqueue's batches, against a stand-in for SQS that
// answers as AWS does (its XML namespace included) and fails on purpose:
// a failed call is made again, an entry SQS refused for its own reasons
// is sent again, one refused for the sender's is an error, and one that
// SQS's answer does not name counts as not sent. goaws, in
// TestReconcileEnqueue, answers only with success.
func TestEnqueueBatchFailures(t *testing.T) {
	var (
		mu    sync.Mutex
		calls int
		got   = map[string]int{} // bodies SQS took
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "SendMessageBatch" || r.Header.Get("Authorization") == "" {
			http.Error(w, "bad request", 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "<Error><Code>InternalError</Code></Error>", 500)
			return
		}
		var sent, failed strings.Builder
		for i := 1; ; i++ {
			id := r.Form.Get(fmt.Sprintf("SendMessageBatchRequestEntry.%d.Id", i))
			body := r.Form.Get(fmt.Sprintf("SendMessageBatchRequestEntry.%d.MessageBody", i))
			if id == "" {
				break
			}
			switch {
			case body == "transient" && got[body] == 0 && calls == 2:
				fmt.Fprintf(&failed, "<BatchResultErrorEntry><Id>%s</Id><Code>ServiceUnavailable</Code><Message>busy</Message><SenderFault>false</SenderFault></BatchResultErrorEntry>", id)
			case body == "refused":
				fmt.Fprintf(&failed, "<BatchResultErrorEntry><Id>%s</Id><Code>InvalidMessageContents</Code><Message>no</Message><SenderFault>true</SenderFault></BatchResultErrorEntry>", id)
			case body == "forgotten":
			default:
				got[body]++
				fmt.Fprintf(&sent, "<SendMessageBatchResultEntry><Id>%s</Id><MessageId>m</MessageId></SendMessageBatchResultEntry>", id)
			}
		}
		fmt.Fprintf(w, `<?xml version="1.0"?><SendMessageBatchResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/">`+
			`<SendMessageBatchResult>%s%s</SendMessageBatchResult></SendMessageBatchResponse>`, sent.String(), failed.String())
	}))
	t.Cleanup(srv.Close)
	q := &eventQueue{url: srv.URL + "/000000000000/events", aws: aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, signer: v4.NewSigner(),
		client: &http.Client{Timeout: 5 * time.Second}, linger: 10 * time.Millisecond, backoff: time.Millisecond}
	bodies := []string{"a", "b", "transient", "refused", "forgotten", "c"}
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := &queued{body: b, done: make(chan error, 1)}
			q.add(m)
			errs[i] = <-m.done
		}()
	}
	wg.Wait()
	for i, b := range bodies {
		want := b != "refused" && b != "forgotten"
		if (errs[i] == nil) != want {
			t.Errorf("%s: %v, want sent %v", b, errs[i], want)
		}
		if want && got[b] != 1 {
			t.Errorf("%s taken %d times", b, got[b])
		}
	}
	if calls < 3 {
		t.Errorf("%d calls: the failed one and the refused entry were not tried again", calls)
	}
}

// A call SQS refuses for a reason every other call would meet (the queue
// does not exist, the credentials may not send to it) is not made again,
// and the queue tells its stop so, once per refused call; a call refused
// for SQS's own reasons (its failures, throttling) is made again and
// stops nothing. The error names SQS's code, not its XML.
func TestEnqueueRefusedForGood(t *testing.T) {
	for _, tt := range []struct {
		status   int
		code     string
		forGood  bool
		minCalls int
	}{
		{403, "AccessDenied", true, 1},
		{400, "AWS.SimpleQueueService.NonExistentQueue", true, 1},
		{400, "InvalidClientTokenId", true, 1},
		{400, "KmsAccessDenied", true, 1},
		{500, "InternalError", false, flushTries},
		{400, "ThrottlingException", false, flushTries},
		{403, "RequestThrottled", false, flushTries},
	} {
		var (
			mu    sync.Mutex
			calls int
		)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			calls++
			mu.Unlock()
			w.WriteHeader(tt.status)
			fmt.Fprintf(w, "<ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\n  <Error>\n    <Type>Sender</Type>\n    <Code>%s</Code>\n    <Message>no</Message>\n  </Error>\n  <RequestId>r</RequestId>\n</ErrorResponse>", tt.code)
		}))
		var stops []error
		q := &eventQueue{url: srv.URL + "/000000000000/events", aws: aws.Config{Region: "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, signer: v4.NewSigner(),
			client: &http.Client{Timeout: 5 * time.Second}, linger: time.Millisecond, backoff: time.Millisecond,
			stop: func(err error) { mu.Lock(); stops = append(stops, err); mu.Unlock() }}
		m := &queued{body: "a", done: make(chan error, 1)}
		q.add(m)
		err := <-m.done
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tt.code) || strings.Contains(err.Error(), "<") {
			t.Errorf("%s: %v, want an error naming the code", tt.code, err)
		}
		if tt.forGood && (calls != 1 || len(stops) != 1) || !tt.forGood && (calls < tt.minCalls || len(stops) != 0) {
			t.Errorf("%d %s: %d calls, %d stops (%v); want it made again: %v", tt.status, tt.code, calls, len(stops), stops, !tt.forGood)
		}
	}
}

// A batch SQS keeps refusing for its own reasons is tried for seconds, not
// a fraction of one: each wait doubles up to maxBackoff and keeps at
// least half of it, whatever its random part.
func TestEnqueueBackoff(t *testing.T) {
	q := &eventQueue{backoff: 100 * time.Millisecond}
	for range 200 {
		var total time.Duration
		for try := range flushTries - 1 {
			full := min(q.backoff<<try, maxBackoff)
			w := q.wait(try)
			if w < full/2 || w > full {
				t.Fatalf("try %d: waits %v, want between %v and %v", try, w, full/2, full)
			}
			total += w
		}
		if total < 5*time.Second || total > time.Duration(flushTries)*maxBackoff {
			t.Fatalf("a refused batch is tried for %v in all", total)
		}
	}
}
