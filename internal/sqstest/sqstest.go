// Package sqstest runs a real SQS- and SNS-compatible server (goaws) on
// 127.0.0.1 for the tests of the queue between S3 and the forwarder, talks
// to it over the SQS and SNS query APIs, and plays Lambda's event source
// mapping for SQS (see Mapping), which no emulator provides. It is
// imported by tests only; goaws is a separate binary that
// scripts/tools.sh builds, never linked into resizer.
package sqstest

import (
	"bufio"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/s3test"
)

// Server is a running goaws.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	dir      string
	client   *http.Client
}

// Binary returns the goaws binary: $GOAWS_BIN, else the one
// scripts/tools.sh builds into the cache for the version that
// scripts/goaws/go.mod pins.
func Binary() (string, error) {
	if p := os.Getenv("GOAWS_BIN"); p != "" {
		return p, nil
	}
	_, file, _, _ := runtime.Caller(0)
	mod := filepath.Join(filepath.Dir(file), "..", "..", "scripts", "goaws", "go.mod")
	version, err := pinned(mod)
	if err != nil {
		return "", err
	}
	cache := os.Getenv("RESIZER_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(base, "resizer")
	}
	p := filepath.Join(cache, "goaws-"+version, "goaws")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no goaws binary at %s: run scripts/tools.sh goaws (make test does) or set GOAWS_BIN", p)
	}
	return p, nil
}

// pinned reads goaws' version from the go.mod that builds it.
func pinned(mod string) (string, error) {
	f, err := os.Open(mod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		for i := 0; i+1 < len(fs); i++ {
			if fs[i] == "github.com/Admiral-Piett/goaws" {
				return fs[i+1], nil
			}
		}
	}
	return "", fmt.Errorf("%s: no goaws version", mod)
}

// Start runs a goaws of the test's own, stopped when the test ends. A
// missing binary fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("sqstest: %v", err)
	}
	addr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	dir := t.TempDir()
	// No Region: goaws would put it in front of the host of queue URLs.
	conf := fmt.Sprintf("Local:\n  Host: 127.0.0.1\n  Port: %q\n  AccountId: %q\n  LogToFile: false\n", port, Account)
	if err := os.WriteFile(filepath.Join(dir, "goaws.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "goaws.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", filepath.Join(dir, "goaws.yaml"))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("sqstest: start %s: %v", bin, err)
	}
	s := &Server{Endpoint: "http://" + addr, dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logs.Close()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := s.client.Get(s.Endpoint + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sqstest: goaws not ready within 10s: %s", s.Logs())
		}
	}
}

// Account is the account id in the server's ARNs and queue URLs.
const Account = "100010001000"

// Logs returns what goaws has printed so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "goaws.log"))
	return string(b)
}

// call posts one query-API action and decodes its XML answer into out.
func (s *Server) call(ctx context.Context, action string, params url.Values, out any) error {
	params.Set("Action", action)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Endpoint+"/", strings.NewReader(params.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", action, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := xml.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s: %w: %s", action, err, b)
	}
	return nil
}

// Queue is a queue of the server.
type Queue struct {
	Name, URL, ARN string
}

// CreateQueue makes a standard queue with the given visibility timeout.
func (s *Server) CreateQueue(ctx context.Context, name string, visibility time.Duration) (Queue, error) {
	var out struct {
		URL string `xml:"CreateQueueResult>QueueUrl"`
	}
	err := s.call(ctx, "CreateQueue", url.Values{"QueueName": {name},
		"Attribute.1.Name": {"VisibilityTimeout"}, "Attribute.1.Value": {strconv.Itoa(int(visibility / time.Second))}}, &out)
	if err != nil {
		return Queue{}, err
	}
	// goaws' queue ARNs have an empty region, as its queue URLs have none.
	return Queue{Name: name, URL: out.URL, ARN: "arn:aws:sqs::" + Account + ":" + name}, nil
}

// Message is a received message.
type Message struct {
	ID            string `xml:"MessageId"`
	ReceiptHandle string `xml:"ReceiptHandle"`
	MD5OfBody     string `xml:"MD5OfBody"`
	Body          string `xml:"Body"`
}

// Send puts bodies into q, ten to a request.
func (s *Server) Send(ctx context.Context, q Queue, bodies ...string) error {
	for len(bodies) > 0 {
		n := min(10, len(bodies))
		p := url.Values{"QueueUrl": {q.URL}}
		for i, b := range bodies[:n] {
			k := fmt.Sprintf("SendMessageBatchRequestEntry.%d.", i+1)
			p.Set(k+"Id", strconv.Itoa(i))
			p.Set(k+"MessageBody", b)
		}
		var out struct {
			Failed []struct {
				ID, Message string
			} `xml:"SendMessageBatchResult>BatchResultErrorEntry"`
		}
		if err := s.call(ctx, "SendMessageBatch", p, &out); err != nil {
			return err
		}
		if len(out.Failed) > 0 {
			return fmt.Errorf("SendMessageBatch: %d failed: %v", len(out.Failed), out.Failed)
		}
		bodies = bodies[n:]
	}
	return nil
}

// Receive takes up to max visible messages from q, waiting up to wait for
// the first.
func (s *Server) Receive(ctx context.Context, q Queue, max int, wait time.Duration) ([]Message, error) {
	var out struct {
		Messages []Message `xml:"ReceiveMessageResult>Message"`
	}
	err := s.call(ctx, "ReceiveMessage", url.Values{"QueueUrl": {q.URL}, "MaxNumberOfMessages": {strconv.Itoa(max)},
		"WaitTimeSeconds": {strconv.Itoa(int(wait / time.Second))}}, &out)
	return out.Messages, err
}

// Delete removes received messages from q by their receipt handles.
func (s *Server) Delete(ctx context.Context, q Queue, handles ...string) error {
	for _, h := range handles {
		if err := s.call(ctx, "DeleteMessage", url.Values{"QueueUrl": {q.URL}, "ReceiptHandle": {h}}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Count returns how many messages q holds, in flight or not.
func (s *Server) Count(ctx context.Context, q Queue) (int, error) {
	var out struct {
		Attrs []struct {
			Name, Value string
		} `xml:"GetQueueAttributesResult>Attribute"`
	}
	if err := s.call(ctx, "GetQueueAttributes", url.Values{"QueueUrl": {q.URL}, "AttributeName.1": {"ApproximateNumberOfMessages"}}, &out); err != nil {
		return 0, err
	}
	for _, a := range out.Attrs {
		if a.Name == "ApproximateNumberOfMessages" {
			return strconv.Atoi(a.Value)
		}
	}
	return 0, fmt.Errorf("GetQueueAttributes: no ApproximateNumberOfMessages")
}

// CreateTopic makes an SNS topic and returns its ARN.
func (s *Server) CreateTopic(ctx context.Context, name string) (string, error) {
	var out struct {
		ARN string `xml:"CreateTopicResult>TopicArn"`
	}
	err := s.call(ctx, "CreateTopic", url.Values{"Name": {name}}, &out)
	return out.ARN, err
}

// Subscribe delivers the topic's messages to q, in SNS' JSON envelope
// (not raw), as a queue subscribed to a topic gets them by default.
func (s *Server) Subscribe(ctx context.Context, topicARN string, q Queue) error {
	return s.call(ctx, "Subscribe", url.Values{"TopicArn": {topicARN}, "Protocol": {"sqs"}, "Endpoint": {q.ARN}}, nil)
}

// Publish sends message to the topic.
func (s *Server) Publish(ctx context.Context, topicARN, subject, message string) error {
	return s.call(ctx, "Publish", url.Values{"TopicArn": {topicARN}, "Subject": {subject}, "Message": {message}}, nil)
}

// Move moves every message of from into to, as a redrive of a dead-letter
// queue back to its source does (SQS' StartMessageMoveTask, which goaws
// lacks), and returns how many it moved.
func (s *Server) Move(ctx context.Context, from, to Queue) (int, error) {
	moved := 0
	for {
		msgs, err := s.Receive(ctx, from, 10, 0)
		if err != nil || len(msgs) == 0 {
			return moved, err
		}
		for _, m := range msgs {
			if err := s.Send(ctx, to, m.Body); err != nil {
				return moved, err
			}
			if err := s.Delete(ctx, from, m.ReceiptHandle); err != nil {
				return moved, err
			}
			moved++
		}
	}
}
