package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/resizer/resizer/internal/storage"
)

// Reconciling brings every stored original in line with the configured
// variants: Plan compares the listings of the inputs and the outputs with
// the configuration, and Reconcile carries the plan out. Both are safe
// beside live uploads and events, because each original is done by Run,
// which checks again and reads the source with If-Match, and because
// only outputs of variant names no longer configured, of originals that
// exist, are deleted.

// Lister lists a store's objects under a prefix (ListObjectsV2 pages in
// S3), in key order; limit <= 0 means all.
type Lister interface {
	List(ctx context.Context, prefix string, limit int) ([]storage.Object, error)
}

// OutputLister lists the outputs: their folders first, so that the
// reserved ones (the derived cache of delivery by URL, which can hold far
// more objects than the variants) are never listed.
type OutputLister interface {
	Lister
	// Folders lists the folders directly under prefix ("prefix/name/"),
	// as ListObjectsV2 with a delimiter does.
	Folders(ctx context.Context, prefix string) ([]string, error)
}

// Action is what an original needs.
type Action string

// The actions of a plan.
const (
	// ActionCurrent: every configured variant exists with its current
	// digest, and the manifest with them.
	ActionCurrent Action = "current"
	// ActionCreate: no variant of the original exists (an original stored
	// before the service, or before its events).
	ActionCreate Action = "create"
	// ActionRegenerate: some exist, but not all, or not all current; or
	// all are current but the manifest is not (Task.ManifestOnly).
	ActionRegenerate Action = "regenerate"
)

// Task is one original of a plan.
type Task struct {
	Key    string
	ETag   string
	Size   int64
	Action Action
	// ManifestOnly: every variant is current, and only the manifest is
	// written again (after VARIANTS_BASE_URL changed, say), without the
	// original being read or anything made.
	ManifestOnly bool
	// Retired are its outputs under variant names no longer configured,
	// to delete, and RetiredBytes their size.
	Retired      []string
	RetiredBytes int64
}

// Plan is what reconciling would do.
type Plan struct {
	Tasks []Task
	// Current, Create and Regenerate count originals; Delete counts the
	// retired outputs.
	Current, Create, Regenerate, Delete int
	// Manifests counts the originals of Regenerate whose manifest alone
	// is written again (Task.ManifestOnly).
	Manifests int
	// SourceBytes are the originals to read, DeleteBytes the outputs to
	// delete.
	SourceBytes, DeleteBytes int64
	// Orphans are outputs of variants whose original is not among the
	// inputs (deleted while its event was lost, or a key this layout does
	// not make): counted, never deleted, since an original may be arriving.
	Orphans int
	// Skipped are keys under the input prefix that can never be
	// processed for their name alone: one no store takes (a folder
	// marker "uploads/2026/", a hidden segment ".DS_Store", an empty
	// segment), or one whose outputs' or manifest's keys would be too
	// long. Left out of the plan, as a run would reject them.
	Skipped int
	// Foreign are objects under folders of variants no longer configured,
	// named as an original's output would be, whose metadata do not say
	// they are (an object someone else stored there): counted, never
	// deleted.
	Foreign int
}

// PlanOptions say how a plan is made.
type PlanOptions struct {
	// Concurrency is how many originals are checked at once (at least 1):
	// their checks are HEAD requests, which a store answers by the
	// thousand a second, so that it may be far above the originals
	// processed at once.
	Concurrency int
	// Listed, when set, is told how many originals were listed, before
	// their checks begin; Checked, of every original checked, in turn,
	// with the count so far: on a bucket of millions the checks take
	// long enough to need a progress of their own.
	Listed  func(n int)
	Checked func(done int)
}

// Plan lists the originals, then the outputs folder by folder, and
// decides what each original needs, checking up to opts.Concurrency
// originals at a time (a HEAD of the source, one of each variant and one of the
// manifest: what Run checks before it skips; when that fails, a read of
// the manifest and a HEAD of each output it records, as Run checks before
// it writes the manifest alone). Of the reserved folders (see
// ManifestSegment), only the manifests' is listed, and one folder's
// listing is held at a time: what Plan holds grows with the originals, not
// with their outputs. An object in the folder of a variant no longer
// configured is planned for deletion only when a HEAD finds it made from
// its original, as that variant (its metadata); any other is Foreign. It
// fails when a listing or a HEAD fails (storage's errors, wrapped), or
// when ctx ends.
//
// An original stored during the listing may be missed (its event does
// it), and its outputs then seen without it: they are of configured
// variants, which are neither counted as orphans nor deleted.
func (p *Pipeline) Plan(ctx context.Context, in Lister, out OutputLister, opts PlanOptions) (Plan, error) {
	ins, err := in.List(ctx, p.cfg.InputPrefix, 0)
	if err != nil {
		return Plan{}, fmt.Errorf("list originals: %w", err)
	}
	var plan Plan
	byRel := map[string]int{}
	for _, o := range ins {
		if !p.isInput(o.Key) {
			continue
		}
		if !p.keysPossible(o.Key) {
			plan.Skipped++
			continue
		}
		byRel[strings.TrimPrefix(o.Key, p.cfg.InputPrefix)] = len(plan.Tasks)
		plan.Tasks = append(plan.Tasks, Task{Key: o.Key, ETag: o.ETag, Size: o.Size})
	}
	hasOutputs := make([]bool, len(plan.Tasks))
	// The objects under folders of retired variants named as outputs of
	// an original, by that original, to be checked with it.
	cands := make([][]retiredCandidate, len(plan.Tasks))
	folders, err := out.Folders(ctx, p.cfg.OutputPrefix)
	if err != nil {
		return Plan{}, fmt.Errorf("list outputs: %w", err)
	}
	for _, f := range folders {
		name := strings.TrimSuffix(strings.TrimPrefix(f, p.cfg.OutputPrefix), "/")
		manifests := f == p.cfg.OutputPrefix+ManifestSegment
		retired := p.retired(name)
		if strings.HasPrefix(name, "_") && !manifests {
			continue // the derived cache, or a reserved folder yet to come
		}
		outs, err := out.List(ctx, f, 0)
		if err != nil {
			return Plan{}, fmt.Errorf("list outputs: %w", err)
		}
		for _, o := range outs {
			tail := strings.TrimPrefix(o.Key, f)
			if manifests {
				if i, ok := byRel[strings.TrimSuffix(tail, ".json")]; ok {
					hasOutputs[i] = true
				}
				continue
			}
			// An output's key is the original's relative key, with the
			// output format's extension appended when it differs: it may
			// be of two originals (a.jpg.webp, of a.jpg or a.jpg.webp),
			// which its metadata tell apart.
			i, ok := byRel[tail]
			alt, altOK := byRel[strings.TrimSuffix(tail, path.Ext(tail))]
			if !ok {
				i, ok, altOK = alt, altOK, false
			}
			if !altOK || alt == i {
				alt = -1
			}
			switch {
			case !ok:
				if retired {
					plan.Orphans++
				}
			case !retired:
				hasOutputs[i] = true
			default:
				cands[i] = append(cands[i], retiredCandidate{key: o.Key, alt: alt})
			}
		}
	}
	if opts.Listed != nil {
		opts.Listed(len(plan.Tasks))
	}
	var (
		mu      sync.Mutex
		checked int
	)
	err = each(ctx, len(plan.Tasks), opts.Concurrency, func(i int) error {
		t := &plan.Tasks[i]
		if opts.Checked != nil {
			defer func() {
				mu.Lock()
				defer mu.Unlock()
				checked++
				opts.Checked(checked)
			}()
		}
		head, err := p.in.Head(ctx, t.Key)
		if errors.Is(err, storage.ErrNotFound) {
			t.Action = ActionCurrent // gone since the listing: its deletion event removes its outputs
			return p.checkRetired(ctx, &plan, i, cands[i], &mu)
		}
		if err != nil {
			return fmt.Errorf("head %q: %w", t.Key, err)
		}
		t.ETag = head.ETag
		if err := p.checkRetired(ctx, &plan, i, cands[i], &mu); err != nil {
			return err
		}
		focus, _ := storedFocus(head.Metadata)
		f, _, _ := p.freshness(ctx, t.Key, head.ETag, focusText(focus))
		switch {
		case f == fresh:
			t.Action = ActionCurrent
		case f == staleManifest:
			t.Action, t.ManifestOnly = ActionRegenerate, true
		case hasOutputs[i]:
			t.Action = ActionRegenerate
		default:
			t.Action = ActionCreate
		}
		return nil
	})
	if err != nil {
		return Plan{}, err
	}
	for _, t := range plan.Tasks {
		switch t.Action {
		case ActionCurrent:
			plan.Current++
		case ActionCreate:
			plan.Create++
		case ActionRegenerate:
			plan.Regenerate++
		}
		if t.ManifestOnly {
			plan.Manifests++
		}
		if t.Action != ActionCurrent && !t.ManifestOnly {
			plan.SourceBytes += t.Size
		}
		plan.Delete += len(t.Retired)
		plan.DeleteBytes += t.RetiredBytes
	}
	return plan, nil
}

// keysPossible reports whether the original key and the keys of its
// outputs and manifest are keys the stores take (a variant's key may
// still gain a format's extension, which the run checks).
func (p *Pipeline) keysPossible(key string) bool {
	if storage.ValidateKey(key) != nil || p.checkOutputKey(p.ManifestKey(key)) != nil {
		return false
	}
	rel := strings.TrimPrefix(key, p.cfg.InputPrefix)
	for _, v := range p.cfg.Variants {
		if p.checkOutputKey(p.cfg.OutputPrefix+v.Name+"/"+rel) != nil {
			return false
		}
	}
	return true
}

// retiredCandidate is an object in the folder of a variant no longer
// configured, named as an output of the original it is listed with, or
// of the original alt (-1: none).
type retiredCandidate struct {
	key string
	alt int
}

// checkRetired looks at the candidates of task i (a HEAD each) and puts
// each that was made from its original as a variant of its folder's
// name, the task's or alt's, among that original's Retired; any other is
// counted as Foreign. mu guards every task's Retired and the count.
func (p *Pipeline) checkRetired(ctx context.Context, plan *Plan, i int, cands []retiredCandidate, mu *sync.Mutex) error {
	for _, c := range cands {
		obj, err := p.out.Head(ctx, c.key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			return fmt.Errorf("head %q: %w", c.key, err)
		}
		owner := -1
		for _, j := range []int{i, c.alt} {
			if j >= 0 && p.retiredOf(obj, c.key, plan.Tasks[j].Key) {
				owner = j
				break
			}
		}
		mu.Lock()
		if owner < 0 {
			plan.Foreign++
		} else {
			t := &plan.Tasks[owner]
			t.Retired = append(t.Retired, c.key)
			t.RetiredBytes += obj.Size
		}
		mu.Unlock()
	}
	return nil
}

// retiredOf reports whether obj, stored at key under the folder of a
// variant, is that variant's output of source, by its metadata.
func (p *Pipeline) retiredOf(obj storage.Object, key, source string) bool {
	name, _, _ := strings.Cut(strings.TrimPrefix(key, p.cfg.OutputPrefix), "/")
	return p.isPrunable(key) && madeFrom(obj, source) && obj.Metadata[MetaVariant] == name
}

// ReconcileOptions say how a plan is carried out.
type ReconcileOptions struct {
	// Concurrency is how many originals are in hand at once (at least 1).
	Concurrency int
	// Rate, when positive, is the most originals started per second (one
	// so high that its interval is under a nanosecond: no limit).
	Rate float64
	// Do makes an original's variants; nil: Run, in this process. The
	// server's --enqueue sends an event instead.
	Do func(ctx context.Context, t Task) (Result, error)
	// Progress, when set, is told of every task done, in turn.
	Progress func(t Task, r Result, err error)
}

// Summary is what Reconcile did.
type Summary struct {
	Processed, UpToDate, Superseded, Rejected, Enqueued, Failed, Deleted int
}

// Reconcile carries out plan. When ctx ends it starts no more originals
// and lets those in hand finish (a stop by signal leaves nothing half
// done); a second run plans again and finds the done ones current. Each
// original is done by Do (Run: it checks again whether the original is
// current, so that one done meanwhile by an event is not done twice), and
// its retired outputs deleted, unless Config.KeepRetired. The error counts the originals that failed;
// each one's own error went to Progress.
func (p *Pipeline) Reconcile(ctx context.Context, plan Plan, o ReconcileOptions) (Summary, error) {
	do := o.Do
	if do == nil {
		do = func(ctx context.Context, t Task) (Result, error) { return p.Run(ctx, t.Key, t.ETag) }
	}
	var tick <-chan time.Time
	// A rate whose interval rounds to nothing (or NaN) paces nothing.
	if every := time.Duration(float64(time.Second) / o.Rate); o.Rate > 0 && every > 0 {
		tk := time.NewTicker(every)
		defer tk.Stop()
		tick = tk.C
	}
	var (
		mu  sync.Mutex
		sum Summary
	)
	work := context.WithoutCancel(ctx)
	err := each(ctx, len(plan.Tasks), o.Concurrency, func(i int) error {
		t := plan.Tasks[i]
		var res Result
		var err error
		if t.Action != ActionCurrent {
			if tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return nil
				}
			}
			res, err = do(work, t)
		} else {
			res.Status = StatusUpToDate
		}
		deleted := 0
		if err == nil && !p.cfg.KeepRetired && len(t.Retired) > 0 && res.Status != StatusSuperseded {
			// Those the run pruned itself (its previous manifest listed
			// them) are done; the others are looked at again, so that an
			// object stored there since the plan is deleted only if it
			// is the original's output.
			var left []string
			for _, k := range t.Retired {
				if !slices.Contains(res.Pruned, k) {
					left = append(left, k)
				}
			}
			gone, derr := p.deleteOwned(work, t.Key, left)
			deleted = len(t.Retired) - len(left) + len(gone)
			if derr != nil {
				err = fmt.Errorf("delete retired variants of %q: %w", t.Key, derr)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		sum.Deleted += deleted
		switch {
		case err != nil:
			sum.Failed++
		case res.Status == StatusProcessed:
			sum.Processed++
		case res.Status == StatusUpToDate:
			sum.UpToDate++
		case res.Status == StatusSuperseded:
			sum.Superseded++
		case res.Status == StatusRejected:
			sum.Rejected++
		case res.Status == StatusEnqueued:
			sum.Enqueued++
		}
		if o.Progress != nil {
			o.Progress(t, res, err)
		}
		return nil
	})
	if err == nil && sum.Failed > 0 {
		err = fmt.Errorf("reconcile: %d originals failed", sum.Failed)
	}
	return sum, err
}

// StatusEnqueued is an original sent as an event to the queue that the
// service's fleet consumes (reconcile --enqueue).
const StatusEnqueued Status = "enqueued"

// each runs fn(0..n-1), n at most at once, in order of starting; it
// starts none once ctx has ended (and then returns ctx's error) and
// returns fn's first error after all started ones have returned.
func each(ctx context.Context, n, concurrency int, fn func(i int) error) error {
	concurrency = max(1, concurrency)
	sem := make(chan struct{}, concurrency)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}
