package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// A second server on the DATA_DIR of a running one is refused at start,
// before it touches the first one's uploads under way; once the first has
// stopped, a server starts there again.
func TestRunRefusesASecondServerOnDataDir(t *testing.T) {
	dir := t.TempDir()
	first := start(t, map[string]string{"DATA_DIR": dir})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env := map[string]string{"DATA_DIR": dir, "ADDR": "127.0.0.1:0", "LOG_LEVEL": "warn"}
	err := run(ctx, []string{"server"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another server") {
		t.Fatalf("a second server on one DATA_DIR: %v, want a refusal", err)
	}
	if ctx.Err() != nil {
		t.Fatal("the second server served until it was stopped")
	}
	first.cancel()
	<-first.done
	first.done <- nil // for start's cleanup
	start(t, map[string]string{"DATA_DIR": dir})
}
