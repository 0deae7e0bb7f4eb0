package delivery

import (
	"strings"
	"sync"
	"time"
)

// memoMax bounds a memo: past it, what has expired goes, and if that is
// not enough, everything; forgetting costs one more look-up per key, and
// a bound keeps a scan of many keys from growing the memory without end.
const memoMax = 100_000

// memo remembers values for a while.
type memo[V any] struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[string]memoEntry[V]
}

type memoEntry[V any] struct {
	v     V
	until time.Time
}

// newMemo returns a memo whose values last ttl; with 0 it keeps nothing.
func newMemo[V any](ttl time.Duration) *memo[V] {
	return &memo[V]{ttl: ttl, m: map[string]memoEntry[V]{}}
}

func (m *memo[V]) get(k string) (V, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.m[k]
	if !ok || time.Now().After(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (m *memo[V]) put(k string, v V) {
	if m.ttl <= 0 {
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.m) >= memoMax {
		for k, e := range m.m {
			if now.After(e.until) {
				delete(m.m, k)
			}
		}
		if len(m.m) >= memoMax {
			clear(m.m)
		}
	}
	m.m[k] = memoEntry[V]{v: v, until: now.Add(m.ttl)}
}

func (m *memo[V]) forget(k string) {
	m.mu.Lock()
	delete(m.m, k)
	m.mu.Unlock()
}

// forgetPrefix forgets every key that starts with p.
func (m *memo[V]) forgetPrefix(p string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.m {
		if strings.HasPrefix(k, p) {
			delete(m.m, k)
		}
	}
}
