package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/sqstest"
	"github.com/resizer/resizer/internal/storage"
)

// enqueueBucket starts MinIO and goaws, stores n originals, and returns
// the store, reconcile's environment (EVENT_QUEUE_URL a queue of goaws),
// the queue server and the queue.
func enqueueBucket(t *testing.T, n int) (*storage.S3, map[string]string, *sqstest.Server, sqstest.Queue) {
	t.Helper()
	srv := s3test.Start(t)
	q := sqstest.Start(t)
	ctx := t.Context()
	queue, err := q.CreateQueue(ctx, "events", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.Bucket(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	img := small(t, 1)
	for i := range n {
		if _, err := st.Put(ctx, fmt.Sprintf("uploads/%03d.jpg", i), img, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"S3_BUCKET": bucket, "S3_ENDPOINT": srv.Endpoint, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": srv.Region, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		"LOG_LEVEL": "warn", "EVENT_QUEUE_URL": queue.URL,
	}
	return st, env, q, queue
}

var failedCount = regexp.MustCompile(`(\d+) failed;`)

// A queue that refuses every send (a mistyped EVENT_QUEUE_URL: goaws
// answers NonExistentQueue, as SQS does) stops reconcile --enqueue after
// the originals in hand, with an error that says why and exit status
// non-zero, instead of failing every original of the bucket one by one.
func TestReconcileEnqueueQueueMissing(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	const n, inHand = 80, 10
	_, env, q, queue := enqueueBucket(t, n)
	env["EVENT_QUEUE_URL"] = strings.TrimSuffix(queue.URL, "events") + "nosuch"
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := reconcileRun(ctx, env, "--enqueue", "--concurrency", strconv.Itoa(inHand))
	if err == nil || !strings.Contains(err.Error(), "refuses every send") || !strings.Contains(err.Error(), "NonExistentQueue") {
		t.Fatalf("a queue that does not exist: %v\n%s", err, out)
	}
	m := failedCount.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no done line in\n%s", out)
	}
	if failed, _ := strconv.Atoi(m[1]); failed < 1 || failed > inHand {
		t.Errorf("%d originals failed of %d, want those in hand (at most %d):\n%s", failed, n, inHand, out)
	}
	if lines := strings.Count(out, "\nfailed: "); lines > inHand {
		t.Errorf("%d failed lines, want at most %d", lines, inHand)
	}
	if c, err := q.Count(ctx, queue); err != nil || c != 0 {
		t.Errorf("the real queue holds %d messages (%v)", c, err)
	}
}

// bucketState is every object of the bucket: its key, ETag and size.
func bucketState(t *testing.T, st *storage.S3) map[string]string {
	t.Helper()
	objs, err := st.List(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, o := range objs {
		m[o.Key] = fmt.Sprintf("%s %d", o.ETag, o.Size)
	}
	return m
}

// A dry run on S3 writes nothing to the bucket and sends nothing to the
// queue, with --enqueue or not, EVENT_QUEUE_URL set or not, before any
// run and after one with outputs to retire; a run with --enqueue then
// sends each original to do once and writes nothing but deletions of
// retired outputs.
func TestReconcileEnqueueDryRunChangesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	const n = 12
	st, env, q, queue := enqueueBucket(t, n)
	ctx := t.Context()
	env["VARIANTS"] = "thumb:32x32:cover,small:100x0"
	if out, err := reconcileRun(ctx, env); err != nil || processed(t, out) != n {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	env["VARIANTS"] = "thumb:40x40:cover,large:200x0" // one redefined, one added, one retired
	before := bucketState(t, st)
	for _, args := range [][]string{{"--dry-run", "--json"}, {"--dry-run", "--enqueue", "--json"}} {
		for _, url := range []string{env["EVENT_QUEUE_URL"], ""} {
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			e["EVENT_QUEUE_URL"] = url
			out, err := reconcileRun(ctx, e, args...)
			if err != nil {
				t.Fatalf("%v (queue %q): %v\n%s", args, url, err, out)
			}
			if p := lastJSON(t, out); p["regenerate"] != n || p["delete"] != n {
				t.Errorf("%v: plan %v, want %d to regenerate and %d to delete", args, p, n, n)
			}
			if after := bucketState(t, st); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("%v (queue %q) changed the bucket: %d objects, were %d", args, url, len(after), len(before))
			}
			if c, err := q.Count(ctx, queue); err != nil || c != 0 {
				t.Errorf("%v (queue %q): %d messages sent (%v)", args, url, c, err)
			}
		}
	}
	out, err := reconcileRun(ctx, env, "--enqueue")
	if err != nil || !strings.Contains(out, fmt.Sprintf("%d enqueued", n)) || !strings.Contains(out, fmt.Sprintf("%d retired variants deleted", n)) {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	if c, err := q.Count(ctx, queue); err != nil || c != n {
		t.Errorf("%d messages after the run (%v), want %d", c, err, n)
	}
	after := bucketState(t, st)
	for k, v := range after {
		if before[k] != v {
			t.Errorf("--enqueue wrote %s", k)
		}
	}
	if len(before)-len(after) != n {
		t.Errorf("%d objects deleted, want the %d retired", len(before)-len(after), n)
	}
}
