package memo

import (
	"strconv"
	"testing"
	"time"
)

func TestMemo(t *testing.T) {
	m := New[int](time.Hour)
	if _, ok := m.Get("a"); ok {
		t.Fatal("a value never put")
	}
	m.Put("a/1", 1)
	m.Put("a/2", 2)
	m.Put("b/1", 3)
	if v, ok := m.Get("a/2"); !ok || v != 2 {
		t.Fatalf("a/2: %v %v", v, ok)
	}
	m.Forget("a/2")
	if _, ok := m.Get("a/2"); ok {
		t.Fatal("a/2 forgotten, still there")
	}
	m.ForgetPrefix("a/")
	if _, ok := m.Get("a/1"); ok {
		t.Fatal("a/1 forgotten by prefix, still there")
	}
	if v, ok := m.Get("b/1"); !ok || v != 3 {
		t.Fatalf("b/1, of another prefix: %v %v", v, ok)
	}
}

func TestMemoExpires(t *testing.T) {
	m := New[string](time.Minute)
	clock := time.Unix(1_800_000_000, 0)
	m.now = func() time.Time { return clock }
	m.Put("k", "v")
	clock = clock.Add(time.Minute)
	if _, ok := m.Get("k"); !ok {
		t.Fatal("gone at its ttl")
	}
	clock = clock.Add(time.Nanosecond)
	if _, ok := m.Get("k"); ok {
		t.Fatal("still there past its ttl")
	}
	none := New[string](0)
	none.Put("k", "v")
	if _, ok := none.Get("k"); ok {
		t.Fatal("a ttl of 0 kept a value")
	}
}

// Past maxEntries, what has expired goes first; the count never passes
// the bound.
func TestMemoBounded(t *testing.T) {
	m := New[int](time.Hour)
	for i := range maxEntries + 10 {
		m.Put(strconv.Itoa(i), i)
		if len(m.m) > maxEntries {
			t.Fatalf("%d entries after %d puts", len(m.m), i+1)
		}
	}
	if v, ok := m.Get(strconv.Itoa(maxEntries + 9)); !ok || v != maxEntries+9 {
		t.Fatalf("the last put: %v %v", v, ok)
	}
}

// Add remembers the first time within the ttl and says so; the next
// times it says not, until the value expires or is forgotten.
func TestMemoAdd(t *testing.T) {
	m := New[struct{}](time.Minute)
	clock := time.Unix(1_800_000_000, 0)
	m.now = func() time.Time { return clock }
	if !m.Add("k", struct{}{}) || m.Add("k", struct{}{}) {
		t.Fatal("Add: want true, then false")
	}
	clock = clock.Add(time.Minute + time.Nanosecond)
	if !m.Add("k", struct{}{}) {
		t.Fatal("Add past the ttl: want true")
	}
	m.Forget("k")
	if !m.Add("k", struct{}{}) {
		t.Fatal("Add after Forget: want true")
	}
	none := New[struct{}](0)
	for i := range 2 {
		if !none.Add("k", struct{}{}) {
			t.Fatalf("a ttl of 0, Add %d: want true, every time the first", i+1)
		}
	}
}
