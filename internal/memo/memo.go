// Package memo remembers values for a while, in memory, bounded in count:
// what a process may forget at any time and look up again.
package memo

import (
	"strings"
	"sync"
	"time"
)

// maxEntries bounds a Memo: past it, what has expired goes, and if that is
// not enough, everything; forgetting costs one more look-up per key, and
// a bound keeps a scan of many keys from growing the memory without end.
const maxEntries = 100_000

// Memo remembers values by key for a while. It is safe for concurrent use.
type Memo[V any] struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]entry[V]
	now func() time.Time // time.Now; the tests' own clock
}

type entry[V any] struct {
	v     V
	until time.Time
}

// New returns a Memo whose values last ttl; with 0 it keeps nothing.
func New[V any](ttl time.Duration) *Memo[V] {
	return &Memo[V]{ttl: ttl, m: map[string]entry[V]{}, now: time.Now}
}

// Get returns the value of k, unless it has expired or was never put.
func (m *Memo[V]) Get(k string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[k]
	if !ok || m.now().After(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put remembers v for k, for the Memo's ttl from now.
func (m *Memo[V]) Put(k string, v V) {
	if m.ttl <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.put(k, v, m.now())
}

// Add remembers v for k unless k holds a value still, and reports whether
// it did: the first time within the ttl, true; the next ones, false (with
// a ttl of 0, every time is the first).
func (m *Memo[V]) Add(k string, v V) bool {
	if m.ttl <= 0 {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if e, ok := m.m[k]; ok && !now.After(e.until) {
		return false
	}
	m.put(k, v, now)
	return true
}

// put is Put with m.mu held.
func (m *Memo[V]) put(k string, v V, now time.Time) {
	if len(m.m) >= maxEntries {
		for k, e := range m.m {
			if now.After(e.until) {
				delete(m.m, k)
			}
		}
		if len(m.m) >= maxEntries {
			clear(m.m)
		}
	}
	m.m[k] = entry[V]{v: v, until: now.Add(m.ttl)}
}

// Forget forgets k.
func (m *Memo[V]) Forget(k string) {
	m.mu.Lock()
	delete(m.m, k)
	m.mu.Unlock()
}

// ForgetPrefix forgets every key that starts with p.
func (m *Memo[V]) ForgetPrefix(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.m {
		if strings.HasPrefix(k, p) {
			delete(m.m, k)
		}
	}
}
