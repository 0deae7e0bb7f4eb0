package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// Thousands of keys finished at start are a bounded log: the first ones
// named, then how many more.
func TestLogRecoveredIsBounded(t *testing.T) {
	var buf bytes.Buffer
	done := make([]string, 3000)
	for i := range done {
		done[i] = fmt.Sprintf("uploads/k%d.jpg", i)
	}
	logRecovered(zerolog.New(&buf), done, nil)
	lines := strings.Count(buf.String(), "\n")
	if lines > maxRecoveredLogged+1 || !strings.Contains(buf.String(), `"more":2980`) {
		t.Errorf("%d lines for %d keys:\n%.400s", lines, len(done), buf.String())
	}
}
