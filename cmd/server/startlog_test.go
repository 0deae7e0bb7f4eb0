package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/storage"
)

// What the start does before it serves is logged like the rest: an
// upload that a crash cut short is finished then, and a ready signal
// that its receiver refuses is logged ("ready signal not delivered"), as
// it is when the same run follows an upload.
func TestStartLogsTheRunsItFinishes(t *testing.T) {
	var refused atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refused.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer receiver.Close()
	dir := t.TempDir()
	d, err := storage.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	photo := imagetest.Photo(t)
	if _, err := d.Put(context.Background(), "uploads/cut.jpg", photo, storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.BeginUpload("uploads/cut.jpg", photo); err != nil {
		t.Fatal(err)
	}
	d.Close()
	s := start(t, map[string]string{"DATA_DIR": dir, "VARIANTS": "thumb:100x100", "READY_CALLBACK_URL": receiver.URL,
		"READY_CALLBACK_SECRETS": "callback-secret"})
	if refused.Load() != 1 {
		t.Fatalf("the receiver was called %d times, want 1", refused.Load())
	}
	logs := s.logs.String()
	if !strings.Contains(logs, `"ready signal not delivered"`) || !strings.Contains(logs, `"key":"uploads/cut.jpg"`) {
		t.Fatalf("the refused signal not logged:\n%s", logs)
	}
}
