package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// reconcileFlags are the options of server reconcile.
type reconcileFlags struct {
	dryRun, json, enqueue, keepRetired bool
	checkConcurrency                   int
	concurrency                        int
	rate                               float64
	// throughput is the originals per second per CPU the estimate
	// assumes.
	throughput float64
	every      time.Duration
	// inventory is an S3 Inventory report's manifest.json (s3://...),
	// read as the list of originals instead of ListObjectsV2 pages.
	inventory string
}

// measuredThroughput is the in-process rate of docs/benchmarks.md, in
// originals (the three default variants of a 4-megapixel JPEG) per second
// per CPU, rounded down: the dry run's time estimate.
const measuredThroughput = 3.0

// enqueueConcurrency is --concurrency's default with --enqueue: an
// original in hand is then a message waiting for its SendMessageBatch
// call, and batches fill only with ten or more in hand.
const enqueueConcurrency = 50

// The bounds of the flags that count or pace: past them a run holds more
// than the machine or the store should give it, and nothing goes faster.
const (
	// maxEnqueueConcurrency: messages in hand with --enqueue, a hundred
	// SendMessageBatch calls at once.
	maxEnqueueConcurrency = 1000
	// maxCheckConcurrency: the plan's HEAD requests at once.
	maxCheckConcurrency = 1024
	// maxRate: originals started per second; a pace finer than a
	// microsecond is no pace.
	maxRate = 1e6
)

func parseReconcileFlags(args []string, cfg config.Config, out io.Writer) (reconcileFlags, error) {
	var f reconcileFlags
	fs := flag.NewFlagSet("server reconcile", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprint(out, "Usage: server reconcile [flags]\n\nBrings every original under INPUT_PREFIX in line with VARIANTS: makes missing\nvariants, remakes those whose definition changed, deletes those of variants no\nlonger configured. Same environment as the server.\n\nWith --inventory, the originals are those of an S3 Inventory report (CSV) of\nS3_BUCKET instead of a listing of INPUT_PREFIX: for buckets of millions. A report\nis up to a day old (a week if weekly): originals stored since it ran are left\nto their events or the next run; the outputs are still listed.\n\n")
		fs.PrintDefaults()
	}
	fs.BoolVar(&f.dryRun, "dry-run", false, "list and print the plan; change nothing")
	fs.BoolVar(&f.json, "json", false, `end with one JSON line: {"current":N,"create":N,"regenerate":N,"delete":N}`)
	fs.BoolVar(&f.enqueue, "enqueue", false, "send each original to do as an S3 event to EVENT_QUEUE_URL, for the fleet, instead of processing here")
	fs.BoolVar(&f.keepRetired, "keep-retired", false, "leave the outputs of variants no longer configured in place (in process only, not with --enqueue)")
	// 0, which flag's usage leaves unprinted, stands for "not given": the
	// default depends on --enqueue, and a printed "(default 2)" beside the
	// text below read as a second, contradicting one.
	fs.IntVar(&f.concurrency, "concurrency", 0, fmt.Sprintf("originals in hand at once (default: CONCURRENCY, here %d; with --enqueue, %d)", cfg.Concurrency, enqueueConcurrency))
	fs.IntVar(&f.checkConcurrency, "check-concurrency", 32, "originals checked at once while planning (HEAD requests: the original, its variants, its manifest)")
	fs.Float64Var(&f.rate, "rate", 0, "most originals started per second (0: no limit)")
	fs.Float64Var(&f.throughput, "throughput", measuredThroughput, "originals per second per CPU the dry run's estimate assumes")
	fs.DurationVar(&f.every, "progress", 2*time.Second, "interval of the progress lines")
	fs.StringVar(&f.inventory, "inventory", "", "an S3 Inventory report's `MANIFEST` (s3://bucket/prefix/.../manifest.json, CSV format) to read the originals from instead of listing INPUT_PREFIX")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("reconcile: unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	switch {
	case set["concurrency"]:
	case f.enqueue:
		f.concurrency = enqueueConcurrency
	default:
		f.concurrency = cfg.Concurrency
	}
	if err := f.check(cfg); err != nil {
		return f, err
	}
	if f.inventory != "" && !cfg.S3Mode() {
		return f, errors.New("reconcile: --inventory needs S3_BUCKET: an inventory lists an S3 bucket")
	}
	if f.enqueue && f.keepRetired {
		// The fleet's runs delete the retired outputs that each
		// original's previous manifest lists: nothing would be kept.
		return f, errors.New("reconcile: --keep-retired works in process only: with --enqueue the fleet's runs delete the outputs of variants no longer configured")
	}
	if f.enqueue && cfg.EventQueueURL == "" && !f.dryRun {
		return f, errors.New("reconcile: --enqueue needs EVENT_QUEUE_URL")
	}
	return f, nil
}

// check reports the first flag whose value is out of its bounds. In
// process, an original in hand is held in memory (up to MAX_SOURCE_BYTES)
// until a slot is free: --concurrency goes up to what the server itself
// holds, CONCURRENCY plus QUEUE_SIZE.
func (f reconcileFlags) check(cfg config.Config) error {
	most, why := cfg.Concurrency+cfg.QueueSize, "CONCURRENCY + QUEUE_SIZE: the originals the server holds at once"
	if f.enqueue {
		most, why = maxEnqueueConcurrency, "messages in hand"
	}
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	switch {
	case f.concurrency < 1 || f.concurrency > most:
		return fmt.Errorf("reconcile: --concurrency %d: want 1 to %d (%s)", f.concurrency, most, why)
	case f.checkConcurrency < 1 || f.checkConcurrency > maxCheckConcurrency:
		return fmt.Errorf("reconcile: --check-concurrency %d: want 1 to %d", f.checkConcurrency, maxCheckConcurrency)
	case !finite(f.rate) || f.rate < 0 || f.rate > maxRate:
		return fmt.Errorf("reconcile: --rate %g: want 0 (no limit) to %g originals per second", f.rate, float64(maxRate))
	case !finite(f.throughput) || f.throughput <= 0:
		return fmt.Errorf("reconcile: --throughput %g: want a positive number of originals per second per CPU", f.throughput)
	case f.every <= 0:
		return fmt.Errorf("reconcile: --progress %s: want a positive interval", f.every)
	}
	return nil
}

// slotWait is how long an original in hand may wait for one of this
// process's CONCURRENCY slots: the server's QUEUE_TIMEOUT is a client's
// patience, but here the wait is the run's own doing (more originals in
// hand than slots), and nobody would retry an original it failed. It is
// as long as the originals ahead of it could take, each PROCESS_TIMEOUT
// at most, or QUEUE_TIMEOUT when that is longer.
func slotWait(inHand int, s settings) time.Duration {
	rounds := (inHand + s.Concurrency - 1) / max(1, s.Concurrency)
	return max(s.QueueTimeout, time.Duration(rounds)*s.ProcessTimeout)
}

// reconcile is server reconcile: the plan, then, unless a dry run, its
// execution, in this process or sent to the event queue. A signal stops
// it after the originals in hand; running it again goes on from there.
func reconcile(ctx context.Context, args []string, s settings, stdout io.Writer) error {
	f, err := parseReconcileFlags(args, s.Config, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(s.Config, stdout)
	ctx = log.WithContext(ctx)
	if !f.enqueue {
		s.QueueTimeout = slotWait(f.concurrency, s)
	}
	if !s.S3Mode() {
		// Made, it would hold no original: run from another folder than
		// the server's, a reconcile would make a ./data of its own and
		// find it in line.
		if _, err := os.Stat(s.DataDir); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("reconcile: DATA_DIR %s does not exist: run it where the server runs, or set DATA_DIR as the server has it", s.DataDir)
		}
	}
	// A dry run changes nothing in the store, not even the local
	// directory's own files.
	s.readOnly = f.dryRun
	b, err := openBase(ctx, s, newRegistry())
	if err != nil {
		return err
	}
	defer b.close()
	s, st, proc := b.s, b.st, b.proc
	s.pipeline.KeepRetired = f.keepRetired
	pl, err := pipeline.New(s.pipeline, st.in, st.out, proc)
	if err != nil {
		return err
	}
	if !f.dryRun {
		// Every original would fail on a missing watermark: no run, rather
		// than one that fails them all, or, with --enqueue, fills the queue
		// with events the fleet cannot do.
		if err := pl.CheckWatermarks(ctx); err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
	}
	start := time.Now()
	inList := st.inList
	if f.inventory != "" {
		inv, err := storage.OpenInventory(ctx, f.inventory, s.S3Bucket,
			storage.S3Config{Endpoint: s.S3Endpoint, PathStyle: s.S3PathStyle}, *st.aws)
		if err != nil {
			return fmt.Errorf("reconcile: %w", err)
		}
		m := inv.Manifest()
		fmt.Fprintf(stdout, "originals from the inventory of %s begun %s (%d files); outputs listed\n",
			m.SourceBucket, m.Created().Format(time.RFC3339), len(m.Files))
		inList = inv
	}
	plan, err := pl.Plan(ctx, inList, st.outList, planOptions(f, stdout, start))
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	// An original whose manifest alone is written again makes nothing:
	// the estimate leaves it out.
	todo := plan.Create + plan.Regenerate - plan.Manifests
	fmt.Fprintf(stdout, "plan (%s): %d originals: %d current, %d to create, %d to regenerate (%s to read)",
		time.Since(start).Round(time.Millisecond), len(plan.Tasks), plan.Current, plan.Create, plan.Regenerate,
		bytesText(plan.SourceBytes))
	if plan.Manifests > 0 {
		fmt.Fprintf(stdout, ", %d of them only their manifest", plan.Manifests)
	}
	fmt.Fprintf(stdout, "; %d retired variants to delete (%s)", plan.Delete, bytesText(plan.DeleteBytes))
	if f.keepRetired {
		fmt.Fprint(stdout, ", kept (--keep-retired)")
	}
	if plan.Orphans > 0 {
		fmt.Fprintf(stdout, "; %d outputs without an original, left in place", plan.Orphans)
	}
	if plan.Skipped > 0 {
		fmt.Fprintf(stdout, "; %d keys left out that no original can have (folder markers, hidden or empty segments, outputs' keys too long)", plan.Skipped)
	}
	if plan.Foreign > 0 {
		fmt.Fprintf(stdout, "; %d objects named as retired variants but not made by them, left in place", plan.Foreign)
	}
	rate := f.throughput * float64(min(f.concurrency, s.Concurrency))
	if f.rate > 0 {
		rate = math.Min(rate, f.rate)
	}
	if f.enqueue {
		// The fleet does the work, at the pace of its autoscaling.
		fmt.Fprintf(stdout, "; %d to send to the event queue, for the fleet\n", todo)
	} else {
		fmt.Fprintf(stdout, "; about %s at %.1f originals/s\n", (time.Duration(float64(todo) / rate * float64(time.Second))).Round(time.Second), rate)
	}
	if !f.dryRun {
		var settle settleFunc
		if s.CloudFrontDistribution != "" && !f.enqueue {
			// As the webhook does after each original: CloudFront forgets
			// the paths of presets whose definition changed.
			dl, err := newDelivery(ctx, s, st, proc, pl, newRegistry(), log)
			if err != nil {
				return err
			}
			settle = dl.Settle
		}
		err = execute(ctx, pl, settle, plan, f, s, stdout)
	}
	if f.json {
		del := plan.Delete
		if f.keepRetired {
			del = 0 // what it deletes: nothing
		}
		b, _ := json.Marshal(map[string]int{"current": plan.Current, "create": plan.Create, "regenerate": plan.Regenerate, "delete": del})
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return err
}

// planOptions are the plan's, with progress lines while the originals are
// checked (on a bucket of millions, a few HEAD requests each take a
// while): how many were listed, then one line every f.every.
func planOptions(f reconcileFlags, stdout io.Writer, start time.Time) pipeline.PlanOptions {
	var total int
	last := time.Now()
	return pipeline.PlanOptions{
		Concurrency: f.checkConcurrency,
		Listed: func(n int) {
			total = n
			fmt.Fprintf(stdout, "listed %d originals and their outputs in %s; checking them, %d at a time\n",
				n, time.Since(start).Round(time.Millisecond), f.checkConcurrency)
		},
		Checked: func(done int) {
			if done < total && time.Since(last) >= f.every {
				last = time.Now()
				fmt.Fprintf(stdout, "checked: %d/%d (%.0f%%) in %s\n", done, total, 100*float64(done)/float64(total),
					time.Since(start).Round(time.Second))
			}
		},
	}
}

// settleFunc is delivery's Settle.
type settleFunc func(ctx context.Context, key, etag string, res pipeline.Result) error

// thenSettle does an original with run, then settles what delivery derived
// from it (see delivery's Settle), as the webhook does.
func thenSettle(run func(ctx context.Context, key, etag string) (pipeline.Result, error), settle settleFunc) func(context.Context, pipeline.Task) (pipeline.Result, error) {
	return func(ctx context.Context, t pipeline.Task) (pipeline.Result, error) {
		res, err := run(ctx, t.Key, t.ETag)
		if err != nil {
			return res, err
		}
		return res, settle(ctx, t.Key, t.ETag, res)
	}
}

// execute carries the plan out, with a progress bar on a terminal and a
// progress line every f.every elsewhere.
func execute(ctx context.Context, pl *pipeline.Pipeline, settle settleFunc, plan pipeline.Plan, f reconcileFlags, s settings, stdout io.Writer) error {
	o := pipeline.ReconcileOptions{Concurrency: f.concurrency, Rate: f.rate}
	if settle != nil {
		o.Do = thenSettle(pl.Run, settle)
	}
	// A queue or a store that refuses every call stops the run: it would
	// otherwise fail the bucket's originals one by one, for hours on a
	// bucket of millions.
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if f.enqueue {
		q, err := newEventQueue(ctx, s)
		if err != nil {
			return err
		}
		o.Do = q.send
		// The queue does not exist, the credentials may not send to it:
		// at once.
		q.stop = func(err error) { stop(&queueRefusal{err}) }
	}
	var (
		mu        sync.Mutex
		done      int
		start     = time.Now()
		last      = start
		failed    int
		lastError error
		refused   int // originals failed in a row by a store refusing every write
	)
	total := len(plan.Tasks)
	// On a terminal, a bar that redraws itself; elsewhere (a log, a CI
	// job), a plain line every f.every.
	var bar *progressbar.ProgressBar
	if isTerminal(stdout) && total > 0 {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stdout), progressbar.OptionSetDescription("reconcile"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("originals"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
	}
	line := func(final bool) {
		el := time.Since(start)
		fmt.Fprintf(stdout, "progress: %d/%d (%.0f%%) in %s, %.1f originals/s", done, total, 100*float64(done)/float64(max(1, total)),
			el.Round(time.Second), float64(done)/max(el.Seconds(), 1e-3))
		if failed > 0 {
			fmt.Fprintf(stdout, ", %d failed (last: %s)", failed, oneLine(lastError.Error()))
		}
		if final {
			fmt.Fprint(stdout, ", finished")
		}
		fmt.Fprintln(stdout)
	}
	o.Progress = func(t pipeline.Task, r pipeline.Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		done++
		if err != nil {
			failed++
			lastError = fmt.Errorf("%s: %w", t.Key, err)
		}
		// The store refusing writes (no permission, no bucket, a full
		// disk) stops the run once refusalsToStop originals in a row met
		// it: one key can be refused alone, a store refuses them all.
		if storage.RefusesEveryWrite(err) {
			refused++
		} else {
			refused = 0
		}
		if refused >= refusalsToStop {
			stop(&storeRefusal{refused, err})
		}
		// Each original not made, named with its reason on a line of its
		// own (whatever LOG_LEVEL says): the counts alone leave the
		// operator to guess which to look at.
		if err != nil || r.Status == pipeline.StatusRejected {
			if bar != nil {
				_ = bar.Clear() // redrawn by the next Add
			}
			if err != nil {
				fmt.Fprintf(stdout, "failed: %q: %s\n", t.Key, oneLine(err.Error()))
			} else {
				fmt.Fprintf(stdout, "rejected: %q: %s\n", t.Key, oneLine(r.Reason))
			}
		}
		if bar != nil {
			_ = bar.Add(1) // a terminal that fails to draw is no reason to stop
			if err != nil {
				bar.Describe(fmt.Sprintf("reconcile (%d failed)", failed))
			}
			return
		}
		if done < total && time.Since(last) >= f.every { // the last one has the final line
			last = time.Now()
			line(false)
		}
	}
	sum, err := pl.Reconcile(ctx, plan, o)
	mu.Lock()
	if bar != nil {
		_ = bar.Exit()
	}
	line(err == nil)
	mu.Unlock()
	fmt.Fprintf(stdout, "done: %d processed, %d enqueued, %d already current, %d superseded, %d rejected, %d failed; %d retired variants deleted\n",
		sum.Processed, sum.Enqueued, sum.UpToDate, sum.Superseded, sum.Rejected, sum.Failed, sum.Deleted)
	if r := (*queueRefusal)(nil); errors.As(context.Cause(ctx), &r) {
		return fmt.Errorf("reconcile: stopped: the event queue refuses every send (%w); check EVENT_QUEUE_URL and the credentials' sqs:SendMessage, then run it again", r.err)
	}
	if r := (*storeRefusal)(nil); errors.As(context.Cause(ctx), &r) {
		return fmt.Errorf("reconcile: stopped: %d originals in a row failed as the store refused them (last: %s); give the credentials their permissions or the disk its space, then run it again", r.n, oneLine(r.err.Error()))
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("reconcile: stopped; run it again to finish")
	}
	return err
}

// refusalsToStop is how many originals in a row a store's refusal of
// every write (storage.RefusesEveryWrite) must fail before the run stops.
const refusalsToStop = 20

// storeRefusal is why a run stopped early: n originals in a row failed
// as the store refused them, the last with err.
type storeRefusal struct {
	n   int
	err error
}

func (r *storeRefusal) Error() string { return r.err.Error() }

// queueRefusal is why a run with --enqueue stopped early: the queue
// refused a call as it will refuse every other.
type queueRefusal struct{ err error }

func (r *queueRefusal) Error() string { return r.err.Error() }

// oneLine is s on one line: an error of several parts (errors.Join's, a
// line each) would otherwise spread a record over several lines, which a
// log collector takes for as many records.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r", ""), "\n", "; ")
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// bytesText writes n in binary units.
func bytesText(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
