package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/s3test"
)

func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// daemon starts a program that runs until the test ends.
func daemon(t *testing.T, bin string, env []string, args ...string) *logbuf.Buffer {
	t.Helper()
	out := &logbuf.Buffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	return out
}

func waitHTTP(t *testing.T, url string, logs *logbuf.Buffer) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s does not answer: %s", url, logs)
}

// The forwarder as AWS runs it: the bootstrap binary under the Lambda
// Runtime Interface Emulator, invoked with real S3 and SQS events, posting
// to the real service, which writes the variants into MinIO.
func TestUnderLambdaEmulator(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	rie := rieBinary(t)
	bootstrap, server := binaries(t)

	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	serverAddr, _ := s3test.FreeAddr()
	slog := daemon(t, server, []string{"ADDR=" + serverAddr, "S3_BUCKET=" + bucket, "S3_ENDPOINT=" + srv.Endpoint,
		"S3_FORCE_PATH_STYLE=true", "AWS_REGION=" + s3test.Region, "AWS_ACCESS_KEY_ID=" + s3test.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s3test.SecretKey, "API_KEYS=k", "WEBHOOK_SECRETS=rie-secret", "VARIANTS=small:320x0"})
	waitHTTP(t, "http://"+serverAddr+"/healthz", slog)

	// Always on 127.0.0.1: the emulator's default is 0.0.0.0:8080.
	rieAddr, _ := s3test.FreeAddr()
	apiAddr, _ := s3test.FreeAddr()
	rlog := daemon(t, rie, []string{"RESIZER_URL=http://" + serverAddr, "WEBHOOK_SECRET=rie-secret",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=30"},
		"--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr, bootstrap)
	invokeURL := "http://" + rieAddr + "/2015-03-31/functions/function/invocations"
	waitHTTP(t, "http://"+rieAddr+"/", rlog)

	client := srv.Client()
	photo, err := os.ReadFile("../../testdata/ladybird.jpg")
	if err != nil {
		t.Fatal(err)
	}
	put := func(key string) string {
		out, err := client.PutObject(t.Context(), &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(photo)})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(aws.ToString(out.ETag), `"`)
	}
	record := func(key, etag string) map[string]any {
		return map[string]any{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
			"eventTime": time.Now().UTC().Format(time.RFC3339), "eventName": "ObjectCreated:Put",
			"s3": map[string]any{"bucket": map[string]any{"name": bucket},
				"object": map[string]any{"key": strings.ReplaceAll(key, " ", "+"), "size": len(photo), "eTag": etag}}}
	}
	// One invocation at a time: the emulator serves one.
	invoke := func(event any) string {
		b, _ := json.Marshal(event)
		resp, err := http.Post(invokeURL, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return string(out)
	}
	small := func(key string) error {
		out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: aws.String(key)})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		cfg, _, err := image.DecodeConfig(out.Body)
		if err != nil || cfg.Width != 320 || cfg.Height != 200 {
			return fmt.Errorf("%s: %dx%d %v", key, cfg.Width, cfg.Height, err)
		}
		return nil
	}

	// A direct S3 notification.
	etag := put("uploads/direct shot.jpg")
	if out := invoke(map[string]any{"Records": []any{record("uploads/direct shot.jpg", etag)}}); out != "null" {
		t.Fatalf("direct invocation answered %s\nemulator: %s", out, rlog)
	}
	if err := small("resized/small/direct shot.jpg"); err != nil {
		t.Fatalf("after the direct event: %v\nservice: %s", err, slog)
	}

	// An SQS batch: one good message, one poison.
	etag = put("uploads/queued.jpg")
	good, _ := json.Marshal(map[string]any{"Records": []any{record("uploads/queued.jpg", etag)}})
	batch := map[string]any{"Records": []any{
		map[string]any{"messageId": "good-1", "eventSource": "aws:sqs", "body": string(good)},
		map[string]any{"messageId": "poison-2", "eventSource": "aws:sqs", "body": "{\"Records\": 7}"},
	}}
	out := invoke(batch)
	if out != `{"batchItemFailures":[{"itemIdentifier":"poison-2"}]}` {
		t.Fatalf("batch answered %s\nemulator: %s", out, rlog)
	}
	if err := small("resized/small/queued.jpg"); err != nil {
		t.Fatalf("after the SQS batch: %v", err)
	}
	if strings.Contains(rlog.String(), "rie-secret") {
		t.Fatal("the secret reached the function's log")
	}
}

func mustCache(t *testing.T) string {
	if c := os.Getenv("RESIZER_CACHE"); c != "" {
		return c
	}
	base, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(base, "resizer")
}
