package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/storage"
)

// jittery is a real store whose calls each wait a moment drawn from a
// seeded source first, so that concurrent runs interleave their reads and
// writes in ever other orders; with failEvery > 0 it also fails about one
// call in failEvery as S3 does under load (503 SlowDown: a passing
// failure, which the event's sender retries).
type jittery struct {
	Store
	mu        sync.Mutex
	rng       *rand.Rand
	maxWait   time.Duration
	failEvery int
}

func (j *jittery) draw() (time.Duration, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fail := j.failEvery > 0 && j.rng.IntN(j.failEvery) == 0
	return time.Duration(j.rng.Int64N(int64(j.maxWait) + 1)), fail
}

var errInjected = fmt.Errorf("%w: injected SlowDown", storage.ErrUnavailable)

func (j *jittery) wait() error {
	d, fail := j.draw()
	time.Sleep(d)
	if fail {
		return errInjected
	}
	return nil
}

func (j *jittery) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	if err := j.wait(); err != nil {
		return nil, storage.Object{}, err
	}
	return j.Store.Get(ctx, key, o)
}

func (j *jittery) Head(ctx context.Context, key string) (storage.Object, error) {
	if err := j.wait(); err != nil {
		return storage.Object{}, err
	}
	return j.Store.Head(ctx, key)
}

func (j *jittery) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if err := j.wait(); err != nil {
		return storage.Object{}, err
	}
	return j.Store.Put(ctx, key, data, o)
}

func (j *jittery) Delete(ctx context.Context, key string) error {
	if err := j.wait(); err != nil {
		return err
	}
	return j.Store.Delete(ctx, key)
}

// event is one S3 event of the test: an original stored (etag) or removed.
type event struct {
	created bool
	etag    string
}

// orderSeed is the seed of TestEventsInAnyOrder: RESIZER_ORDER_SEED, or a
// fixed one.
func orderSeed(t *testing.T) uint64 {
	if s := os.Getenv("RESIZER_ORDER_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return 20261201
}

// Whatever order S3's events arrive in, however often each arrives, and
// however the runs they start overlap (SQS delivering a message again while
// its first delivery is still at work, a removal beside a newer upload, a
// creation of a version long replaced or deleted), once every delivery is
// done the outputs are what the originals as they last stand imply: the
// current version's variants and manifest, and nothing of a deleted
// original. Each round stores and deletes one key a few times, from three
// pictures (so that a version can come back with its ETag), and delivers
// every event once or twice, each at a random moment, with a random wait
// before every store call; a delivery that fails is sent again, as the
// forwarder and SQS would. RESIZER_ORDER_ROUNDS and RESIZER_ORDER_SEED
// run it longer or otherwise.
func TestEventsInAnyOrder(t *testing.T) {
	seed := orderSeed(t)
	rounds := 40
	if s := os.Getenv("RESIZER_ORDER_ROUNDS"); s != "" {
		rounds, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d, %d rounds (RESIZER_ORDER_SEED, RESIZER_ORDER_ROUNDS)", seed, rounds)
	st := stores(t)["s3"]
	pics := [][]byte{grey(t, 120, 80), grey(t, 90, 160), imagetest.Marked(t, 64, 48, image.Rect(0, 0, 8, 8))}
	for _, failEvery := range []int{0, 25} {
		t.Run("fail-every-"+strconv.Itoa(failEvery), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, uint64(failEvery)))
			j := &jittery{Store: st, rng: rand.New(rand.NewPCG(seed+1, uint64(failEvery))), maxWait: 15 * time.Millisecond,
				failEvery: failEvery}
			p := withVariants(t, j, "thumb:50x50:cover,medium:80x0")
			// The same outputs, looked at past the jitter.
			direct := &Pipeline{cfg: p.cfg, in: st, out: st}
			for round := range rounds {
				key := fmt.Sprintf("uploads/order/f%d-r%d.jpg", failEvery, round)
				if !orderRound(t, p, direct, st, rng, key, pics) {
					t.Errorf("round %d (seed %d) failed", round, seed)
				}
			}
		})
	}
}

// orderRound is one round of TestEventsInAnyOrder on key.
func orderRound(t *testing.T, p, direct *Pipeline, st Store, rng *rand.Rand, key string, pics [][]byte) bool {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var deliveries sync.WaitGroup
	var mu sync.Mutex
	var log []string
	deliver := func(ev event, after time.Duration) {
		defer deliveries.Done()
		time.Sleep(after)
		for try := 1; ; try++ {
			var res Result
			var err error
			if ev.created {
				res, err = p.Run(ctx, key, ev.etag)
			} else {
				res, err = p.Remove(ctx, key)
			}
			mu.Lock()
			log = append(log, fmt.Sprintf("%v %s try %d: %s %v", ev.created, ev.etag, try, res.Status, err))
			mu.Unlock()
			if err == nil || ctx.Err() != nil || try == 50 {
				if err != nil {
					t.Errorf("delivery of %+v: %v", ev, err)
				}
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	ops := 2 + rng.IntN(4)
	for range ops {
		var ev event
		if rng.IntN(4) == 0 {
			if err := st.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		} else {
			pic := pics[rng.IntN(len(pics))]
			obj, err := st.Put(ctx, key, pic, storage.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ev = event{created: true, etag: obj.ETag}
		}
		for range 1 + rng.IntN(2) {
			deliveries.Add(1)
			go deliver(ev, time.Duration(rng.IntN(120))*time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
	}
	done := make(chan struct{})
	go func() { deliveries.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(120 * time.Second):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s: deliveries still at work after 120 s; goroutines:\n%s", key, buf[:runtime.Stack(buf, true)])
	}
	if err := settled(t.Context(), direct, st, key); err != nil {
		t.Errorf("%s: %v\ndeliveries:\n%s", key, err, strings.Join(log, "\n"))
		return false
	}
	return true
}

// settled checks that the outputs of key are what the original as it
// stands implies: when it is there, a manifest of its ETag listing every
// configured variant, each output made from that ETag, and no other
// object under the output prefix made from key of another version; when it
// is gone, no object under the output prefix made from it.
func settled(ctx context.Context, p *Pipeline, st Store, key string) error {
	var errs []error
	head, err := st.Head(ctx, key)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	listed := map[string]bool{}
	if exists {
		etag := trimETag(head.ETag)
		m, obj, ok, err := p.readManifestObject(ctx, key)
		switch {
		case err != nil || !ok:
			errs = append(errs, fmt.Errorf("original %s stands without a manifest (%v)", etag, err))
		case trimETag(m.ETag) != etag || obj.Metadata[MetaSourceETag] != etag:
			errs = append(errs, fmt.Errorf("manifest of %s (metadata %s), the original is %s", trimETag(m.ETag), obj.Metadata[MetaSourceETag], etag))
		case len(m.Variants) != len(p.cfg.Variants):
			errs = append(errs, fmt.Errorf("manifest lists %d variants, want %d", len(m.Variants), len(p.cfg.Variants)))
		default:
			for _, v := range m.Variants {
				listed[v.Key] = true
				o, err := st.Head(ctx, v.Key)
				if err != nil || o.Metadata[MetaSourceETag] != etag {
					errs = append(errs, fmt.Errorf("variant %s: %v, made from %q, the original is %s", v.Key, err, o.Metadata[MetaSourceETag], etag))
				}
			}
		}
	}
	objs, err := st.(interface {
		List(context.Context, string, int) ([]storage.Object, error)
	}).List(ctx, p.cfg.OutputPrefix, 0)
	if err != nil {
		return err
	}
	rel := "/" + strings.TrimPrefix(key, p.cfg.InputPrefix)
	for _, o := range objs {
		if !strings.Contains(o.Key, rel) {
			continue // another round's
		}
		h, err := st.Head(ctx, o.Key)
		if err != nil {
			return err
		}
		src, _ := url.PathUnescape(h.Metadata[MetaSourceKey])
		if src != key {
			continue
		}
		switch {
		case !exists:
			errs = append(errs, fmt.Errorf("%s (of %s) outlived its deleted original", o.Key, h.Metadata[MetaSourceETag]))
		case !listed[o.Key] && o.Key != p.ManifestKey(key):
			errs = append(errs, fmt.Errorf("%s (of %s) stands beside the manifest's outputs", o.Key, h.Metadata[MetaSourceETag]))
		}
	}
	return errors.Join(errs...)
}

// actor names, in a context, who makes a store call (scripted).
type actorKey struct{}

func as(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, actorKey{}, who)
}

func actor(ctx context.Context) string { s, _ := ctx.Value(actorKey{}).(string); return s }

// scripted is a real store that calls hook before each of its calls, with
// who makes it (as), the operation (head, get, put, delete) and the key:
// the hook may act, wait, or fail the call with its error.
type scripted struct {
	Store
	hook func(ctx context.Context, op, key string) error
}

func (s *scripted) Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error) {
	if err := s.hook(ctx, "get", key); err != nil {
		return nil, storage.Object{}, err
	}
	return s.Store.Get(ctx, key, o)
}

func (s *scripted) Head(ctx context.Context, key string) (storage.Object, error) {
	if err := s.hook(ctx, "head", key); err != nil {
		return storage.Object{}, err
	}
	return s.Store.Head(ctx, key)
}

func (s *scripted) Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error) {
	if err := s.hook(ctx, "put", key); err != nil {
		return storage.Object{}, err
	}
	return s.Store.Put(ctx, key, data, o)
}

func (s *scripted) Delete(ctx context.Context, key string) error {
	if err := s.hook(ctx, "delete", key); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}

// scriptedPipeline is a pipeline on a directory through s, and one that

// processedThenDeleted stores pic as key, runs it (its outputs made) and
// deletes it again, the original gone with its outputs left: the start of
// a removal's story. It returns the version that was stored.
func processedThenDeleted(t *testing.T, p *Pipeline, d *storage.Dir, key string, pic []byte) storage.Object {
	t.Helper()
	v1, err := d.Put(t.Context(), key, pic, storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := p.Run(t.Context(), key, v1.ETag); err != nil || res.Status != StatusProcessed {
		t.Fatalf("v1: %+v %v", res, err)
	}
	if err := d.Delete(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	return v1
}

// looks at the same directory directly.
func scriptedPipeline(t *testing.T) (s *scripted, p, direct *Pipeline, d *storage.Dir) {
	d = dirStore(t)
	s = &scripted{Store: d, hook: func(context.Context, string, string) error { return nil }}
	p = withVariants(t, s, "thumb:50x50:cover,medium:80x0")
	return s, p, &Pipeline{cfg: p.cfg, in: d, out: d}, d
}

// waitFor waits for ch a bounded time: a script step that never comes is
// the test's failure, not a hang.
func waitFor(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-time.After(10 * time.Second):
		return false
	}
}

// counter counts calls by who makes them: each call returns the count
// with this one.
func counter() func(who string) int {
	var mu sync.Mutex
	n := map[string]int{}
	return func(who string) int {
		mu.Lock()
		defer mu.Unlock()
		n[who]++
		return n[who]
	}
}

type outcome struct {
	res Result
	err error
}

// A run whose writes land after a newer version's run has written its
// own makes the newer version's outputs again with a run of its own: it
// must not join a run of that version already under way, which may have
// written before it and finds itself current. Joining, the older
// version's outputs stood for good (clobber); and when the original came
// back to the first version meanwhile (A, B, A: the same bytes, the same
// ETag), the two runs waited for each other for ever (deadlock), and so
// did every later delivery of either event.
func TestOvertakenRunsAfresh(t *testing.T) {
	const key = "uploads/abc.jpg"
	a, b := grey(t, 120, 80), grey(t, 90, 160)
	for _, again := range []bool{false, true} {
		name := map[bool]string{false: "clobber", true: "deadlock"}[again]
		t.Run(name, func(t *testing.T) {
			s, p, direct, d := scriptedPipeline(t)
			ctx := t.Context()
			va, err := d.Put(ctx, key, a, storage.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var started, g2AtCheck, g1Joined = make(chan struct{}), make(chan struct{}), make(chan struct{})
			var once, once2 sync.Once
			count := counter()
			g2 := make(chan outcome, 1)
			s.hook = func(c context.Context, op, k string) error {
				who := actor(c)
				switch {
				case who == "1" && op == "put" && strings.HasPrefix(k, "resized/"):
					// B is stored and its event's run starts while A's run writes.
					once.Do(func() {
						vb, err := d.Put(ctx, key, b, storage.PutOptions{})
						if err != nil {
							panic(err)
						}
						go func() {
							res, err := p.Run(as(ctx, "2"), key, vb.ETag)
							g2 <- outcome{res, err}
						}()
						close(started)
					})
					if !again {
						waitFor(g2AtCheck) // A's writes land after B's
					}
				case who == "1" && op == "head" && k == key && count("1") == 2:
					// A's run looks after writing, finds B, and makes B's
					// outputs again: a moment later it has joined (or not)
					// B's run, which is still looking.
					once2.Do(func() { go func() { time.Sleep(200 * time.Millisecond); close(g1Joined) }() })
				case who == "2" && op == "head" && k == key && count("2") == 2:
					close(g2AtCheck)
					waitFor(g1Joined)
					if again {
						if _, err := d.Put(ctx, key, a, storage.PutOptions{}); err != nil {
							panic(err)
						}
					}
				}
				return nil
			}
			g1 := make(chan outcome, 1)
			go func() {
				res, err := p.Run(as(ctx, "1"), key, va.ETag)
				g1 <- outcome{res, err}
			}()
			for i, ch := range []chan outcome{g1, g2} {
				if i == 1 && !waitFor(started) {
					t.Fatal("B's run never started")
				}
				select {
				case o := <-ch:
					if o.err != nil {
						t.Errorf("run %d: %v", i+1, o.err)
					}
				case <-time.After(20 * time.Second):
					t.Fatalf("run %d still waiting after 20 s", i+1)
				}
			}
			if err := settled(ctx, direct, d, key); err != nil {
				t.Error(err)
			}
		})
	}
}

// A removal whose look found the original gone, beside a new upload of it
// whose run finishes before the removal deletes: the removal looks again
// after deleting, and makes the new original's outputs, which it deleted.
// Before, the new original stood without a variant or manifest, its own
// event done.
func TestRemoveBesideARecreation(t *testing.T) {
	const key = "uploads/back.jpg"
	s, p, direct, d := scriptedPipeline(t)
	ctx := t.Context()
	processedThenDeleted(t, p, d, key, grey(t, 120, 80))
	var once sync.Once
	s.hook = func(c context.Context, op, k string) error {
		if actor(c) == "R" && op == "get" && k == p.ManifestKey(key) {
			// The removal has found the original gone: it is stored
			// again, and its event's run done, before the removal deletes.
			once.Do(func() {
				v2, err := d.Put(ctx, key, grey(t, 90, 160), storage.PutOptions{})
				if err != nil {
					panic(err)
				}
				if res, err := p.Run(as(ctx, "2"), key, v2.ETag); err != nil || res.Status != StatusProcessed {
					t.Errorf("v2: %+v %v", res, err)
				}
			})
		}
		return nil
	}
	if _, err := p.Remove(as(ctx, "R"), key); err != nil {
		t.Fatal(err)
	}
	if err := settled(ctx, direct, d, key); err != nil {
		t.Error(err)
	}
}

// A run that cannot look at its original after writing (a passing
// failure of the store) does not take its outputs for current: its event
// fails, to be sent again, and the delivery again, finding another
// version stored, makes that version's outputs. Before, the run reported
// "processed", and the older version's outputs stood over the newer
// version's, whose event was done.
func TestOvertakenLookFails(t *testing.T) {
	const key = "uploads/look.jpg"
	s, p, direct, d := scriptedPipeline(t)
	ctx := t.Context()
	v1, err := d.Put(ctx, key, grey(t, 120, 80), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	count := counter()
	s.hook = func(c context.Context, op, k string) error {
		switch {
		case actor(c) == "1" && op == "put" && strings.HasPrefix(k, "resized/"):
			once.Do(func() { // v2 stored and made while v1's run is at work
				v2, err := d.Put(ctx, key, grey(t, 90, 160), storage.PutOptions{})
				if err != nil {
					panic(err)
				}
				if res, err := p.Run(as(ctx, "2"), key, v2.ETag); err != nil || res.Status != StatusProcessed {
					t.Errorf("v2: %+v %v", res, err)
				}
			})
		case actor(c) == "1" && op == "head" && k == key && count("1") == 2:
			return errInjected
		}
		return nil
	}
	for try := 1; ; try++ {
		res, err := p.Run(as(ctx, "1"), key, v1.ETag)
		t.Logf("delivery %d of v1's event: %s %v", try, res.Status, err)
		if err == nil {
			break
		}
		if try == 3 {
			t.Fatal("still failing")
		}
	}
	if err := settled(ctx, direct, d, key); err != nil {
		t.Error(err)
	}
}

// A run that fails after writing some outputs (here: its manifest cannot
// be written), whose original is then replaced by one of another format
// (other output keys): once the failed event is delivered again, nothing
// of the failed version stands. Before, its outputs stood for good beside
// the new version's, which no manifest listed to prune.
func TestStraysOfAFailedRun(t *testing.T) {
	const key = "uploads/stray.jpg"
	s, p, direct, d := scriptedPipeline(t)
	ctx := t.Context()
	v1, err := d.Put(ctx, key, grey(t, 120, 80), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.hook = func(c context.Context, op, k string) error {
		if actor(c) == "1" && op == "put" && k == p.ManifestKey(key) {
			return errInjected
		}
		return nil
	}
	if res, err := p.Run(as(ctx, "1"), key, v1.ETag); err == nil {
		t.Fatalf("v1: %+v, want the manifest's failure", res)
	}
	v2, err := d.Put(ctx, key, imagetest.Marked(t, 64, 48, image.Rect(0, 0, 8, 8)), storage.PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := p.Run(ctx, key, v2.ETag); err != nil || res.Status != StatusProcessed || !strings.HasSuffix(res.Outputs[0].Key, ".png") {
		t.Fatalf("v2: %+v %v", res, err)
	}
	if res, err := p.Run(ctx, key, v1.ETag); err != nil || res.Status != StatusSuperseded {
		t.Fatalf("v1 again: %+v %v", res, err)
	}
	if err := settled(ctx, direct, d, key); err != nil {
		t.Error(err)
	}
}

// A delivery that failed after deleting some outputs (a removal that
// found the original gone, which was then stored again with the same
// bytes) is sent again; its second try finds the original there and runs
// it: that run must not join a run of the same version that looked before
// the deletion, which finds every output current and ends the event with
// the deleted output missing for good. Before, it did (1 of 1 here; round
// 13 or 24 of TestEventsInAnyOrder/fail-every-25 on a loaded machine).
func TestRetryAfterADeletionRunsAfresh(t *testing.T) {
	const key = "uploads/again.jpg"
	s, p, direct, d := scriptedPipeline(t)
	ctx := t.Context()
	pic := grey(t, 120, 80)
	v1 := processedThenDeleted(t, p, d, key, pic)
	var once, once2, once3 sync.Once
	looking, release := make(chan struct{}), make(chan struct{})
	c := make(chan outcome, 1)
	s.hook = func(hc context.Context, op, k string) error {
		switch who := actor(hc); {
		case who == "R" && op == "get" && k == p.ManifestKey(key):
			// The removal has found the original gone: it is stored
			// again, the same bytes, and its event's run looks at the
			// outputs, all there, before the removal deletes them.
			once.Do(func() {
				if _, err := d.Put(ctx, key, pic, storage.PutOptions{}); err != nil {
					panic(err)
				}
				go func() {
					res, err := p.Run(as(ctx, "C"), key, v1.ETag)
					c <- outcome{res, err}
				}()
				waitFor(looking)
				time.Sleep(100 * time.Millisecond) // its HEADs of the variants done
			})
		case who == "R" && op == "delete" && strings.Contains(k, "/medium/"):
			return fmt.Errorf("delete %q: %w", k, storage.ErrUnavailable)
		case who == "C" && op == "head" && k == p.ManifestKey(key):
			once2.Do(func() { close(looking) })
			waitFor(release)
		case who == "R2" && op == "head" && k == key:
			// The removal sent again: a moment after it has looked, the
			// creation's run, joined or not, goes on.
			once3.Do(func() { go func() { time.Sleep(200 * time.Millisecond); close(release) }() })
		}
		return nil
	}
	if _, err := p.Remove(as(ctx, "R"), key); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("first try of the removal: %v, want its deletion failed", err)
	}
	if _, err := p.Remove(as(ctx, "R2"), key); err != nil {
		t.Fatalf("removal sent again: %v", err)
	}
	if o := <-c; o.err != nil {
		t.Fatalf("creation: %v", o.err)
	}
	if err := settled(ctx, direct, d, key); err != nil {
		t.Error(err)
	}
}
