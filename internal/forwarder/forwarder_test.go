package forwarder

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/webhook"
)

const secret = "forwarder-test-secret"

// receiver is a stand-in service that checks signatures with the server's
// own verifier and answers as told.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	answers  []int // statuses to answer in turn; then 200
	retryHdr string
	badSigs  int
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{answers: answers}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.Verify(req.Header.Get(webhook.Header), body, [][]byte{[]byte(secret)}, time.Now()); err != nil {
			r.badSigs++
			w.WriteHeader(401)
			return
		}
		r.bodies = append(r.bodies, body)
		code := 200
		if len(r.answers) > 0 {
			code, r.answers = r.answers[0], r.answers[1:]
		}
		if code == 503 && r.retryHdr != "" {
			w.Header().Set("Retry-After", r.retryHdr)
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"records":[]}`)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) received() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.bodies...)
}

func newForwarder(t *testing.T, url string, logs io.Writer) *Forwarder {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	f, err := New(Config{URL: url, Secrets: secret, InputPrefix: "uploads/", OutputPrefix: "resized/",
		Margin: 500 * time.Millisecond, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond,
		RequestTimeout: 2 * time.Second}, nil, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func s3Event(keys ...string) json.RawMessage {
	var recs []any
	for _, k := range keys {
		recs = append(recs, map[string]any{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
			"eventTime": "2026-11-26T10:00:00Z",
			"s3":        map[string]any{"bucket": map[string]any{"name": "photos"}, "object": map[string]any{"key": k, "eTag": "abc"}}})
	}
	b, _ := json.Marshal(map[string]any{"Records": recs})
	return b
}

func lambdaCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestForwardsSigned(t *testing.T) {
	r := newReceiver(t)
	var logs strings.Builder
	f := newForwarder(t, r.URL, &logs)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/a+b.jpg")); err != nil {
		t.Fatal(err)
	}
	got := r.received()
	if len(got) != 1 || r.badSigs != 0 {
		t.Fatalf("%d requests, %d bad signatures", len(got), r.badSigs)
	}
	ev, err := webhook.Parse(got[0])
	if err != nil || len(ev.Records) != 1 || ev.Records[0].Key() != "uploads/a b.jpg" || ev.Records[0].ETag() != `"abc"` {
		t.Fatalf("forwarded %s (%v)", got[0], err)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the secret reached the log")
	}
	if !strings.Contains(logs.String(), `"forwarded":1`) || !strings.Contains(logs.String(), `"key":"uploads/a b.jpg"`) {
		t.Fatalf("log lacks the summary or the key: %s", logs.String())
	}
}

func TestRetriesHonouringRetryAfter(t *testing.T) {
	r := newReceiver(t, 503, 502)
	r.retryHdr = "1"
	f := newForwarder(t, r.URL, nil)
	start := time.Now()
	if _, err := f.Handle(lambdaCtx(t, 10*time.Second), s3Event("uploads/x.jpg")); err != nil {
		t.Fatal(err)
	}
	if n := len(r.received()); n != 3 {
		t.Fatalf("%d attempts, want 3", n)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("took %v: Retry-After: 1 not honoured", d)
	}
}

func TestPermanentRefusal(t *testing.T) {
	r := newReceiver(t, 400)
	f := newForwarder(t, r.URL, nil)
	_, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/x.jpg"))
	if !errors.Is(err, ErrPermanent) || len(r.received()) != 1 {
		t.Fatalf("err = %v after %d attempts; want ErrPermanent after 1", err, len(r.received()))
	}
	// In a batch a refusal (a body over WEBHOOK_MAX_BYTES, too many
	// records, a route that is not the webhook) is not retried, and not
	// dropped either: its message alone is reported, so that it comes
	// back and ends in the dead-letter queue, and the next one is sent.
	for _, code := range []int{400, 404, 413, 422} {
		r := newReceiver(t, code)
		f := newForwarder(t, r.URL, nil)
		out, err := f.Handle(lambdaCtx(t, 5*time.Second), sqsBatch(map[string]string{"only": string(s3Event("uploads/x.jpg", "uploads/y.jpg"))}))
		resp, _ := out.(events.SQSEventResponse)
		if err != nil || len(resp.BatchItemFailures) != 1 || len(r.received()) != 1 {
			t.Errorf("%d in a batch: %v %+v after %d attempts; want the message reported after 1", code, err, out, len(r.received()))
		}
	}
}

// With the service down, the handler keeps trying until the margin before
// the deadline, then returns an error: it never hangs past the deadline.
func TestGivesUpBeforeTheDeadline(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	f := newForwarder(t, url, nil)
	start := time.Now()
	_, err := f.Handle(lambdaCtx(t, 2*time.Second), s3Event("uploads/x.jpg"))
	took := time.Since(start)
	if err == nil || took > 2*time.Second || took < time.Second {
		t.Fatalf("err = %v after %v; want an error between 1 s and the 2 s deadline", err, took)
	}
}

func TestLoopGuardAndTestEvent(t *testing.T) {
	r := newReceiver(t)
	f := newForwarder(t, r.URL, nil)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("resized/thumb/x.jpg", "elsewhere/y.jpg")); err != nil {
		t.Fatal(err)
	}
	test := json.RawMessage(`{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-26T10:00:00Z","Bucket":"photos"}`)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), test); err != nil {
		t.Fatal(err)
	}
	if n := len(r.received()); n != 0 {
		t.Fatalf("%d requests for events that must be dropped", n)
	}
	// A mixed event sends only the input record.
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("resized/thumb/x.jpg", "uploads/z.jpg")); err != nil {
		t.Fatal(err)
	}
	ev, _ := webhook.Parse(r.received()[0])
	if len(ev.Records) != 1 || ev.Records[0].Key() != "uploads/z.jpg" {
		t.Fatalf("forwarded %+v", ev.Records)
	}
}

// With the outputs in a bucket of their own (OUTPUT_BUCKET), as the
// service's loop guard has it, OutputPrefix guards that bucket's keys
// only: in the originals' bucket, with the whole bucket as INPUT_PREFIX,
// resized/ is a folder of originals like any other.
func TestLoopGuardOfAnOutputBucket(t *testing.T) {
	for _, c := range []struct {
		outputBucket string
		forwarded    int
	}{{"", 0}, {"photos", 0}, {"photos-resized", 1}} {
		r := newReceiver(t)
		f, err := New(Config{URL: r.URL, Secrets: secret, InputPrefix: "", OutputPrefix: "resized/", OutputBucket: c.outputBucket,
			RequestTimeout: 2 * time.Second}, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("resized/thumb/x.jpg")); err != nil {
			t.Fatal(err)
		}
		if n := len(r.received()); n != c.forwarded {
			t.Errorf("OutputBucket %q: %d requests for resized/thumb/x.jpg of photos, want %d", c.outputBucket, n, c.forwarded)
		}
	}
}

func sqsBatch(bodies map[string]string) json.RawMessage {
	var recs []events.SQSMessage
	for id, b := range bodies {
		recs = append(recs, events.SQSMessage{MessageId: id, Body: b, EventSource: "aws:sqs"})
	}
	b, _ := json.Marshal(events.SQSEvent{Records: recs})
	return b
}

// In an SQS batch only the poison message is reported, so that SQS
// retries it alone.
func TestSQSBatchReportsOnlyTheFailure(t *testing.T) {
	r := newReceiver(t)
	f := newForwarder(t, r.URL, nil)
	out, err := f.Handle(lambdaCtx(t, 5*time.Second), sqsBatch(map[string]string{
		"m1":     string(s3Event("uploads/1.jpg")),
		"poison": "this is not an S3 event",
		"m3":     string(s3Event("uploads/3.jpg")),
		"test":   `{"Event":"s3:TestEvent"}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	resp, ok := out.(events.SQSEventResponse)
	if !ok || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "poison" {
		t.Fatalf("response %+v", out)
	}
	if n := len(r.received()); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	b, _ := json.Marshal(resp)
	if string(b) != `{"batchItemFailures":[{"itemIdentifier":"poison"}]}` {
		t.Fatalf("wire form %s", b)
	}
}

func TestEventBridge(t *testing.T) {
	r := newReceiver(t)
	f := newForwarder(t, r.URL, nil)
	eb := json.RawMessage(`{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
		"source":"aws.s3","account":"111122223333","time":"2026-11-26T10:00:00Z","region":"eu-west-1",
		"resources":["arn:aws:s3:::photos"],
		"detail":{"version":"0","bucket":{"name":"photos"},"object":{"key":"uploads/a b+c é.jpg","size":5,
		"etag":"b1946ac92492d2347c6235b4d2611184","sequencer":"00617F08299329D189"},"request-id":"N4N7GDK58NMKJ12R",
		"requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}`)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), eb); err != nil {
		t.Fatal(err)
	}
	got := r.received()
	if len(got) != 1 {
		t.Fatalf("%d requests", len(got))
	}
	ev, _ := webhook.Parse(got[0])
	rec := ev.Records[0]
	if rec.Kind() != webhook.Created || rec.Name() != "ObjectCreated:PutObject" || rec.Key() != "uploads/a b+c é.jpg" ||
		rec.ETag() != `"b1946ac92492d2347c6235b4d2611184"` || rec.S3.Bucket.Name != "photos" || rec.EventTime.Year() != 2026 {
		t.Fatalf("converted %+v", rec)
	}
	del := strings.Replace(strings.Replace(string(eb), "Object Created", "Object Deleted", 1), "PutObject", "DeleteObject", 1)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), json.RawMessage(del)); err != nil {
		t.Fatal(err)
	}
	if ev, _ := webhook.Parse(r.received()[1]); ev.Records[0].Kind() != webhook.Removed {
		t.Fatalf("deletion converted to %+v", ev.Records[0])
	}
	other := strings.Replace(string(eb), "Object Created", "Object Tags Added", 1)
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), json.RawMessage(other)); err != nil || len(r.received()) != 2 {
		t.Fatalf("other detail type: %v, %d requests", err, len(r.received()))
	}
}

// What a redriven dead-letter queue holds: the S3 event inside Lambda's
// record of a failed asynchronous invocation, or inside an SNS
// notification (as SNS delivers to a queue, and as it invokes a
// function). Each is unwrapped and its record forwarded.
func TestUnwrapsDestinationRecordsAndSNS(t *testing.T) {
	inner := string(s3Event("uploads/wrapped.jpg"))
	sns := func(msg string) string {
		b, _ := json.Marshal(map[string]any{"Type": "Notification", "MessageId": "5d2e", "TopicArn": "arn:aws:sns:eu-west-1:111122223333:uploads",
			"Subject": "Amazon S3 Notification", "Message": msg, "Timestamp": "2026-11-26T10:00:00.000Z", "SignatureVersion": "1"})
		return string(b)
	}
	destination := func(payload string) string {
		return `{"version":"1.0","timestamp":"2026-11-26T10:05:00.000Z","requestContext":{"requestId":"e4b46cbf",
			"functionArn":"arn:aws:lambda:eu-west-1:111122223333:function:forwarder:$LATEST","condition":"RetriesExhausted",
			"approximateInvokeCount":3},"requestPayload":` + payload + `,"responseContext":{"statusCode":200,
			"executedVersion":"$LATEST","functionError":"Unhandled"},"responsePayload":{"errorMessage":"HTTP 503"}}`
	}
	snsInvoke, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"EventSource": "aws:sns", "EventVersion": "1.0",
		"Sns": map[string]any{"Type": "Notification", "Message": inner}}}})
	for name, body := range map[string]string{
		"destination record":            destination(inner),
		"SNS notification":              sns(inner),
		"SNS in a destination record":   destination(sns(inner)),
		"SNS invoking the function":     string(snsInvoke),
		"destination record of SNS too": destination(string(snsInvoke)),
	} {
		for _, how := range []string{"direct", "sqs"} {
			r := newReceiver(t)
			f := newForwarder(t, r.URL, nil)
			if how == "direct" {
				if _, err := f.Handle(lambdaCtx(t, 5*time.Second), json.RawMessage(body)); err != nil {
					t.Errorf("%s, %s: %v", name, how, err)
				}
			} else {
				out, err := f.Handle(lambdaCtx(t, 5*time.Second), sqsBatch(map[string]string{"m": body}))
				if err != nil || len(out.(events.SQSEventResponse).BatchItemFailures) != 0 {
					t.Errorf("%s, %s: %v %+v", name, how, err, out)
				}
			}
			got := r.received()
			if len(got) != 1 {
				t.Errorf("%s, %s: %d requests, want 1", name, how, len(got))
				continue
			}
			if ev, err := webhook.Parse(got[0]); err != nil || len(ev.Records) != 1 || ev.Records[0].Key() != "uploads/wrapped.jpg" {
				t.Errorf("%s, %s: forwarded %s (%v)", name, how, got[0], err)
			}
		}
	}
}

// A body the forwarder cannot read is a failure, never a silent success:
// in a batch its message is reported, so that it comes back and in the
// end reaches the dead-letter queue; invoked directly, the invocation
// fails.
func TestUnknownBodiesFail(t *testing.T) {
	r := newReceiver(t)
	var logs strings.Builder
	f := newForwarder(t, r.URL, &logs)
	bad := map[string]string{
		"empty object":     `{}`,
		"no records":       `{"Records":[]}`,
		"other source":     `{"Records":[{"eventSource":"aws:dynamodb","dynamodb":{}}]}`,
		"mixed sources":    `{"Records":[{"eventSource":"aws:s3"},{"eventSource":"aws:sqs"}]}`,
		"confirmation":     `{"Type":"SubscriptionConfirmation","Token":"t","SubscribeURL":"https://example.com/confirm"}`,
		"empty payload":    `{"requestContext":{"requestId":"r"},"requestPayload":{}}`,
		"SNS of garbage":   `{"Type":"Notification","Message":"hello"}`,
		"not JSON":         `secret-looking-value-not-json`,
		"records a number": `{"Records":7}`,
		// S3 records that name no object or no change: dropped as
		// outside the input prefix, or forwarded and answered 200 as
		// another bucket's or as an event that changes nothing, they
		// were acknowledged.
		"record without s3":     `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put"}]}`,
		"record without key":    `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"photos"},"object":{}}}]}`,
		"record without bucket": `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"object":{"key":"uploads/a.jpg"}}}]}`,
		"record without event":  `{"Records":[{"eventSource":"aws:s3","s3":{"bucket":{"name":"photos"},"object":{"key":"uploads/a.jpg"}}}]}`,
		"one record of two bad": `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"photos"},"object":{"key":"uploads/b.jpg"}}},{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"photos"},"object":{}}}]}`,
		"too deep":              strings.Repeat(`{"Type":"Notification","Message":`, 1) + strconv.Quote(strings.Repeat(`{"requestContext":{},"requestPayload":`, 6)+`{}`+strings.Repeat(`}`, 6)) + `}`,
	}
	out, err := f.Handle(lambdaCtx(t, 5*time.Second), sqsBatch(bad))
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]bool{}
	for _, it := range out.(events.SQSEventResponse).BatchItemFailures {
		failed[it.ItemIdentifier] = true
	}
	for name, body := range bad {
		if !failed[name] {
			t.Errorf("%s: acknowledged, would be lost", name)
		}
		if _, err := f.Handle(lambdaCtx(t, 5*time.Second), json.RawMessage(body)); err == nil {
			t.Errorf("%s invoked directly: no error", name)
		}
	}
	if n := len(r.received()); n != 0 {
		t.Fatalf("%d requests for bodies that are no event", n)
	}
	if strings.Contains(logs.String(), "secret-looking-value") || strings.Contains(logs.String(), "example.com/confirm") {
		t.Fatal("a body's content reached the log")
	}
}

// The waits grow, spread, stay under the cap, and never fall under the
// service's Retry-After.
func TestBackoff(t *testing.T) {
	f := newForwarder(t, "http://127.0.0.1:1", nil)
	f.cfg.BaseDelay, f.cfg.MaxDelay = 100*time.Millisecond, 3*time.Second
	mean := func(attempt int, ra time.Duration) (time.Duration, map[time.Duration]bool) {
		var sum time.Duration
		seen := map[time.Duration]bool{}
		for range 1000 {
			w := f.backoff(attempt, ra)
			d := min(f.cfg.MaxDelay, f.cfg.BaseDelay<<attempt)
			if w < ra || w > max(d, ra+ra/4) || (ra == 0 && w < d/2) {
				t.Fatalf("attempt %d, Retry-After %v: waited %v", attempt, ra, w)
			}
			sum += w
			seen[w] = true
		}
		return sum / 1000, seen
	}
	prev := time.Duration(0)
	for attempt := range 8 {
		m, seen := mean(attempt, 0)
		if m <= prev && f.cfg.BaseDelay<<attempt <= f.cfg.MaxDelay {
			t.Errorf("attempt %d: mean wait %v, not above %v", attempt, m, prev)
		}
		if len(seen) < 100 {
			t.Errorf("attempt %d: only %d distinct waits in 1000", attempt, len(seen))
		}
		prev = m
	}
	// Retry-After: 1 early on: never under a second, and not all the same.
	if m, seen := mean(0, time.Second); m < time.Second || len(seen) < 100 {
		t.Errorf("Retry-After 1 s: mean %v, %d distinct waits", m, len(seen))
	}
	// Later the backoff outgrows Retry-After.
	if m, _ := mean(6, time.Second); m < 2*time.Second {
		t.Errorf("attempt 6 under Retry-After 1 s: mean %v", m)
	}
}

// During a rotation the function signs with every secret it holds, so a
// service that knows only one of them accepts it.
func TestSignsWithEverySecret(t *testing.T) {
	r := newReceiver(t) // knows only the test's secret
	f, err := New(Config{URL: r.URL, Secrets: "brand-new-secret, " + secret, InputPrefix: "uploads/", OutputPrefix: "resized/"}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/x.jpg")); err != nil || r.badSigs != 0 {
		t.Fatalf("err %v, %d bad signatures", err, r.badSigs)
	}
}

// An instance that started before a rotation signs with the old secret
// alone; once the service knows only the new one it answers 401, and the
// forwarder reads its secret again and delivers, instead of giving up.
func TestReloadsTheSecretOn401(t *testing.T) {
	r := newReceiver(t)
	var reloads int
	current := secret
	f, err := New(Config{URL: r.URL, Secrets: "the-old-secret", InputPrefix: "uploads/", OutputPrefix: "resized/",
		Reload: func(context.Context) (string, error) { reloads++; return current, nil }}, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/x.jpg")); err != nil {
		t.Fatal(err)
	}
	if reloads != 1 || r.badSigs != 1 || len(r.received()) != 1 {
		t.Fatalf("%d reloads, %d refused, %d delivered; want 1, 1, 1", reloads, r.badSigs, len(r.received()))
	}
	// A secret the service does not know, even after a reload: a failure
	// after one reload, and no reload again within ReloadEvery.
	current = "unknown-everywhere"
	f.reloaded = time.Time{}
	f.secrets = [][]byte{[]byte("also-unknown")}
	for range 3 {
		if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/y.jpg")); err == nil {
			t.Fatal("delivered with a secret the service does not know")
		}
	}
	if reloads != 2 {
		t.Fatalf("%d reloads, want 2 (one per ReloadEvery)", reloads)
	}
}

// Under sustained overload every message of a batch is tried, though
// retrying any one of them could take all the function's time: each gets
// its share, and each that is not delivered is reported, for SQS to bring
// it back.
func TestOverloadedBatchTriesEveryMessage(t *testing.T) {
	var mu sync.Mutex
	tries := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if ev, err := webhook.Parse(body); err == nil && len(ev.Records) == 1 {
			mu.Lock()
			tries[ev.Records[0].Key()]++
			mu.Unlock()
		}
		time.Sleep(50 * time.Millisecond) // a moment in the admission queue
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	f := newForwarder(t, srv.URL, nil)
	bodies := map[string]string{}
	for i := range 8 {
		bodies["m"+strconv.Itoa(i)] = string(s3Event("uploads/" + strconv.Itoa(i) + ".jpg"))
	}
	start := time.Now()
	out, err := f.Handle(lambdaCtx(t, 3*time.Second), sqsBatch(bodies))
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if took > 3*time.Second {
		t.Fatalf("took %v, past the 3 s deadline", took)
	}
	failed := map[string]bool{}
	for _, it := range out.(events.SQSEventResponse).BatchItemFailures {
		failed[it.ItemIdentifier] = true
	}
	mu.Lock()
	defer mu.Unlock()
	total := 0
	for i := range 8 {
		id, key := "m"+strconv.Itoa(i), "uploads/"+strconv.Itoa(i)+".jpg"
		if tries[key] == 0 {
			t.Errorf("%s reported failed without an attempt", id)
		}
		if !failed[id] {
			t.Errorf("%s not in batchItemFailures", id)
		}
		total += tries[key]
	}
	t.Logf("%d attempts for 8 messages in %v", total, took.Round(time.Millisecond))
}

// A Retry-After longer than the time left is waited for only in part, and
// the event is delivered, instead of given up at once.
func TestRetryAfterCappedByTheTimeLeft(t *testing.T) {
	r := newReceiver(t, 503)
	r.retryHdr = "60"
	f := newForwarder(t, r.URL, nil)
	start := time.Now()
	if _, err := f.Handle(lambdaCtx(t, 3*time.Second), s3Event("uploads/x.jpg")); err != nil {
		t.Fatal(err)
	}
	if n, d := len(r.received()), time.Since(start); n != 2 || d < time.Second || d > 3*time.Second {
		t.Fatalf("%d attempts in %v; want 2, after waiting about half of the 2.5 s left", n, d)
	}
}

// A Retry-After is read as seconds or a date, whatever its size: one past
// what a Duration holds waits the longest, never wraps round to a short
// or negative wait.
func TestRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"1", time.Second}, {"120", 2 * time.Minute}, {"-5", 0}, {"soon", 0},
		{"10000000000", maxRetryAfter}, {"9223372036854775807", maxRetryAfter}, {"99999999999999999999", maxRetryAfter},
		{"-99999999999999999999", 0},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
		{"Fri, 31 Dec 9999 23:59:59 GMT", maxRetryAfter}, // the date form is capped as the seconds form is
	} {
		if got := retryAfter(tt.in); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := retryAfter(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); got < 58*time.Minute || got > time.Hour {
		t.Errorf("an hour from now: %v", got)
	}
}

// A redirect is not a delivery. Go's client follows a 302 with a GET, so
// a login page in front of the service (an authenticating proxy, a load
// balancer rule) answering it 200 acknowledged every event the service
// never saw; a 307 re-posted the signed body wherever it pointed. Each
// redirect now fails its message at once, to come back and, while the
// URL stays wrong, reach the dead-letter queue.
func TestRedirectIsNoDelivery(t *testing.T) {
	for _, code := range []int{301, 302, 303, 307, 308} {
		var mu sync.Mutex
		elsewhere := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.URL.Path == "/webhooks/s3" {
				http.Redirect(w, req, "/login?state=s3cr3t-state", code)
				return
			}
			mu.Lock()
			elsewhere++
			mu.Unlock()
			io.WriteString(w, "<html>sign in</html>")
		}))
		t.Cleanup(srv.Close)
		var logs strings.Builder
		f := newForwarder(t, srv.URL+"/webhooks/s3", &logs)
		out, err := f.Handle(lambdaCtx(t, 5*time.Second), sqsBatch(map[string]string{"m": string(s3Event("uploads/x.jpg"))}))
		if err != nil {
			t.Fatal(err)
		}
		failed := out.(events.SQSEventResponse).BatchItemFailures
		mu.Lock()
		n := elsewhere
		mu.Unlock()
		if len(failed) != 1 || failed[0].ItemIdentifier != "m" || n != 0 {
			t.Errorf("HTTP %d: batchItemFailures %+v, %d requests to where it pointed; want the message failed, none followed", code, failed, n)
		}
		if _, err := f.Handle(lambdaCtx(t, 5*time.Second), s3Event("uploads/y.jpg")); !errors.Is(err, ErrPermanent) {
			t.Errorf("HTTP %d invoked directly: %v, want ErrPermanent", code, err)
		}
		if !strings.Contains(logs.String(), "/login") || strings.Contains(logs.String(), "s3cr3t-state") {
			t.Errorf("HTTP %d: the log names no Location, or its query: %s", code, logs.String())
		}
	}
}

// A 401 reads the secret again within the message's time, as an attempt
// runs: a Secrets Manager that does not answer (its endpoint unreachable
// from the VPC) held the invocation until its deadline, where Lambda
// kills it and brings back the whole batch, delivered messages too.
func TestReloadKeepsOutOfTheMargin(t *testing.T) {
	r := newReceiver(t) // knows only the test's secret
	for _, how := range []string{"direct", "sqs"} {
		reloads := 0
		f, err := New(Config{URL: r.URL, Secrets: "a-stale-secret", InputPrefix: "uploads/", OutputPrefix: "resized/",
			Margin: 500 * time.Millisecond, RequestTimeout: time.Second,
			Reload: func(ctx context.Context) (string, error) { reloads++; <-ctx.Done(); return "", ctx.Err() }}, nil, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		ctx := lambdaCtx(t, 2*time.Second)
		deadline, _ := ctx.Deadline()
		var out any
		if how == "direct" {
			out, err = f.Handle(ctx, s3Event("uploads/x.jpg"))
		} else {
			out, err = f.Handle(ctx, sqsBatch(map[string]string{"m": string(s3Event("uploads/x.jpg"))}))
			if resp, ok := out.(events.SQSEventResponse); err != nil || !ok || len(resp.BatchItemFailures) != 1 {
				t.Errorf("sqs: answered %+v, %v; want the message failed", out, err)
			}
		}
		if left := time.Until(deadline); left < 250*time.Millisecond || reloads != 1 {
			t.Errorf("%s: returned (%v, %v) %v before the deadline after %d reloads; want at least 250 ms (half the margin) after 1", how, out, err, left, reloads)
		}
	}
}
