package main

import (
	"bytes"
	"io"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
)

// The short form of scripts/overload.sh: far more requests at once than
// the gate admits. The service sheds the excess at once with Retry-After,
// answers every admitted request, and never fails with a 500 or by timing
// out. The excess is 503 (every place taken) or, the requests all coming
// from one client, 429: its MAX_PER_CLIENT is by default the number of
// places, and a request reading its body holds no place but counts.
func TestOverloadSheds(t *testing.T) {
	s := start(t, map[string]string{"CONCURRENCY": "1", "QUEUE_SIZE": "2", "QUEUE_TIMEOUT": "2s"})
	body := imagetest.Photo(t)
	const clients = 24
	type result struct {
		code       int
		retryAfter string
		took       time.Duration
		err        error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 30 * time.Second}
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			start := time.Now()
			resp, err := client.Post(s.url+"/resize?width=800", "image/jpeg", bytes.NewReader(body))
			if err != nil {
				results[i] = result{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results[i] = result{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
		}(i)
	}
	wg.Wait()
	var ok, shed int
	var accepted []time.Duration
	for _, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("request failed: %v", r.err)
		case r.code == 200:
			ok++
			accepted = append(accepted, r.took)
		case (r.code == 503 || r.code == 429) && r.retryAfter != "":
			shed++
		default:
			t.Errorf("status %d (Retry-After %q)", r.code, r.retryAfter)
		}
	}
	sort.Slice(accepted, func(i, j int) bool { return accepted[i] < accepted[j] })
	t.Logf("%d answered, %d shed; slowest accepted %v", ok, shed, accepted[len(accepted)-1])
	if ok < 3 || shed == 0 {
		t.Fatalf("%d answered and %d shed: want both", ok, shed)
	}
	// An admitted request waits at most QUEUE_TIMEOUT and then works.
	if slowest := accepted[len(accepted)-1]; slowest > 10*time.Second {
		t.Fatalf("an accepted request took %v", slowest)
	}
	// And the service is itself again afterwards.
	resp, err := http.Post(s.url+"/resize?width=100", "image/jpeg", bytes.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the burst: %v %v", resp, err)
	}
	resp.Body.Close()
}
