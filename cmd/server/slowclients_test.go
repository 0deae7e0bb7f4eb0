package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
)

// Clients that send their bodies a byte a second, more of them than the
// gate has places (CONCURRENCY 2 + QUEUE_SIZE 16), do not shut others out:
// a body takes a processing place only once it is complete, so a normal
// request is served at once while they are connected. The slow ones are
// cut with 408 by MIN_BODY_RATE after their grace, and those over
// MAX_PER_CLIENT (per address, per API key) are refused at once with 429.
func TestSlowClientsDoNotStarve(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	const slowClients = 24
	xff := func(i int) string { return fmt.Sprintf("X-Forwarded-For: 203.0.113.%d", i+1) }
	tests := []struct {
		name   string
		env    map[string]string
		slow   func(i int) []string // headers of the i-th slow client
		normal []string             // headers of the normal request
		// what the slow clients get at once, and what the normal one gets
		refused, normalStatus int
	}{
		{
			name: "anonymous, behind a load balancer",
			env:  map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"},
			slow: func(i int) []string { return []string{xff(i)} },
			// The load balancer appends the address it got the request
			// from; what the client wrote before it is not believed.
			normal:       []string{"X-Forwarded-For: 203.0.113.1, 198.51.100.7"},
			normalStatus: 200,
		},
		{
			name: "one API key",
			env:  map[string]string{"API_KEYS": "key-a,key-b", "TRUSTED_PROXIES": "127.0.0.0/8", "MAX_PER_CLIENT": "8"},
			slow: func(i int) []string { return []string{xff(i), "Authorization: Bearer key-a"} },
			// key-a's own slow requests count against key-a only.
			normal:       []string{"X-Forwarded-For: 198.51.100.7", "Authorization: Bearer key-b"},
			refused:      slowClients - 8,
			normalStatus: 200,
		},
		{
			name: "one address, no proxy trusted",
			env:  map[string]string{"MAX_PER_CLIENT": "8"},
			// A client cannot spread itself over addresses it makes up.
			slow:         func(i int) []string { return []string{xff(i)} },
			normal:       []string{"X-Forwarded-For: 198.51.100.7"},
			refused:      slowClients - 8,
			normalStatus: 429,
		},
	}
	img := imagetest.Photo(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"CONCURRENCY": "2", "QUEUE_SIZE": "16", "MIN_BODY_RATE": "1KiB", "MIN_BODY_RATE_GRACE": "3s"}
			for k, v := range tt.env {
				env[k] = v
			}
			s := start(t, env)
			addr := strings.TrimPrefix(s.url, "http://")
			head := func(h []string, length int) string {
				return strings.Join(append([]string{"POST /resize?width=100 HTTP/1.1", "Host: resizer",
					"Content-Type: image/jpeg", fmt.Sprintf("Content-Length: %d", length)}, h...), "\r\n")
			}
			slow := make([]<-chan rawAnswer, slowClients)
			started := make([]time.Time, slowClients)
			for i := range slow {
				c := rawClient{head: head(tt.slow(i), len(img)), pieces: bytesEvery(img[:60], 1), every: time.Second}
				started[i] = time.Now()
				slow[i] = c.start(t, addr)
			}
			time.Sleep(500 * time.Millisecond) // every slow body under way

			normal := rawClient{head: head(tt.normal, len(img)), pieces: [][]byte{img}}.send(t, addr)
			normalDone := time.Now()
			t.Logf("normal request with %d slow clients connected: %d in %v", slowClients, normal.resp.StatusCode, normal.took)
			if normal.resp.StatusCode != tt.normalStatus {
				t.Fatalf("normal request: %d %s, want %d", normal.resp.StatusCode, normal.body, tt.normalStatus)
			}
			if normal.took > 2*time.Second {
				t.Errorf("normal request took %v", normal.took)
			}

			var refused, cut int
			for i, ch := range slow {
				a := <-ch
				if a.err != nil {
					t.Fatalf("slow client %d: %v", i, a.err)
				}
				checkRaw(t, a)
				switch code := a.resp.StatusCode; {
				case code == 429 && a.resp.Header.Get("Retry-After") != "":
					refused++
					if a.took > time.Second {
						t.Errorf("slow client %d: refused after %v, not at once", i, a.took)
					}
				case code == 408 && strings.Contains(string(a.body), "MIN_BODY_RATE"):
					cut++
					if at := started[i].Add(a.took); at.Before(normalDone) {
						t.Errorf("slow client %d was cut before the normal request was answered", i)
					}
					if a.took > 6*time.Second {
						t.Errorf("slow client %d: cut after %v, want about the 3s grace", i, a.took)
					}
				default:
					t.Errorf("slow client %d: %d (Retry-After %q) %s", i, code, a.resp.Header.Get("Retry-After"), a.body)
				}
			}
			t.Logf("slow clients: %d refused at once with 429, %d cut with 408", refused, cut)
			if refused != tt.refused || cut != slowClients-tt.refused {
				t.Fatalf("%d refused and %d cut, want %d and %d", refused, cut, tt.refused, slowClients-tt.refused)
			}
		})
	}
}
