package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/storage"
)

// listings records the prefixes listed.
type listings struct {
	OutputLister
	prefixes []string
}

func (l *listings) List(ctx context.Context, prefix string, limit int) ([]storage.Object, error) {
	l.prefixes = append(l.prefixes, prefix)
	return l.OutputLister.List(ctx, prefix, limit)
}

// TestPlan: what each original needs, on the local directory, with what
// reconcile must never delete beside it.
func TestPlan(t *testing.T) {
	ctx := t.Context()
	st := dirStore(t)
	pr := proc(t)
	with := func(def string) *Pipeline {
		t.Helper()
		cfg := testConfig(t)
		var err error
		if cfg.Variants, err = ParseVariants(def, 8192); err != nil {
			t.Fatal(err)
		}
		p, err := New(cfg, st, st, pr)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := with("thumb:50x50:cover,gone:40x0")
	for _, k := range []string{"uploads/done.jpg", "uploads/changed.jpg"} {
		if _, err := old.Upload(ctx, k, grey(t, 120, 80), nil); err != nil {
			t.Fatal(err)
		}
	}
	// An original never processed, the output of one since deleted, and
	// the reserved segments.
	for k, b := range map[string][]byte{
		"uploads/new.jpg":                  grey(t, 120, 80),
		"resized/gone/deleted.jpg":         []byte("orphan"),
		"resized/_cache/gone/done.jpg":     []byte("cache"),
		"resized/_manifest/stray.jpg.json": []byte("{}"),
	} {
		if _, err := st.Put(ctx, k, b, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// done.jpg brought in line by hand with the new definitions, but its
	// retired output kept.
	p := with("thumb:60x60:cover")
	if r, err := p.Run(ctx, "uploads/done.jpg", ""); err != nil || r.Status != StatusProcessed {
		t.Fatalf("run: %+v %v", r, err)
	}
	if _, err := st.Put(ctx, "resized/gone/done.jpg", []byte("retired"), storage.PutOptions{
		Metadata: map[string]string{MetaSourceKey: "uploads/done.jpg", MetaVariant: "gone"}}); err != nil {
		t.Fatal(err)
	}

	listed := &listings{OutputLister: st}
	plan, err := p.Plan(ctx, st, listed, PlanOptions{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	// The derived cache is never listed: it can hold far more objects
	// than the variants.
	if got := strings.Join(listed.prefixes, " "); got != "resized/_manifest/ resized/gone/ resized/thumb/" {
		t.Errorf("outputs listed under %s", got)
	}
	want := map[string]Action{"uploads/done.jpg": ActionCurrent, "uploads/changed.jpg": ActionRegenerate, "uploads/new.jpg": ActionCreate}
	retired := map[string]int{"uploads/done.jpg": 1, "uploads/changed.jpg": 1}
	if len(plan.Tasks) != 3 || plan.Current != 1 || plan.Regenerate != 1 || plan.Create != 1 || plan.Delete != 2 || plan.Orphans != 1 {
		t.Fatalf("plan %+v", plan)
	}
	for _, task := range plan.Tasks {
		if task.Action != want[task.Key] || len(task.Retired) != retired[task.Key] {
			t.Errorf("%s: %s, retired %v", task.Key, task.Action, task.Retired)
		}
	}

	var runs atomic.Int32
	sum, err := p.Reconcile(ctx, plan, ReconcileOptions{Concurrency: 2, Do: func(ctx context.Context, task Task) (Result, error) {
		runs.Add(1)
		return p.Run(ctx, task.Key, task.ETag)
	}})
	if err != nil || sum.Processed != 2 || sum.UpToDate != 1 || sum.Deleted != 2 || runs.Load() != 2 {
		t.Fatalf("reconcile: %+v %v, %d runs", sum, err, runs.Load())
	}
	for _, k := range []string{"resized/gone/done.jpg", "resized/gone/changed.jpg"} {
		if _, err := st.Head(ctx, k); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: %v, want deleted", k, err)
		}
	}
	for _, k := range []string{"resized/gone/deleted.jpg", "resized/_cache/gone/done.jpg", "resized/_manifest/stray.jpg.json", "resized/thumb/new.jpg"} {
		if _, err := st.Head(ctx, k); err != nil {
			t.Errorf("%s: %v, want kept", k, err)
		}
	}
	again, err := p.Plan(ctx, st, st, PlanOptions{Concurrency: 4})
	if err != nil || again.Current != 3 || again.Delete != 0 {
		t.Fatalf("plan after: %+v %v", again, err)
	}

	// Stopped before it starts: nothing done, and the error says so.
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	plan.Tasks[0].Action = ActionRegenerate
	if sum, err := p.Reconcile(stopped, plan, ReconcileOptions{Concurrency: 1}); !errors.Is(err, context.Canceled) || sum.Processed != 0 {
		t.Errorf("stopped: %+v %v", sum, err)
	}
}

// A rate too high to pace (its interval under a nanosecond, or
// infinite) is no limit, not a crash.
func TestReconcileRateTooHighToPace(t *testing.T) {
	p, err := New(testConfig(t), dirStore(t), dirStore(t), proc(t))
	if err != nil {
		t.Fatal(err)
	}
	plan := Plan{Tasks: []Task{{Key: "uploads/a.jpg", Action: ActionCreate}, {Key: "uploads/b.jpg", Action: ActionCreate}}}
	do := func(ctx context.Context, task Task) (Result, error) {
		return Result{Status: StatusProcessed, Key: task.Key}, nil
	}
	for _, rate := range []float64{1e10, math.Inf(1), math.NaN()} {
		sum, err := p.Reconcile(t.Context(), plan, ReconcileOptions{Concurrency: 1, Rate: rate, Do: do})
		if err != nil || sum.Processed != 2 {
			t.Errorf("rate %g: %+v %v", rate, sum, err)
		}
	}
}

// --rate paces the starts of originals, whatever the concurrency: the
// k-th start comes no sooner than k intervals after the first; originals
// already current take no turn.
func TestReconcileRatePaces(t *testing.T) {
	p, err := New(testConfig(t), dirStore(t), dirStore(t), proc(t))
	if err != nil {
		t.Fatal(err)
	}
	const n, rate = 12, 40.0
	var plan Plan
	for i := range n {
		plan.Tasks = append(plan.Tasks, Task{Key: fmt.Sprintf("uploads/%02d.jpg", i), Action: ActionCreate},
			Task{Key: fmt.Sprintf("uploads/%02d-current.jpg", i), Action: ActionCurrent})
	}
	var (
		mu     sync.Mutex
		starts []time.Time
	)
	do := func(ctx context.Context, task Task) (Result, error) {
		mu.Lock()
		starts = append(starts, time.Now())
		mu.Unlock()
		return Result{Status: StatusProcessed, Key: task.Key}, nil
	}
	sum, err := p.Reconcile(t.Context(), plan, ReconcileOptions{Concurrency: 4, Rate: rate, Do: do})
	if err != nil || sum.Processed != n || sum.UpToDate != n {
		t.Fatalf("%+v %v", sum, err)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	every := time.Duration(float64(time.Second) / rate)
	for k := 1; k < len(starts); k++ {
		// A ticker's ticks may come a little early, never bunched.
		if got, least := starts[k].Sub(starts[0]), time.Duration(k)*every*9/10; got < least {
			t.Fatalf("start %d came %s after the first; at %g a second, not before %s", k, got, rate, least)
		}
	}
}
