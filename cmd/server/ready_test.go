package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/pipeline"
)

// The ready signal on an EventBridge bus, as PutEvents sends it: signed
// by IAM, one entry whose detail is the callback's body. The bus here is
// a stand-in that checks the request and answers as EventBridge does.
func TestReadyBus(t *testing.T) {
	refuse := false
	var got struct {
		Entries []struct{ EventBusName, Source, DetailType, Detail string }
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" ||
			!strings.Contains(r.Header.Get("Authorization"), "/us-east-1/events/aws4_request") {
			t.Errorf("request %v", r.Header)
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if refuse {
			io.WriteString(w, `{"FailedEntryCount":1,"Entries":[{"ErrorCode":"AccessDeniedException","ErrorMessage":"not allowed"}]}`)
			return
		}
		io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`)
	}))
	defer srv.Close()
	env := map[string]string{"READY_EVENT_BUS": "photos-bus", "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret"}
	s, err := settle(config.Load(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	s, err = withReadyBus(t.Context(), s, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	if err != nil {
		t.Fatal(err)
	}
	m := pipeline.Manifest{Key: "uploads/a.jpg", ETag: `"abc"`, Srcset: "x 100w"}
	if err := s.pipeline.Ready.Ready(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	var detail readyEvent
	if len(got.Entries) != 1 || got.Entries[0].EventBusName != "photos-bus" || got.Entries[0].Source != "resizer" ||
		got.Entries[0].DetailType != "Variants Ready" || json.Unmarshal([]byte(got.Entries[0].Detail), &detail) != nil ||
		detail.Key != m.Key || detail.Manifest == nil || detail.Manifest.Srcset != m.Srcset {
		t.Fatalf("entries %+v", got.Entries)
	}
	refuse = true
	if err := s.pipeline.Ready.Ready(t.Context(), m); err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
		t.Fatalf("refused entry: %v", err)
	}
}

// With both targets set, a callback receiver that does not answer keeps
// the bus from nothing: each gets the whole of the signal's time. Told in
// turn, the callback's tries took all of it, and the bus was then put to
// with a context already ended, every time.
func TestReadyBusBesideAStalledCallback(t *testing.T) {
	entries := make(chan string, 1)
	bus := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		entries <- string(body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`)
	}))
	defer bus.Close()
	stop := make(chan struct{})
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // no answer while the signal lasts
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	defer receiver.Close()
	defer close(stop)
	env := map[string]string{"READY_EVENT_BUS": "photos-bus", "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret",
		"READY_CALLBACK_URL": receiver.URL + "/ready", "READY_CALLBACK_SECRETS": "callback-secret"}
	s, err := settle(config.Load(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	s, err = withReadyBus(t.Context(), s, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(bus.URL) })
	if err != nil {
		t.Fatal(err)
	}
	// The pipeline bounds a signal so (readyTimeout, 15 s); shorter here.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	err = s.pipeline.Ready.Ready(ctx, pipeline.Manifest{Key: "uploads/a.jpg", ETag: `"abc"`})
	if err == nil || strings.Contains(err.Error(), "photos-bus") {
		t.Errorf("error %v: want the callback's alone", err)
	}
	select {
	case body := <-entries:
		if !strings.Contains(body, "uploads/a.jpg") {
			t.Errorf("entry %s", body)
		}
	default:
		t.Error("the bus got no event: the stalled callback took the whole signal's time")
	}
}
