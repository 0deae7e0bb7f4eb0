package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/webhook"
)

// During a rotation the secret holds "new,old": the function signs with
// both, so a service that knows either accepts it.
func TestSetupSignsWithEverySecret(t *testing.T) {
	var verified error = io.EOF
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sig := r.Header.Get(webhook.Header)
		verified = errors.Join(webhook.Verify(sig, b, [][]byte{[]byte("new-secret")}, time.Now()),
			webhook.Verify(sig, b, [][]byte{[]byte("old-secret")}, time.Now()))
	}))
	defer srv.Close()
	env := map[string]string{"RESIZER_URL": srv.URL, "WEBHOOK_SECRET": "new-secret, old-secret"}
	var logs strings.Builder
	h, err := setup(context.Background(), func(k string) string { return env[k] }, &logs)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
		"s3": map[string]any{"bucket": map[string]any{"name": "b"}, "object": map[string]any{"key": "uploads/x.jpg"}}}}})
	if _, err := h(context.Background(), ev); err != nil || verified != nil {
		t.Fatalf("handler: %v; signature: %v", err, verified)
	}
	if strings.Contains(logs.String(), "secret") && strings.Contains(logs.String(), "new-secret") {
		t.Fatal("the secret reached the log")
	}
}

func TestSetupRefusesBadConfig(t *testing.T) {
	_, err := setup(context.Background(), func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "RESIZER_URL") {
		t.Fatalf("err = %v", err)
	}
}

// With RESIZER_CONNECT_TO the function dials the internal load balancer
// but speaks to it under the service's name: TLS verifies the certificate
// for that name, and the Host header carries it.
func TestTransportConnectsElsewhereUnderTheSameName(t *testing.T) {
	var host string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { host = r.Host }))
	defer srv.Close()
	base := srv.Client().Transport.(*http.Transport) // trusts the test certificate, made for example.com
	addr := strings.TrimPrefix(srv.URL, "https://")
	resp, err := (&http.Client{Transport: transport(base, addr)}).Get("https://example.com/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if host != "example.com" {
		t.Fatalf("Host %q", host)
	}
	// A name the certificate does not hold fails, connect-to or not.
	if _, err := (&http.Client{Transport: transport(base, addr)}).Get("https://resizer.invalid/healthz"); err == nil {
		t.Fatal("a certificate for another name was accepted")
	}
}

// A cold start that cannot read its secret (Secrets Manager unreachable
// from the VPC, or answering errors) fails the start, naming the secret,
// within Lambda's 10 s for a start: the batch then comes back whole after
// the visibility timeout, and no handler runs that could acknowledge a
// message it never delivered.
func TestSetupFailsWithoutItsSecret(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(503)
		io.WriteString(w, `{"__type":"ServiceUnavailable","message":"try later"}`)
	}))
	defer failing.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for name, endpoint := range map[string]string{"answering 503": failing.URL, "unreachable": closed.URL} {
		t.Setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint)
		t.Setenv("AWS_REGION", "us-east-1")
		t.Setenv("AWS_ACCESS_KEY_ID", "forwarder")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "forwarder-secret-key")
		env := map[string]string{"RESIZER_URL": "http://127.0.0.1:1", "WEBHOOK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:webhook-Ab12Cd"}
		start := time.Now()
		h, err := setup(context.Background(), func(k string) string { return env[k] }, io.Discard)
		if err == nil || h != nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET_ARN") {
			t.Errorf("%s: handler %v, err %v; want no handler and an error naming WEBHOOK_SECRET_ARN", name, h != nil, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: failed after %v, past Lambda's 10 s for a start", name, d)
		}
	}
}
