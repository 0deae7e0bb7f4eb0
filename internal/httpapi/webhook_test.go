package httpapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/webhook"
)

// s3Event returns an event notification for one object, its key encoded
// the way S3 encodes keys in events.
func s3Event(name, bucket, key, etag string) []byte {
	rec := map[string]any{
		"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": time.Now().UTC().Format(time.RFC3339Nano),
		"eventName": name,
		"s3": map[string]any{"bucket": map[string]any{"name": bucket},
			"object": map[string]any{"key": url.QueryEscape(key), "eTag": strings.Trim(etag, `"`), "size": 1}},
	}
	b, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	return b
}

// webhookReply is the 200 answer as a client reads it (the contract
// check validates it against openapi.yaml besides).
type webhookReply struct {
	Records []struct {
		Event, Bucket, Key, Status, Reason string
		Outputs                            []struct {
			Variant, Key  string
			Width, Height int
			Bytes         int64
		}
	} `json:"records"`
}

func (s *testServer) event(t *testing.T, body []byte, h http.Header) (*http.Response, webhookReply) {
	t.Helper()
	if h == nil {
		h = http.Header{webhook.Header: {webhook.Sign([]byte("webhook-secret"), body, time.Now())}}
	}
	h.Set("Content-Type", "application/json")
	resp, b := s.do(t, "POST", "/webhooks/s3", body, h)
	var r webhookReply
	if resp.StatusCode == 200 {
		r = decodeJSON[webhookReply](t, b)
	}
	return resp, r
}

func TestWebhookAuth(t *testing.T) {
	s, _, st := newS3TestServer(t)
	obj, err := st.Put(t.Context(), "uploads/auth.jpg", testdata(t, "ladybird.jpg"), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body := s3Event("ObjectCreated:Put", st.Bucket(), "uploads/auth.jpg", obj.ETag)
	now := time.Now()
	for _, tt := range []struct {
		name string
		h    http.Header
	}{
		{"unsigned", http.Header{}},
		{"wrong secret", http.Header{webhook.Header: {webhook.Sign([]byte("guess"), body, now)}}},
		{"stale", http.Header{webhook.Header: {webhook.Sign([]byte("webhook-secret"), body, now.Add(-10*time.Minute))}}},
		{"other body", http.Header{webhook.Header: {webhook.Sign([]byte("webhook-secret"), append([]byte(" "), body...), now)}}},
		{"wrong token", http.Header{"Authorization": {"Bearer nope"}}},
		{"API-key style", http.Header{"Authorization": {"Basic webhook-secret"}}},
	} {
		resp, _ := s.event(t, body, tt.h)
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", tt.name, resp.StatusCode)
		}
	}
	if _, err := st.Head(t.Context(), "resized/thumb/auth.jpg"); err == nil {
		t.Fatal("an unauthorized event was processed")
	}
	// MinIO's way: the secret as a bearer token; the old secret still works.
	resp, r := s.event(t, body, http.Header{"Authorization": {"Bearer webhook-secret-old"}})
	if resp.StatusCode != 200 || r.Records[0].Status != "processed" {
		t.Fatalf("bearer: %d %+v", resp.StatusCode, r)
	}
	if strings.Contains(s.logs.String(), "webhook-secret") {
		t.Fatal("a secret reached the log")
	}
}

func TestWebhookRecords(t *testing.T) {
	s, srv, st := newS3TestServer(t)
	ctx := t.Context()
	// What the S3 console's "Create folder" stores.
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String("uploads/trip/"),
		Body: bytes.NewReader(nil)}); err != nil {
		t.Fatal(err)
	}
	photo := testdata(t, "ladybird.jpg")
	key := "uploads/trip/beach day+été.jpg"
	obj, err := st.Put(ctx, key, photo, storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	resp, r := s.event(t, s3Event("ObjectCreated:Put", st.Bucket(), key, obj.ETag), nil)
	if resp.StatusCode != 200 || len(r.Records) != 1 {
		t.Fatalf("%d %+v", resp.StatusCode, r)
	}
	rec := r.Records[0]
	if rec.Status != "processed" || rec.Key != key || len(rec.Outputs) != 2 || rec.Outputs[0].Key != "resized/thumb/trip/beach day+été.jpg" ||
		rec.Outputs[0].Width != 100 || rec.Outputs[1].Key != "resized/medium/trip/beach day+été.jpg.webp" {
		t.Fatalf("record %+v", rec)
	}
	for _, o := range rec.Outputs {
		if _, err := st.Head(ctx, o.Key); err != nil {
			t.Fatalf("%s: %v", o.Key, err)
		}
	}
	// The same event again does nothing: the outputs carry its ETag.
	processed := processCount(t, s)
	if _, r := s.event(t, s3Event("ObjectCreated:Put", st.Bucket(), key, obj.ETag), nil); r.Records[0].Status != "skipped_up_to_date" {
		t.Fatalf("redelivery: %+v", r)
	}
	if processCount(t, s) != processed {
		t.Fatal("a redelivery decoded the image again")
	}

	cases := []struct {
		name, event, bucket, key, etag, want string
	}{
		{"an output", "ObjectCreated:Put", st.Bucket(), "resized/thumb/trip/x.jpg", "", "skipped_loop_guard"},
		{"outside the inputs", "ObjectCreated:Put", st.Bucket(), "elsewhere/x.jpg", "", "skipped_loop_guard"},
		{"another bucket", "ObjectCreated:Put", "other-bucket", key, obj.ETag, "skipped_loop_guard"},
		{"not a change", "ObjectAccessed:Get", st.Bucket(), key, "", "ignored"},
		{"a folder marker", "ObjectCreated:Put", st.Bucket(), "uploads/trip/", `"d41d8cd98f00b204e9800998ecf8427e"`, "ignored"},
		{"a folder marker removed", "ObjectRemoved:Delete", st.Bucket(), "uploads/trip/", "", "ignored"},
		{"an old version", "ObjectCreated:Put", st.Bucket(), "uploads/never.jpg", `"0123456789abcdef0123456789abcdef"`, "superseded"},
	}
	for _, c := range cases {
		if _, r := s.event(t, s3Event(c.event, c.bucket, c.key, c.etag), nil); len(r.Records) != 1 || r.Records[0].Status != c.want {
			t.Errorf("%s: %+v, want %s", c.name, r, c.want)
		}
	}

	// Not an image: rejected in a 200, so that nobody retries it.
	fake, _ := st.Put(ctx, "uploads/fake.jpg", []byte("plain text, not a jpeg"), storage.PutOptions{})
	resp, r = s.event(t, s3Event("ObjectCreated:Put", st.Bucket(), "uploads/fake.jpg", fake.ETag), nil)
	if resp.StatusCode != 200 || r.Records[0].Status != "rejected" || !strings.Contains(r.Records[0].Reason, "unsupported") {
		t.Fatalf("text file: %d %+v", resp.StatusCode, r)
	}

	// A deletion removes the variants.
	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, r := s.event(t, s3Event("ObjectRemoved:Delete", st.Bucket(), key, ""), nil); r.Records[0].Status != "deleted" {
		t.Fatalf("delete: %+v", r)
	}
	for _, o := range rec.Outputs {
		if _, err := st.Head(ctx, o.Key); err == nil {
			t.Errorf("%s survived its source", o.Key)
		}
	}
	// S3's test event, sent when a notification is set up.
	test := []byte(`{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"x"}`)
	if resp, r := s.event(t, test, nil); resp.StatusCode != 200 || len(r.Records) != 0 {
		t.Fatalf("test event: %d %+v", resp.StatusCode, r)
	}
	_, metrics := s.do(t, "GET", "/metrics", nil, nil)
	for _, want := range []string{
		`resizer_webhook_records_total{event="created",outcome="processed"} 1`,
		`resizer_webhook_records_total{event="created",outcome="rejected"} 1`,
		`resizer_webhook_records_total{event="removed",outcome="deleted"} 1`,
		`resizer_webhook_lag_seconds_count 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// batch joins the records of events into one event.
func batch(t *testing.T, events ...[]byte) []byte {
	t.Helper()
	var all []json.RawMessage
	for _, e := range events {
		var ev struct{ Records []json.RawMessage }
		if err := json.Unmarshal(e, &ev); err != nil {
			t.Fatal(err)
		}
		all = append(all, ev.Records...)
	}
	b, _ := json.Marshal(map[string]any{"Records": all})
	return b
}

// A record that can never be processed is rejected on its own, in the
// 200, logged and counted; the records after it are processed.
func TestWebhookRejectsPerRecord(t *testing.T) {
	s, _, st := newS3TestServer(t)
	ctx := t.Context()
	obj, err := st.Put(ctx, "uploads/good.jpg", testdata(t, "ladybird.jpg"), storage.PutOptions{ContentType: "image/jpeg"})
	if err != nil {
		t.Fatal(err)
	}
	b := st.Bucket()
	resp, r := s.event(t, batch(t,
		s3Event("ObjectRemoved:Delete", b, "uploads/../x", ""),
		s3Event("ObjectCreated:Put", b, "uploads/a//b.jpg", `"abc"`),
		s3Event("ObjectCreated:Put", b, "uploads/good.jpg", obj.ETag),
	), nil)
	if resp.StatusCode != 200 || len(r.Records) != 3 {
		t.Fatalf("%d %+v", resp.StatusCode, r)
	}
	for _, rec := range r.Records[:2] {
		if rec.Status != "rejected" || !strings.Contains(rec.Reason, "invalid object key") {
			t.Errorf("%s %s: %+v, want rejected for its key", rec.Event, rec.Key, rec)
		}
	}
	if rec := r.Records[2]; rec.Status != "processed" || len(rec.Outputs) != 2 {
		t.Fatalf("the good record after them: %+v", rec)
	}
	if _, err := st.Head(ctx, "resized/thumb/good.jpg"); err != nil {
		t.Fatalf("the good record's variant: %v", err)
	}
	_, metrics := s.do(t, "GET", "/metrics", nil, nil)
	for _, want := range []string{
		`resizer_webhook_records_total{event="removed",outcome="rejected"} 1`,
		`resizer_webhook_records_total{event="created",outcome="rejected"} 1`,
		`resizer_webhook_records_total{event="created",outcome="processed"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if n := strings.Count(s.logs.String(), `"source rejected"`); n != 2 {
		t.Errorf("%d rejections logged, want 2", n)
	}
}

// With local storage, a record whose variants conflict with another key is
// rejected on its own too; storage down still fails the whole request
// (TestWebhookLimitsAndFailures).
func TestWebhookRejectsConflictLocal(t *testing.T) {
	s := newTestServer(t, nil)
	ctx := t.Context()
	photo := testdata(t, "ladybird.jpg")
	for _, k := range []string{"uploads/p/q.jpg", "uploads/ok.jpg"} {
		if _, err := s.local.Put(ctx, k, photo, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// An object where the thumb of uploads/p/q.jpg needs a folder.
	if _, err := s.local.Put(ctx, "resized/thumb/p", []byte("in the way"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	resp, r := s.event(t, batch(t,
		s3Event("ObjectCreated:Put", "local", "uploads/p/q.jpg", ""),
		s3Event("ObjectCreated:Put", "local", "uploads/ok.jpg", ""),
	), nil)
	if resp.StatusCode != 200 || len(r.Records) != 2 {
		t.Fatalf("%d %+v", resp.StatusCode, r)
	}
	if rec := r.Records[0]; rec.Status != "rejected" || !strings.Contains(rec.Reason, "conflict") {
		t.Errorf("conflicting record: %+v", rec)
	}
	if rec := r.Records[1]; rec.Status != "processed" {
		t.Errorf("the record after it: %+v", rec)
	}
}

// processCount is how many images libvips has processed so far.
func processCount(t *testing.T, s *testServer) string {
	t.Helper()
	_, b := s.do(t, "GET", "/metrics", nil, nil)
	var n []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "resizer_image_process_seconds_count") {
			n = append(n, l)
		}
	}
	return strings.Join(n, ";")
}

func TestWebhookLimitsAndFailures(t *testing.T) {
	s := newTestServer(t, nil)
	many := map[string]any{"Records": make([]map[string]any, 11)}
	for i := range many["Records"].([]map[string]any) {
		many["Records"].([]map[string]any)[i] = map[string]any{"eventName": "ObjectAccessed:Get"}
	}
	b, _ := json.Marshal(many)
	if resp, _ := s.event(t, b, nil); resp.StatusCode != 413 {
		t.Errorf("11 records: %d", resp.StatusCode)
	}
	big := []byte(fmt.Sprintf(`{"Records":[],"pad":"%s"}`, strings.Repeat("x", 70<<10)))
	if resp, _ := s.event(t, big, nil); resp.StatusCode != 413 {
		t.Errorf("70 KiB: %d", resp.StatusCode)
	}
	if resp, _ := s.event(t, []byte("{not json"), nil); resp.StatusCode != 400 {
		t.Errorf("bad json: %d", resp.StatusCode)
	}
	// A record that names no key or no event fails the event with 400
	// (the forwarder leaves it to the dead-letter queue), before any of
	// its records is done: not a 200 that acknowledges it as ignored or
	// outside the inputs.
	good := `{"eventName":"ObjectCreated:Put","s3":{"bucket":{"name":""},"object":{"key":"uploads/never.jpg"}}}`
	for name, body := range map[string]string{
		"no s3":    `{"Records":[{"eventName":"ObjectCreated:Put"}]}`,
		"no key":   `{"Records":[{"eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{}}}]}`,
		"no event": `{"Records":[{"s3":{"bucket":{"name":"b"},"object":{"key":"uploads/a.jpg"}}}]}`,
		"second":   `{"Records":[` + good + `,{"eventName":"ObjectCreated:Put","s3":{"object":{"key":""}}}]}`,
	} {
		h := http.Header{webhook.Header: {webhook.Sign([]byte("webhook-secret"), []byte(body), time.Now())}, "Content-Type": {"application/json"}}
		resp, answer := s.do(t, "POST", "/webhooks/s3", []byte(body), h)
		if resp.StatusCode != 400 || !strings.Contains(string(answer), "without key or event name") {
			t.Errorf("%s: %d %s", name, resp.StatusCode, answer)
		}
	}

	// No secrets: the webhook is closed.
	closed := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.WebhookSecrets = nil })
	if resp, _ := closed.event(t, []byte(`{"Records":[]}`), nil); resp.StatusCode != 503 {
		t.Errorf("not configured: %d", resp.StatusCode)
	}

	// Storage down: the whole request fails with 503 and Retry-After, so
	// the sender tries again later.
	down, err := storage.NewS3(storage.S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true}, s3AWSConfigForTests())
	if err != nil {
		t.Fatal(err)
	}
	ds := newTestServerOn(t, down, nil)
	resp, _ := ds.event(t, s3Event("ObjectCreated:Put", "b", "uploads/x.jpg", `"abc"`), nil)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("storage down: %d %v", resp.StatusCode, resp.Header)
	}
}

// On a versioned bucket a removal can bring an older version of an
// original back, and S3 reports no creation for it: the newest version
// deleted by its ID, or a delete marker deleted (an undelete). The
// variants must then be the older version's again, not those of the
// version removed, and not none.
func TestWebhookRemovalBringsAnOlderVersionBack(t *testing.T) {
	s, srv, st := newS3TestServer(t)
	ctx := t.Context()
	b, key := st.Bucket(), "uploads/versions.jpg"
	c := srv.Client()
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	var etags []string
	for _, img := range [][]byte{testdata(t, "ladybird.jpg"), testJPEG(t, 300, 200)} {
		obj, err := st.Put(ctx, key, img, storage.PutOptions{ContentType: "image/jpeg"})
		if err != nil {
			t.Fatal(err)
		}
		if _, r := s.event(t, s3Event("ObjectCreated:Put", b, key, obj.ETag), nil); r.Records[0].Status != "processed" {
			t.Fatalf("put: %+v", r)
		}
		etags = append(etags, obj.ETag)
	}
	thumbOf := func(want string) {
		t.Helper()
		h, err := st.Head(ctx, "resized/thumb/versions.jpg")
		if err != nil || h.Metadata[pipeline.MetaSourceETag] != strings.Trim(want, `"`) {
			t.Fatalf("thumb of version %q (%v), want %q", h.Metadata[pipeline.MetaSourceETag], err, want)
		}
	}
	thumbOf(etags[1])
	deleteVersion := func(id *string) {
		t.Helper()
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String(key), VersionId: id}); err != nil {
			t.Fatal(err)
		}
	}

	// The newest version deleted: the first is current again.
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	deleteVersion(head.VersionId)
	if _, r := s.event(t, s3Event("ObjectRemoved:Delete", b, key, ""), nil); r.Records[0].Status != "processed" {
		t.Fatalf("newest version deleted: %+v", r)
	}
	thumbOf(etags[0])

	// Deleted (a delete marker), then undeleted.
	deleteVersion(nil)
	if _, r := s.event(t, s3Event("ObjectRemoved:DeleteMarkerCreated", b, key, ""), nil); r.Records[0].Status != "deleted" {
		t.Fatalf("delete marker: %+v", r)
	}
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b), Prefix: aws.String(key)})
	if err != nil || len(vs.DeleteMarkers) != 1 {
		t.Fatalf("delete markers %+v (%v)", vs, err)
	}
	deleteVersion(vs.DeleteMarkers[0].VersionId)
	if _, r := s.event(t, s3Event("ObjectRemoved:Delete", b, key, ""), nil); r.Records[0].Status != "processed" {
		t.Fatalf("delete marker deleted: %+v", r)
	}
	thumbOf(etags[0])

	// A removal of an old version leaves the current one's variants be.
	processed := processCount(t, s)
	if _, r := s.event(t, s3Event("ObjectRemoved:Delete", b, key, ""), nil); r.Records[0].Status != "skipped_up_to_date" {
		t.Fatalf("old version deleted: %+v", r)
	}
	if processCount(t, s) != processed {
		t.Fatal("a removal of an old version decoded the image again")
	}
}

// A body that ends before its Content-Length (a sender cut off) or stalls
// past READ_TIMEOUT is the sender's fault, as on every other route: 400
// or 408 with a problem document, not a 500 that says the service failed
// and is logged as its fault.
func TestWebhookCutOrSlowBody(t *testing.T) {
	cutAndStalled(t, "/webhooks/s3", http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer webhook-secret"}},
		[]byte(`{"Records":[`), "incomplete", "timeout")
}

// A request that cannot be the forwarder's or MinIO's, whatever its body
// (no credentials, a token that is not a secret, a signature that is
// malformed or out of date), is refused before its body is read: the
// webhook is the one route that reads a body before any key, and a
// stranger's bodies would otherwise cost up to WEBHOOK_MAX_BYTES each, for
// up to READ_TIMEOUT each when sent slowly. The test sends the headers of
// a large body and none of it: the answer comes at once.
func TestWebhookRefusesBeforeReadingTheBody(t *testing.T) {
	s := newTestServer(t, nil)
	stale := strconv.FormatInt(time.Now().Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(time.Now().Add(10*time.Minute).Unix(), 10)
	sig := strings.Repeat("ab", 32)
	for _, tt := range []struct{ name, header string }{
		{"no credentials", ""},
		{"wrong token", "Authorization: Bearer nope\r\n"},
		{"other scheme", "Authorization: Basic webhook-secret\r\n"},
		{"malformed signature", webhook.Header + ": t=abc,v1=" + sig + "\r\n"},
		{"signature without v1", webhook.Header + ": t=" + strconv.FormatInt(time.Now().Unix(), 10) + "\r\n"},
		{"stale signature", webhook.Header + ": t=" + stale + ",v1=" + sig + "\r\n"},
		{"future signature", webhook.Header + ": t=" + future + ",v1=" + sig + "\r\n"},
	} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /webhooks/s3 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: 60000\r\n\r\n{\"Records\":[", tt.header)
		conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			conn.Close()
			t.Errorf("%s: no answer before the body was sent: %v", tt.name, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 401 || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s %s, want a 401 problem", tt.name, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}
