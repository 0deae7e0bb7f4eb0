package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
	"github.com/resizer/resizer/internal/webhook"
)

// readyReceiver is a callback URL: it checks each ready signal's
// signature and counts the signals per original; after stopAfter of
// them (0: never) it calls stop, once.
type readyReceiver struct {
	t         *testing.T
	secret    []byte
	mu        sync.Mutex
	per       map[string]int
	total     int
	stopAfter int
	stop      func()
}

func (rr *readyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := webhook.Verify(r.Header.Get(webhook.Header), body, [][]byte{rr.secret}, time.Now()); err != nil {
		rr.t.Errorf("ready signal: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev readyEvent
	if err := json.Unmarshal(body, &ev); err != nil || ev.Type != readyType || ev.Manifest == nil || ev.Key != ev.Manifest.Key {
		rr.t.Errorf("ready signal %s: %v", body, err)
	}
	rr.mu.Lock()
	rr.per[ev.Key]++
	rr.total++
	if rr.total == rr.stopAfter && rr.stop != nil {
		rr.stop()
	}
	rr.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// small is a distinct small JPEG for original i.
func small(t *testing.T, i int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	for y := 0; y < 240; y++ {
		for x := 0; x < 320; x++ {
			img.Set(x, y, color.RGBA{uint8(x + i), uint8(y * i), uint8(i), 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// reconcileRun calls run as main does for server reconcile with args,

// putOriginals stores keys in the local directory dir as JPEG originals
// for a reconcile to find, the i-th made by img(t, i).
func putOriginals(t *testing.T, dir string, img func(*testing.T, int) []byte, keys ...string) {
	t.Helper()
	d, err := storage.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for i, k := range keys {
		if _, err := d.Put(t.Context(), k, img(t, i), storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
			t.Fatal(err)
		}
	}
}

// and returns its output.
func reconcileRun(ctx context.Context, env map[string]string, args ...string) (string, error) {
	var out bytes.Buffer
	err := run(ctx, append([]string{"server", "reconcile"}, args...), func(k string) string { return env[k] }, &out)
	return out.String(), err
}

// lastJSON reads the plan counts of --json's last line.
func lastJSON(t *testing.T, out string) map[string]int {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var m map[string]int
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("last line of %s: %v", out, err)
	}
	return m
}

var processedLine = regexp.MustCompile(`done: (\d+) processed`)

func processed(t *testing.T, out string) int {
	t.Helper()
	m := processedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no done line in %s", out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// The proof of issue 14: originals stored under one VARIANTS; one
// definition changed, one added, one removed; the dry run counts every
// original to regenerate and every retired variant; a run stopped partway
// and run again finishes without doing an original twice; afterwards
// every original has exactly the configured variants, with the current
// digests, and the callback got one signed signal per original.
func TestReconcileProof(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	const n = 300
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	rr := &readyReceiver{t: t, secret: []byte("ready-secret"), per: map[string]int{}}
	cb := httptest.NewServer(rr)
	defer cb.Close()
	env := map[string]string{
		"S3_BUCKET": bucket, "S3_ENDPOINT": srv.Endpoint, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": srv.Region, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		"API_KEYS": "k", "CONCURRENCY": "2", "LOG_LEVEL": "warn",
		"VARIANTS": "thumb:64x64:cover,medium:200x0,old:100x0",
	}
	st, err := storage.NewS3(storage.S3Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	err = pipelineEach(n, func(i int) error {
		_, err := st.Put(ctx, fmt.Sprintf("uploads/set/%03d.jpg", i), small(t, i), storage.PutOptions{ContentType: "image/jpeg"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The old definitions: every original created.
	out, err := reconcileRun(ctx, env, "--json")
	if err != nil || processed(t, out) != n {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if got := lastJSON(t, out); got["create"] != n || got["current"] != 0 {
		t.Fatalf("first plan %v", got)
	}

	// medium changed, large added, old removed; the callback on.
	env["VARIANTS"] = "thumb:64x64:cover,medium:150x0,large:240x0:webp"
	env["WEBHOOK_SECRETS"], env["READY_CALLBACK_URL"] = string(rr.secret), cb.URL
	out, err = reconcileRun(ctx, env, "--dry-run", "--json")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if got, want := lastJSON(t, out), map[string]int{"current": 0, "create": 0, "regenerate": n, "delete": n}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("dry run: %v, want %v\n%s", got, want, out)
	}
	if rr.total != 0 {
		t.Fatalf("the dry run made %d signals", rr.total)
	}
	// It says what it would read, and how long it would take: at the
	// measured throughput per CPU over CONCURRENCY's 2, or at --rate.
	var size int64
	for i := range n {
		size += int64(len(small(t, i)))
	}
	for _, c := range []struct {
		args []string
		rate float64
	}{{nil, 2 * measuredThroughput}, {[]string{"--rate", "2"}, 2}, {[]string{"--throughput", "0.5"}, 1}} {
		out, err := reconcileRun(ctx, env, append([]string{"--dry-run"}, c.args...)...)
		took := time.Duration(float64(n) / c.rate * float64(time.Second)).Round(time.Second)
		if want := fmt.Sprintf("(%s to read)", bytesText(size)); err != nil || !strings.Contains(out, want) {
			t.Errorf("dry run %v: %v, no %q in\n%s", c.args, err, want, out)
		}
		if want := fmt.Sprintf("about %s at %.1f originals/s", took, c.rate); !strings.Contains(out, want) {
			t.Errorf("dry run %v: no %q in\n%s", c.args, want, out)
		}
	}
	// With --keep-retired, the count is of what it would delete: none.
	out, err = reconcileRun(ctx, env, "--dry-run", "--json", "--keep-retired")
	if got := lastJSON(t, out); err != nil || got["regenerate"] != n || got["delete"] != 0 {
		t.Fatalf("dry run keeping retired variants: %v %v\n%s", got, err, out)
	}

	// Stopped (as by SIGINT) after 40 % of the signals, then run again.
	stopped, stop := context.WithCancel(ctx)
	rr.stopAfter, rr.stop = n*4/10, stop
	start := time.Now()
	out1, err := reconcileRun(stopped, env, "--json")
	if err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("stopped run: %v\n%s", err, out1)
	}
	p1 := processed(t, out1)
	if p1 < n*4/10 || p1 >= n {
		t.Fatalf("stopped run processed %d of %d\n%s", p1, n, out1)
	}
	out2, err := reconcileRun(ctx, env, "--json")
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, out2)
	}
	if got := lastJSON(t, out2); got["current"] != p1 || got["regenerate"] != n-p1 || got["delete"] != n-p1 {
		t.Errorf("resumed plan %v after %d done", got, p1)
	}
	if p2 := processed(t, out2); p1+p2 != n {
		t.Errorf("processed %d, then %d: %d originals done twice or never", p1, p2, p1+p2-n)
	}
	t.Logf("%d originals regenerated in %s: %.1f originals/s (stopped once)", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds())

	// Exactly the configured variants, with the current digests.
	// The variants as the server settles them (their default qualities
	// are part of their digests).
	cfg, err := config.Load(func(k string) string { return env[k] })
	settled, err := settle(cfg, config.Without(err, config.ErrNoAPIKeys))
	if err != nil {
		t.Fatal(err)
	}
	variants := settled.pipeline.Variants
	outs, err := st.List(ctx, "resized/", 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range outs {
		keys = append(keys, o.Key)
	}
	sort.Strings(keys)
	var want []string
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("set/%03d.jpg", i)
		want = append(want, "resized/_manifest/"+rel+".json", "resized/large/"+rel+".webp", "resized/medium/"+rel, "resized/thumb/"+rel)
	}
	sort.Strings(want)
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Fatalf("outputs: %d keys, want %d; first: %v", len(keys), len(want), keys[:min(8, len(keys))])
	}
	err = pipelineEach(len(keys), func(i int) error {
		k := keys[i]
		if strings.HasPrefix(k, "resized/_manifest/") {
			return nil
		}
		obj, err := st.Head(ctx, k)
		if err != nil {
			return err
		}
		name := strings.Split(k, "/")[1]
		for _, v := range variants {
			if v.Name == name && obj.Metadata[pipeline.MetaVariantDigest] != v.Digest() {
				return fmt.Errorf("%s: digest %q, want %q", k, obj.Metadata[pipeline.MetaVariantDigest], v.Digest())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	if len(rr.per) != n || rr.total != n {
		t.Errorf("%d signals for %d originals, want one for each of %d", rr.total, len(rr.per), n)
	}
	out, err = reconcileRun(ctx, env, "--dry-run", "--json")
	if got := lastJSON(t, out); err != nil || got["current"] != n || got["delete"] != 0 {
		t.Errorf("after: %v %v", got, err)
	}
}

// pipelineEach runs fn(0..n-1), eight at a time, and returns the first
// error.
func pipelineEach(n int, fn func(i int) error) error {
	sem := make(chan struct{}, 8)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		go func(i int) { defer func() { <-sem }(); errs <- fn(i) }(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// --enqueue sends each original to do to the event queue as the S3 event
// the forwarder takes, and does none of them itself.
func TestReconcileEnqueue(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	ctx := t.Context()
	st, env, q, queue := enqueueBucket(t, 0) // no API_KEYS: reconcile serves nothing
	bucket := env["S3_BUCKET"]
	etags := map[string]string{}
	keys := []string{"uploads/a.jpg", "uploads/with space+plus.jpg", "uploads/dir/b.jpg"}
	// Enough for batches of ten (SendMessageBatch's most) and one less.
	for i := range 22 {
		keys = append(keys, fmt.Sprintf("uploads/many/%02d.jpg", i))
	}
	for i, k := range keys {
		obj, err := st.Put(ctx, k, small(t, i), storage.PutOptions{ContentType: "image/jpeg"})
		if err != nil {
			t.Fatal(err)
		}
		etags[k] = strings.Trim(obj.ETag, `"`)
	}
	out, err := reconcileRun(ctx, env, "--enqueue", "--json")
	if err != nil || !strings.Contains(out, fmt.Sprintf("%d enqueued", len(keys))) {
		t.Fatalf("enqueue: %v\n%s", err, out)
	}
	got, messages := map[string]string{}, 0
	for {
		msgs, err := q.Receive(ctx, queue, 10, time.Second)
		if err != nil {
			t.Fatalf("receive: %v; have %v", err, got)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			ev, err := webhook.Parse([]byte(m.Body))
			if err != nil || len(ev.Records) != 1 || ev.Records[0].S3.Bucket.Name != bucket || ev.Records[0].Kind() != webhook.Created {
				t.Fatalf("message %s: %v", m.Body, err)
			}
			got[ev.Records[0].Key()] = strings.Trim(ev.Records[0].ETag(), `"`)
			messages++
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(etags) || messages != len(keys) {
		t.Errorf("%d events for %v, want one each for %v", messages, got, etags)
	}
	if outs, err := st.List(ctx, "resized/", 0); err != nil || len(outs) != 0 {
		t.Errorf("outputs made in process: %v %v", outs, err)
	}
}

// On the embedded default (a local directory), with its flags checked.
func TestReconcileLocal(t *testing.T) {
	ctx := t.Context()
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn", "VARIANTS": "thumb:32x32:cover,small:100x0"}
	putOriginals(t, env["DATA_DIR"], small, "uploads/a.jpg", "uploads/b/c.jpg")
	out, err := reconcileRun(ctx, env, "--json", "--rate", "50")
	if err != nil || lastJSON(t, out)["create"] != 2 || processed(t, out) != 2 {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
	out, err = reconcileRun(ctx, env, "--dry-run", "--json")
	if err != nil || lastJSON(t, out)["current"] != 2 || !strings.Contains(out, "2 originals: 2 current") {
		t.Fatalf("after: %v\n%s", err, out)
	}
	// The checks report their progress (here after every original but
	// the last, whose line is the plan's).
	out, err = reconcileRun(ctx, env, "--dry-run", "--progress", "1ns", "--check-concurrency", "1")
	if err != nil || !strings.Contains(out, "listed 2 originals and their outputs") || !strings.Contains(out, "checked: 1/2 (50%)") {
		t.Fatalf("progress of the checks: %v\n%s", err, out)
	}
	// The variants move behind a CDN: every manifest is written again,
	// with the CDN's URLs, and nothing else.
	env["VARIANTS_BASE_URL"] = "https://cdn.example.com/"
	out, err = reconcileRun(ctx, env, "--dry-run", "--json")
	if err != nil || lastJSON(t, out)["regenerate"] != 2 || !strings.Contains(out, "2 to regenerate (0 B to read), 2 of them only their manifest") {
		t.Fatalf("plan after VARIANTS_BASE_URL changed: %v\n%s", err, out)
	}
	if out, err = reconcileRun(ctx, env, "--json"); err != nil || processed(t, out) != 2 {
		t.Fatalf("reconcile after VARIANTS_BASE_URL changed: %v\n%s", err, out)
	}
	if out, err = reconcileRun(ctx, env, "--dry-run", "--json"); err != nil || lastJSON(t, out)["current"] != 2 {
		t.Fatalf("after the manifests: %v\n%s", err, out)
	}
	d, err := storage.NewDir(env["DATA_DIR"])
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	b, _, err := d.Get(ctx, "resized/_manifest/b/c.jpg.json", storage.GetOptions{})
	var m pipeline.Manifest
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil || m.Srcset != "https://cdn.example.com/resized/small/b/c.jpg 100w" {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	for _, args := range [][]string{{"--concurrency", "0"}, {"extra"}, {"--enqueue"}, {"--nope"}, {"--inventory", "s3://b/manifest.json"}} {
		if out, err := reconcileRun(ctx, env, args...); err == nil {
			t.Errorf("%v: accepted\n%s", args, out)
		}
	}
	if out, err := reconcileRun(ctx, env, "-h"); err != nil || !strings.Contains(out, "-dry-run") || !strings.Contains(out, "-keep-retired") || !strings.Contains(out, "-inventory MANIFEST") {
		t.Errorf("-h: %v\n%s", err, out)
	}
}

// With CloudFront, reconcile in this process settles what delivery
// derived from each original once it is done, as the webhook does (the
// rule is delivery's Settle, TestSettle): with the planned ETag and the
// result; not after a failure; and a failed settle fails the original.
func TestReconcileThenSettle(t *testing.T) {
	var settled []string
	var settleErr error
	settle := func(_ context.Context, key, etag string, res pipeline.Result) error {
		settled = append(settled, key+"@"+etag+":"+string(res.Status))
		return settleErr
	}
	run := func(_ context.Context, key, etag string) (pipeline.Result, error) {
		if key == "uploads/fails.jpg" {
			return pipeline.Result{}, errors.New("store down")
		}
		return pipeline.Result{Status: pipeline.StatusProcessed, ETag: `"v2"`}, nil
	}
	do := thenSettle(run, settle)
	for _, k := range []string{"uploads/new.jpg", "uploads/fails.jpg"} {
		_, err := do(t.Context(), pipeline.Task{Key: k, ETag: `"v1"`})
		if (err != nil) != (k == "uploads/fails.jpg") {
			t.Errorf("%s: %v", k, err)
		}
	}
	if got := strings.Join(settled, " "); got != `uploads/new.jpg@"v1":processed` {
		t.Errorf("settled %s", got)
	}
	settleErr = errors.New("cdn down")
	if _, err := do(t.Context(), pipeline.Task{Key: "uploads/new.jpg"}); !errors.Is(err, settleErr) {
		t.Errorf("a failed settle: %v", err)
	}
}

// --concurrency defaults to CONCURRENCY, or to enqueueConcurrency with
// --enqueue; given, it is taken as given, in both; its help names one
// default, not two.
func TestReconcileConcurrencyDefault(t *testing.T) {
	cfg := config.Config{Concurrency: 3, QueueSize: 24, EventQueueURL: "http://127.0.0.1:1/queue"}
	for _, c := range []struct {
		args []string
		want int
	}{
		{nil, 3},
		{[]string{"--enqueue"}, enqueueConcurrency},
		{[]string{"--concurrency", "7"}, 7},
		{[]string{"--enqueue", "--concurrency", "7"}, 7},
	} {
		f, err := parseReconcileFlags(c.args, cfg, io.Discard)
		if err != nil || f.concurrency != c.want {
			t.Errorf("%v: concurrency %d, %v; want %d", c.args, f.concurrency, err, c.want)
		}
	}
	var help strings.Builder
	if _, err := parseReconcileFlags([]string{"-h"}, cfg, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if line := regexp.MustCompile(`originals in hand at once.*`).FindString(help.String()); strings.Count(line, "default") != 1 || !strings.Contains(line, "here 3") {
		t.Errorf("help: %q", line)
	}
}

// An OUTPUT_PREFIX that does not end in "/" (the outputs "out-thumb/...",
// the manifests "out-_manifest/...") is one S3 takes, and so does the
// local directory: a reconcile there plans, makes and then finds current.
func TestReconcileOutputPrefixInsideAName(t *testing.T) {
	ctx := t.Context()
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn", "OUTPUT_PREFIX": "out-",
		"VARIANTS": "thumb:32x32:cover,small:100x0,old:60x0"}
	putOriginals(t, env["DATA_DIR"], func(t *testing.T, _ int) []byte { return small(t, 1) }, "uploads/a.jpg")
	if out, err := reconcileRun(ctx, env, "--json"); err != nil || lastJSON(t, out)["create"] != 1 || processed(t, out) != 1 {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
	env["VARIANTS"] = "thumb:32x32:cover,small:100x0"
	out, err := reconcileRun(ctx, env, "--json")
	if want := map[string]int{"current": 0, "create": 0, "regenerate": 1, "delete": 1}; err != nil || fmt.Sprint(lastJSON(t, out)) != fmt.Sprint(want) {
		t.Fatalf("after a variant removed: %v, want %v\n%s", err, want, out)
	}
	if out, err := reconcileRun(ctx, env, "--dry-run", "--json"); err != nil || lastJSON(t, out)["current"] != 1 {
		t.Fatalf("after: %v\n%s", err, out)
	}
}
