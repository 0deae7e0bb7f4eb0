package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/webhook"
)

const (
	e2eBucket = "photos"
	e2eSecret = "e2e-webhook-secret"
	e2eKey    = "e2e-api-key"
	e2eURLKey = "e2e-url-signing-key-0123456789abcdef"
)

// eventually retries check until it passes or the time is up.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// e2e is the service and a MinIO whose bucket notifications go to it.
type e2e struct {
	t      *testing.T
	env    map[string]string
	server *started
	minio  *s3test.Server
	s3     *s3.Client
}

// The whole S3-triggered flow with nothing faked: the service starts
// first, then MinIO with a webhook target pointing at it (with a queue
// directory, so that events sent while the service is down wait), and a
// notification on the bucket's input prefix. Dropping images into the
// bucket makes their variants, with no other call.
func TestS3EventsEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	minioAddr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	serverAddr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, env: map[string]string{
		"ADDR": serverAddr, "S3_BUCKET": e2eBucket, "S3_ENDPOINT": "http://" + minioAddr, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": s3test.Region, "AWS_ACCESS_KEY_ID": s3test.AccessKey, "AWS_SECRET_ACCESS_KEY": s3test.SecretKey,
		"API_KEYS": e2eKey, "WEBHOOK_SECRETS": e2eSecret, "URL_SIGNING_KEYS": e2eURLKey,
	}}
	// Besides the three variants the subtests check, one in each format the
	// service can write, those written only once enabled (JPEG XL) enabled,
	// for the privacy check: a format added to the table is covered by it.
	variants := []string{"thumb:200x200:cover", "medium:800x0", "small:120x0:webp"}
	enabled := slices.Clone(imageproc.DefaultInputFormats)
	var formats []imageproc.Format
	for _, f := range imageproc.OutputFormats {
		if !f.Writable(enabled) {
			enabled = append(enabled, f)
		}
		formats = append(formats, f)
		variants = append(variants, fmt.Sprintf("as-%s:120x0:%s", f, f))
	}
	var names []string
	for _, f := range enabled {
		names = append(names, f.String())
	}
	e.env["VARIANTS"], e.env["INPUT_FORMATS"] = strings.Join(variants, ","), strings.Join(names, ",")
	e.server = start(t, e.env)
	e.minio = s3test.New(t, minioAddr,
		"MINIO_NOTIFY_WEBHOOK_ENABLE_RESIZER=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_RESIZER=http://"+serverAddr+"/webhooks/s3",
		"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_RESIZER="+e2eSecret,
		"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_RESIZER="+t.TempDir(),
	)
	e.s3 = e.minio.Client()
	ctx := t.Context()
	if _, err := e.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e2eBucket)}); err != nil {
		t.Fatal(err)
	}
	// MinIO brings its notification targets up after it answers ready: the
	// target's ARN can be unknown for a moment.
	eventually(t, 30*time.Second, "bucket notification", func() error {
		_, err := e.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
			Bucket: aws.String(e2eBucket),
			NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
				QueueArn: aws.String("arn:minio:sqs::RESIZER:webhook"),
				Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
				Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{
					{Name: types.FilterRuleNamePrefix, Value: aws.String("uploads/")},
				}}},
			}}},
		})
		return err
	})

	t.Run("presigned upload makes its variants", func(t *testing.T) {
		key := e.presignedUpload("holiday/beach.jpg")
		e.waitVariants(key, "holiday/beach.jpg", 60*time.Second)
		// The outputs trigger nothing more: the object count settles and
		// exactly one record was processed.
		before := e.keys()
		time.Sleep(3 * time.Second)
		if after := e.keys(); strings.Join(before, ",") != strings.Join(after, ",") {
			t.Fatalf("objects kept changing: %v then %v", before, after)
		}
		if n := e.metric(`resizer_webhook_records_total{event="created",outcome="processed"}`); n != 1 {
			t.Fatalf("%v records processed, want 1", n)
		}
	})

	t.Run("variants carry none of the original's metadata", func(t *testing.T) {
		p3, err := os.ReadFile("../../testdata/p3.jpg")
		if err != nil {
			t.Fatal(err)
		}
		icc := imagetest.JPEGICC(p3)
		if len(icc) == 0 {
			t.Fatal("testdata/p3.jpg has no ICC profile")
		}
		// EXIF (GPS, Artist, MakerNote, orientation 6), XMP, IPTC, a
		// profile, a comment; 2560x1600 stored, 1600x2560 upright.
		original := imagetest.JPEG(imagetest.Photo(t), 6, icc)
		e.put("uploads/privacy/meta.jpg", original)
		m := e.waitManifest("privacy/meta.jpg", 60*time.Second)
		upright := map[string][2]int{"thumb": {200, 200}, "medium": {800, 1280}, "small": {120, 192}}
		for _, f := range formats {
			upright["as-"+f.String()] = [2]int{120, 192}
		}
		outs := map[string][]byte{}
		for _, v := range m.Variants {
			want, ok := upright[v.Name]
			if !ok {
				t.Fatalf("manifest names a variant %q not in VARIANTS", v.Name)
			}
			delete(upright, v.Name)
			b := e.get(v.Key)
			info := e.info(b)
			if v.Width != want[0] || v.Height != want[1] || info.Width != want[0] || info.Height != want[1] ||
				info.Orientation != 1 || info.Format != v.Format {
				t.Errorf("%s: manifest %dx%d %s, read back %dx%d %s orientation %d; want %dx%d upright",
					v.Key, v.Width, v.Height, v.Format, info.Width, info.Height, info.Format, info.Orientation, want[0], want[1])
			}
			outs[v.Key] = b
		}
		if len(upright) > 0 {
			t.Errorf("no variant made for %v", upright)
		}
		imagetest.CheckClean(t, outs)
	})

	t.Run("a redelivered event changes nothing and decodes nothing", func(t *testing.T) {
		head, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String("uploads/holiday/beach.jpg")})
		if err != nil {
			t.Fatal(err)
		}
		thumb := e.etag("resized/thumb/holiday/beach.jpg")
		decodes := e.metric(`resizer_image_process_seconds_count{format="jpeg"}`)
		for i := 0; i < 2; i++ {
			code, body := e.signedEvent("ObjectCreated:Put", "uploads/holiday/beach.jpg", aws.ToString(head.ETag))
			if code != 200 || !strings.Contains(body, `"skipped_up_to_date"`) {
				t.Fatalf("redelivery %d: %d %s", i, code, body)
			}
		}
		if e.etag("resized/thumb/holiday/beach.jpg") != thumb || e.metric(`resizer_image_process_seconds_count{format="jpeg"}`) != decodes {
			t.Fatal("a redelivery rewrote or decoded")
		}
	})

	t.Run("keys with spaces, + and non-ASCII", func(t *testing.T) {
		rel := "trip/a b+c ünï 写真.jpg"
		key := e.presignedUpload(rel)
		e.waitVariants(key, rel, 60*time.Second)
	})

	t.Run("replacing and deleting an original removes its derived images", func(t *testing.T) {
		const key = "uploads/deliver/cat.jpg"
		path, err := imageurl.NewSigner(e2eURLKey).Path(imageurl.Request{Key: key, Options: url.Values{"width": {"100"}}})
		if err != nil {
			t.Fatal(err)
		}
		e.put(key, imagetest.Photo(t))
		e.waitVariants(key, "deliver/cat.jpg", 60*time.Second)
		cached := func(want int) {
			t.Helper()
			eventually(t, 30*time.Second, fmt.Sprintf("%d derived images", want), func() error {
				out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e2eBucket), Prefix: aws.String("resized/_cache/" + key + "/")})
				if err != nil {
					return err
				}
				if n := len(out.Contents); n != want {
					return fmt.Errorf("%d derived images", n)
				}
				return nil
			})
		}
		get := func(wantWidth int) {
			t.Helper()
			resp, err := http.Get(e.server.url + path)
			if err != nil {
				t.Fatal(err)
			}
			cfg, _, err := image.DecodeConfig(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || err != nil || cfg.Width != wantWidth {
				t.Fatalf("%d: %d wide (%v)", resp.StatusCode, cfg.Width, err)
			}
		}
		get(100)
		cached(1)
		// Another original under the same key: its event purges what was
		// derived from the first.
		another := imagetest.JPEG(imagetest.Photo(t), 1, nil) // the same pixels, other bytes
		e.put(key, another)
		cached(0)
		get(100)
		cached(1)
		if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
		cached(0)
		resp, err := http.Get(e.server.url + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("after the deletion: %d", resp.StatusCode)
		}
	})

	t.Run("deleting the original deletes its variants", func(t *testing.T) {
		if _, err := e.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String("uploads/holiday/beach.jpg")}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "variants deleted", func() error {
			for _, k := range []string{"resized/thumb/holiday/beach.jpg", "resized/medium/holiday/beach.jpg"} {
				if _, err := e.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(k)}); err == nil {
					return fmt.Errorf("%s still there", k)
				}
			}
			return nil
		})
	})

	t.Run("a text file named .jpg is rejected once, not retried", func(t *testing.T) {
		e.put("uploads/fake.jpg", []byte("this is text, not a photo"))
		eventually(t, 30*time.Second, "rejection", func() error {
			if n := e.metric(`resizer_webhook_records_total{event="created",outcome="rejected"}`); n != 1 {
				return fmt.Errorf("%v rejections", n)
			}
			return nil
		})
		time.Sleep(3 * time.Second)
		if n := e.metric(`resizer_webhook_records_total{event="created",outcome="rejected"}`); n != 1 {
			t.Fatalf("%v rejections: the sender retried", n)
		}
	})

	t.Run("nothing is lost while the service or MinIO is down", func(t *testing.T) {
		// The service goes away; an image arrives; MinIO keeps its event.
		e.server.cancel()
		if err := <-e.server.done; err != nil {
			t.Fatal(err)
		}
		e.server.done <- nil // for start's cleanup
		etag := e.put("uploads/late.jpg", imagetest.Photo(t))
		// Then MinIO goes down too, and the service comes back: an event
		// for an object it cannot read now is a 503, to be retried.
		e.minio.Stop()
		e.server = start(t, e.env)
		code, body := e.signedEvent("ObjectCreated:Put", "uploads/late.jpg", etag)
		if code != 503 || !strings.Contains(body, "storage-unavailable") {
			t.Fatalf("with MinIO down: %d %s", code, body)
		}
		// MinIO returns and delivers what it kept: the work completes.
		e.minio.Restart(t)
		e.waitVariants("uploads/late.jpg", "late.jpg", 90*time.Second)
	})
}

// presignedUpload uploads the test photo as a client would: ask the
// service for a presigned POST, then send the form to MinIO.
func (e *e2e) presignedUpload(rel string) string {
	t := e.t
	data := imagetest.Photo(t)
	req, _ := json.Marshal(map[string]any{"content_type": "image/jpeg", "size": len(data), "key": rel})
	r, _ := http.NewRequest("POST", e.server.url+"/uploads/presign", bytes.NewReader(req))
	r.Header.Set("Authorization", "Bearer "+e2eKey)
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		URL    string            `json:"url"`
		Fields map[string]string `json:"fields"`
		Key    string            `json:"key"`
	}
	json.NewDecoder(resp.Body).Decode(&p)
	resp.Body.Close()
	if resp.StatusCode != 200 || p.Fields == nil {
		t.Fatalf("presign: %d %+v", resp.StatusCode, p)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	for k, v := range p.Fields {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "photo.jpg")
	fw.Write(data)
	mw.Close()
	up, err := http.Post(p.URL, mw.FormDataContentType(), &form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(up.Body)
	up.Body.Close()
	if up.StatusCode/100 != 2 {
		t.Fatalf("form upload: %d %s", up.StatusCode, b)
	}
	return p.Key
}

// waitVariants waits until both variants of key exist at their sizes.
func (e *e2e) waitVariants(key, rel string, within time.Duration) {
	e.t.Helper()
	want := map[string][2]int{"resized/thumb/" + rel: {200, 200}, "resized/medium/" + rel: {800, 500}}
	eventually(e.t, within, "variants of "+key, func() error {
		for k, wh := range want {
			out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(k)})
			if err != nil {
				return fmt.Errorf("%s: %v", k, err)
			}
			cfg, _, err := image.DecodeConfig(out.Body)
			out.Body.Close()
			if err != nil || cfg.Width != wh[0] || cfg.Height != wh[1] {
				return fmt.Errorf("%s: %dx%d %v", k, cfg.Width, cfg.Height, err)
			}
			if src, _ := url.PathUnescape(out.Metadata["source-key"]); src != key {
				return fmt.Errorf("%s: source-key %q", k, out.Metadata["source-key"])
			}
		}
		// The manifest is written last: until it is there, the original's
		// processing is still under way.
		m := "resized/" + pipeline.ManifestSegment + rel + ".json"
		if _, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(m)}); err != nil {
			return fmt.Errorf("%s: %v", m, err)
		}
		return nil
	})
}

// waitManifest waits for the manifest of the original uploads/rel, which
// is written after its variants, and returns it.
func (e *e2e) waitManifest(rel string, within time.Duration) pipeline.Manifest {
	e.t.Helper()
	var m pipeline.Manifest
	eventually(e.t, within, "manifest of "+rel, func() error {
		b, err := e.read("resized/" + pipeline.ManifestSegment + rel + ".json")
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &m)
	})
	return m
}

// get returns the object key, failing the test when it cannot be read.
func (e *e2e) get(key string) []byte {
	e.t.Helper()
	b, err := e.read(key)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *e2e) read(key string) ([]byte, error) {
	out, err := e.s3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return b, nil
}

// info is what the service's POST /info reads of an image.
func (e *e2e) info(b []byte) (info struct {
	Format                     string
	Width, Height, Orientation int
}) {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.server.url+"/info", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+e2eKey)
	resp, body := contract.Do(e.t, nil, req)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &info) != nil {
		e.t.Fatalf("POST /info: %d %s", resp.StatusCode, body)
	}
	return info
}

func (e *e2e) put(key string, data []byte) string {
	out, err := e.s3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(key), Body: bytes.NewReader(data)})
	if err != nil {
		e.t.Fatal(err)
	}
	return aws.ToString(out.ETag)
}

func (e *e2e) etag(key string) string {
	out, err := e.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(e2eBucket), Key: aws.String(key)})
	if err != nil {
		e.t.Fatalf("%s: %v", key, err)
	}
	return aws.ToString(out.ETag)
}

func (e *e2e) keys() []string {
	out, err := e.s3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(e2eBucket)})
	if err != nil {
		e.t.Fatal(err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, aws.ToString(o.Key)+"@"+aws.ToString(o.ETag))
	}
	sort.Strings(ks)
	return ks
}

// signedEvent posts an event as the Lambda forwarder would.
func (e *e2e) signedEvent(name, key, etag string) (int, string) {
	rec := map[string]any{"eventSource": "aws:s3", "eventName": name, "eventTime": time.Now().UTC(),
		"s3": map[string]any{"bucket": map[string]any{"name": e2eBucket},
			"object": map[string]any{"key": url.QueryEscape(key), "eTag": strings.Trim(etag, `"`)}}}
	body, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	r, _ := http.NewRequest("POST", e.server.url+"/webhooks/s3", bytes.NewReader(body))
	r.Header.Set(webhook.Header, webhook.Sign([]byte(e2eSecret), body, time.Now()))
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}

// metric reads one series of the service's /metrics; 0 when absent.
func (e *e2e) metric(series string) float64 {
	resp, err := http.Get(e.server.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}
