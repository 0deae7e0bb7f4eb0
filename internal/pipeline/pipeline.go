// Package pipeline turns a stored original into its variants: it reads the
// source, makes every configured variant in one pass through imageproc, and
// writes each under the output prefix with metadata that names the
// source's ETag. Work is idempotent (deterministic keys, skipped when every
// output is current) and guarded against loops (outputs never lie under the
// input prefix of the same store).
package pipeline

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/memo"
	"github.com/resizer/resizer/internal/storage"
)

// Store is what the pipeline needs of a store.
type Store interface {
	Get(ctx context.Context, key string, o storage.GetOptions) ([]byte, storage.Object, error)
	Head(ctx context.Context, key string) (storage.Object, error)
	Put(ctx context.Context, key string, data []byte, o storage.PutOptions) (storage.Object, error)
	Delete(ctx context.Context, key string) error
}

// Config is the pipeline's part of the configuration.
type Config struct {
	InputPrefix  string
	OutputPrefix string
	// SameStore is true when inputs and outputs share one bucket or
	// directory; the prefixes must then keep them apart.
	SameStore bool
	Variants  []Variant
	// CacheControl is written on every output.
	CacheControl string
	// MaxSourceBytes bounds the originals read back from the store.
	MaxSourceBytes int64
	// RejectedPrefix, when set, is where Run moves an original it can
	// never process (not an image, too large), out of the input prefix.
	RejectedPrefix string
	// PublicBaseURL is where the outputs are served from (a CDN in front
	// of the private bucket), for the manifests' URLs and srcset; empty:
	// the URLs are the keys, relative.
	PublicBaseURL string
	// ObjectURL, when set and PublicBaseURL is not, makes an output's URL
	// from its key (the local store's /objects/ route, which takes a key
	// as one segment).
	ObjectURL func(key string) string
	// Ready, when set, is told of every original whose outputs and
	// manifest are written.
	Ready Notifier
	// FailureTTL is how long a version of a source whose processing ran
	// into the processor's timeout is remembered: a second timeout within
	// it is permanent (ErrTimedOutAgain). 0 remembers none.
	FailureTTL time.Duration
	// KeepRetired leaves in place the outputs of variants no longer
	// configured (server reconcile --keep-retired): a run does not delete
	// those its original's previous manifest lists, nor Reconcile those
	// its plan found. Outputs of a configured variant at a key it no
	// longer writes (its format changed) are deleted all the same.
	KeepRetired bool
}

// Notifier announces that an original's variants are written. Its error
// is logged: the outputs stand either way.
type Notifier interface {
	Ready(ctx context.Context, m Manifest) error
}

// ErrLoop is a configuration under which outputs would be taken for inputs.
var ErrLoop = errors.New("outputs would land among inputs")

// Status is the outcome of one source.
type Status string

// The outcomes of one source.
const (
	StatusProcessed  Status = "processed"
	StatusUpToDate   Status = "skipped_up_to_date"
	StatusLoopGuard  Status = "skipped_loop_guard"
	StatusSuperseded Status = "superseded"
	StatusRejected   Status = "rejected"
	StatusDeleted    Status = "deleted"
)

// Metadata keys written on every output. S3 metadata must be ASCII, so
// the source key is percent-encoded as a URL path (escapeKey).
const (
	MetaSourceETag = "source-etag"
	MetaSourceKey  = "source-key"
	MetaVariant    = "variant"
	// MetaSourceFocus is the source's focal point the output was made
	// with (FormatFocus), absent when there was none.
	MetaSourceFocus = "source-focus"
	// MetaVariantDigest is the digest of the definition the output was
	// made under (Variant.Digest); on a manifest, that of every variant.
	MetaVariantDigest = "variant-digest"
	// MetaEncoder is EncoderVersion, for people: the digest holds it.
	MetaEncoder = "encoder"
	// MetaManifestDigest, on a manifest, is the digest of what else its
	// content depends on (manifestDigest): the outputs' public URLs and
	// ManifestVersion.
	MetaManifestDigest = "manifest-digest"
)

// escapeKey percent-encodes a key as a URL path ("/" kept), for metadata.
func escapeKey(key string) string { return (&url.URL{Path: key}).EscapedPath() }

// Output is one variant as written.
type Output struct {
	Variant       string
	Key           string
	Format        imageproc.Format
	Width, Height int
	Bytes         int64
	ETag          string
}

// Result is what became of one source.
type Result struct {
	Status Status
	// Reason says why a source was rejected.
	Reason        string
	Key           string
	ETag          string
	Format        imageproc.Format
	Width, Height int
	Bytes         int64
	// Focus is the source's focal point the outputs were made with (nil:
	// none, or one that did not parse).
	Focus   *imageproc.Point
	Outputs []Output
	// Manifest is the manifest written for the outputs (nil unless
	// processed); Pruned the outputs of an earlier run deleted because
	// this one no longer makes them.
	Manifest *Manifest
	Pruned   []string
	// Stale are the output keys whose earlier objects a CDN in front of
	// the outputs may still serve with another picture, one original's
	// worth: outputs written over for a replaced original (another
	// version, an upload, or the same bytes stored with another focus),
	// or deleted with their original. Not those a redefined variant wrote
	// over, nor those of a retired variant pruned: after a VARIANTS
	// change, reconcile makes them for every original, and invalidating a
	// bucket path by path would cost more than the one wildcard the
	// operator can send.
	Stale []string
	// wrote: this run wrote its outputs (a manifest alone written again
	// wrote none); upload: it was an upload's.
	wrote, upload bool
	// settle: the run found its version replaced or gone before it
	// wrote anything, and made nothing again (see settle).
	settle bool
	// ready is an upload's ready signal, not yet sent: Announce sends it.
	ready *Manifest
}

// Pipeline makes and stores the variants of originals.
type Pipeline struct {
	cfg     Config
	in, out Store
	proc    *imageproc.Processor
	// flights makes concurrent runs for one version of one source (a
	// duplicate delivery) share the first one's work.
	flights singleflight.Group
	// deletions counts the deletions of outputs, by stripe of source keys
	// (deletionStripe), and names the flights with it: a run that starts
	// after some of its source's outputs were deleted joins no run that
	// may have looked at them before (see Run).
	deletions [64]atomic.Uint64
	// timedOut are the versions of sources whose processing ran into the
	// timeout, by key and ETag.
	timedOut *memo.Memo[struct{}]
}

// New returns a pipeline reading from in and writing to out. It fails as
// Validate does, and when a part is missing.
func New(cfg Config, in, out Store, proc *imageproc.Processor) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var missing []string
	for _, part := range []struct {
		name string
		ok   bool
	}{{"Variants", len(cfg.Variants) > 0}, {"input store", in != nil}, {"output store", out != nil}, {"processor", proc != nil}} {
		if !part.ok {
			missing = append(missing, part.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("pipeline: missing %s", strings.Join(missing, ", "))
	}
	return &Pipeline{cfg: cfg, in: in, out: out, proc: proc, timedOut: memo.New[struct{}](cfg.FailureTTL)}, nil
}

// Validate reports every fault of the store layout at once, each naming
// its setting: ErrLoop when, in one store, either prefix contains the
// other (an empty input prefix contains everything) or the rejected prefix
// overlaps the input prefix.
func (cfg Config) Validate() error {
	var errs []error
	if err := checkPrefixes(cfg.InputPrefix, cfg.OutputPrefix, cfg.SameStore); err != nil {
		errs = append(errs, fmt.Errorf("INPUT_PREFIX/OUTPUT_PREFIX: %w", err))
	}
	if r := cfg.RejectedPrefix; r != "" && (strings.HasPrefix(r, cfg.InputPrefix) || strings.HasPrefix(cfg.InputPrefix, r)) {
		errs = append(errs, fmt.Errorf("REJECTED_PREFIX: %w: rejected prefix %q and input prefix %q overlap", ErrLoop, r, cfg.InputPrefix))
	}
	return errors.Join(errs...)
}

// checkPrefixes refuses, with ErrLoop, prefixes under which the pipeline
// would read its own outputs as new sources: the fault that the system
// resizer replaces had to be fixed by hand.
func checkPrefixes(input, output string, sameStore bool) error {
	if !sameStore {
		return nil
	}
	switch {
	case strings.HasPrefix(output, input):
		return fmt.Errorf("%w: output prefix %q lies inside input prefix %q of the same bucket", ErrLoop, output, input)
	case strings.HasPrefix(input, output):
		return fmt.Errorf("%w: input prefix %q lies inside output prefix %q of the same bucket", ErrLoop, input, output)
	}
	return nil
}

// isInput reports whether key is a source the pipeline processes: under
// the input prefix and, in a shared store, not under the output prefix.
func (p *Pipeline) isInput(key string) bool {
	return strings.HasPrefix(key, p.cfg.InputPrefix) &&
		!(p.cfg.SameStore && strings.HasPrefix(key, p.cfg.OutputPrefix))
}

// InputKey returns the key for a name a client chose, under the input
// prefix. The error wraps storage.ErrInvalidKey.
//
// A chosen name holds no bidirectional control (U+202E and its kin):
// the name is shown to people (a download's file name, a manifest, a
// listing), where such a character reorders what follows it, so that
// "tom\u202Egpj.exe" reads as "tomexe.jpg". Objects stored by other
// means keep their names; only a name a client asks for is refused.
func (p *Pipeline) InputKey(name string) (string, error) {
	key := p.cfg.InputPrefix + name
	if err := storage.ValidateKey(name); err != nil {
		return "", err
	}
	if i := strings.IndexFunc(name, func(r rune) bool { return unicode.Is(unicode.Bidi_Control, r) }); i >= 0 {
		r, _ := utf8.DecodeRuneInString(name[i:])
		return "", fmt.Errorf("%w %q: bidirectional control character %U", storage.ErrInvalidKey, name, r)
	}
	return key, storage.ValidateKey(key)
}

// CheckUpload checks, before an original of format f is uploaded to key
// straight to the store (a presigned upload, whose variants are made only
// when its event comes), what Upload checks before it stores anything:
// that every output it would have, and its manifest, has a key the
// output store takes. Such a key is longer than the original's (the
// output prefix, the variant's name, another format's extension), and an
// original stored without room for them would be rejected by its event,
// for good. The error wraps storage.ErrInvalidKey.
func (p *Pipeline) CheckUpload(key string, f imageproc.Format) error {
	for _, v := range p.cfg.Variants {
		formats := []imageproc.Format{v.Options.Format}
		if v.Options.Format == imageproc.FormatUnknown {
			// The original's, as either kind of image makes it.
			formats = append(slices.Clone(v.Options.Prefer), imageproc.OutputFormatFor(f, false), imageproc.OutputFormatFor(f, true))
		}
		for _, of := range formats {
			if err := p.checkOutputKey(p.outputKey(key, v, of)); err != nil {
				return fmt.Errorf("variant %s: %w", v.Name, err)
			}
		}
	}
	if err := p.checkOutputKey(p.ManifestKey(key)); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	return nil
}

// NewKey returns a fresh key under the input prefix for an upload of
// format f: the date, a random id and the format's extension.
func (p *Pipeline) NewKey(f imageproc.Format, now time.Time) string {
	return p.cfg.InputPrefix + now.UTC().Format("2006/01/02/") + strings.ToLower(rand.Text()[:20]) + "." + f.Ext()
}

// outputKey is where variant v of the source key is written in format f:
// the output prefix, the variant's name, the key without the input prefix,
// and f's extension when the key's own does not already say f.
func (p *Pipeline) outputKey(key string, v Variant, f imageproc.Format) string {
	rel := strings.TrimPrefix(key, p.cfg.InputPrefix)
	k := p.cfg.OutputPrefix + v.Name + "/" + rel
	if ext := strings.TrimPrefix(path.Ext(rel), "."); imageproc.FormatOfExt(ext) != f {
		k += "." + f.Ext()
	}
	return k
}

// Upload stores data as the original at key, with the user metadata meta
// (FocusMetadata, or what a signed upload URL carried), and its variants,
// made as that metadata says, as Run would make them from the stored
// original. It is all or nothing: the variants are made first (so that
// nothing is stored for an image that is refused: imageproc's errors, or
// ErrMisconfigured for a variant's watermark), every key is checked, and
// when a write fails, what was written is undone: a new original and its
// outputs are deleted; an original it replaced is put back and its
// variants made again (see rollback).
//
// Its ready signal is not sent: the caller sends it with Announce once it
// has given back what it held for the upload (a place at the gate, the
// body's memory), which a receiver that is slow or down would otherwise
// hold for as long as the signal's retries take.
func (p *Pipeline) Upload(ctx context.Context, key string, data []byte, meta map[string]string) (Result, error) {
	pr, err := p.prepare(ctx, key, data, meta)
	if err != nil {
		return Result{}, err
	}
	prev, err := p.previous(ctx, key)
	if err != nil {
		return Result{}, err
	}
	if j, ok := p.in.(Journal); ok {
		id, err := j.BeginUpload(key, data)
		if err != nil {
			return Result{}, err
		}
		// Done or undone, the key is as it should be; killed before
		// this, the next start finishes it (Recover).
		defer func() {
			if err := j.EndUpload(id); err != nil {
				zerolog.Ctx(ctx).Error().Err(err).Str("key", key).Msg("upload note left: the next start looks at the key again")
			}
		}()
	}
	obj, err := p.in.Put(ctx, key, data, storage.PutOptions{ContentType: pr.header.Format.ContentType(), Metadata: meta})
	if err != nil {
		return Result{}, fmt.Errorf("store original: %w", err)
	}
	res, err := p.store(ctx, obj, data, pr)
	if err == nil {
		res.upload = true
		err = p.finish(ctx, &res, pr.ph)
	}
	if err != nil {
		if rerr := p.rollback(ctx, obj, prev, append(pr.keys, p.ManifestKey(key))); rerr != nil {
			zerolog.Ctx(ctx).Error().Err(rerr).Str("key", key).Msg("failed upload not undone")
		}
		return Result{}, err
	}
	// Stored, and then replaced (or deleted) by another request to the
	// same key: the last to store the original wins, as in S3, and its
	// outputs are the ones that stand, though this upload's writes may
	// have landed over them. The upload itself succeeded.
	if overtaken, err := p.overtaken(ctx, key, obj.ETag); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("key", key).Msg("upload overtaken while its variants were written; the current original's not made again")
	} else if overtaken {
		zerolog.Ctx(ctx).Info().Str("key", key).Msg("upload overtaken while its variants were written; the current original's made again")
	}
	return res, nil
}

// Announce sends the ready signal of an upload's result, which Upload
// leaves to its caller; it does nothing for any other result, or when no
// signal is configured.
func (p *Pipeline) Announce(ctx context.Context, res Result) {
	if res.ready != nil {
		p.announce(ctx, res.Key, *res.ready)
	}
}

// original is an original as it was stored, to be put back; unheld when
// it was too large to be held (then it cannot be).
type original struct {
	data   []byte
	obj    storage.Object
	unheld bool
}

// previous reads the original an upload to key is about to replace, so
// that a failed upload can put it back: nil when there is none; unheld
// when it is over MaxSourceBytes (the service holds no more than that in
// memory), and then the failed upload's original is kept rather than it
// deleted too. The memory is bounded
// as the uploads are: the HTTP handlers call Upload holding a place at the
// gate, so at most CONCURRENCY such originals are held at once.
func (p *Pipeline) previous(ctx context.Context, key string) (*original, error) {
	data, obj, err := p.in.Get(ctx, key, storage.GetOptions{MaxBytes: p.cfg.MaxSourceBytes})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, nil
	case errors.Is(err, storage.ErrTooLarge):
		return &original{unheld: true}, nil
	case err != nil:
		return nil, fmt.Errorf("read the original it replaces: %w", err)
	}
	return &original{data: data, obj: obj}, nil
}

// rollback undoes a failed Upload, which stored stored as the original:
// unless another upload has replaced it since, which then owns the key,
// it deletes the new original and the outputs of it, or, when it replaced
// prev, puts prev back and makes prev's variants again (the failed upload
// may have overwritten some). It runs on even when the request's context
// has ended (the client gone is no reason to leave half an upload
// behind), within its own time limit; it is best effort: its errors are
// only logged, and a retried upload overwrites the same keys.
func (p *Pipeline) rollback(ctx context.Context, stored storage.Object, prev *original, outputs []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	key := stored.Key
	head, err := p.in.Head(ctx, key)
	if err != nil {
		return fmt.Errorf("look at the original: %w", err)
	}
	if trimETag(head.ETag) != trimETag(stored.ETag) {
		return nil // replaced again since: the newer upload's
	}
	if prev == nil {
		if err := p.in.Delete(ctx, key); err != nil {
			return fmt.Errorf("delete the original: %w", err)
		}
		_, err := p.deleteOwned(ctx, key, outputs)
		return err
	}
	if prev.unheld {
		// It cannot be put back, and deleting the new one would lose
		// both: the new one stays, and its variants are made once more.
		_, err := p.Run(ctx, key, stored.ETag)
		return err
	}
	if _, err := p.in.Put(ctx, key, prev.data, storage.PutOptions{ContentType: prev.obj.ContentType, Metadata: prev.obj.Metadata}); err != nil {
		return fmt.Errorf("put back the original it replaced: %w", err)
	}
	res, err := p.Run(ctx, key, "")
	if err != nil {
		return fmt.Errorf("make the variants of the original put back: %w", err)
	}
	// The failed upload's outputs at keys the original put back has none
	// at (its format, and so its outputs' extension, may differ). Found
	// up to date, it wrote none: its manifest says where they are.
	kept := map[string]bool{p.ManifestKey(key): true}
	for _, o := range res.Outputs {
		kept[o.Key] = true
	}
	if res.Status != StatusProcessed {
		m, ok, err := p.readManifest(ctx, key)
		if err != nil || !ok {
			return err // without one, which are strays is unknown: left
		}
		for _, v := range m.Variants {
			kept[v.Key] = true
		}
	}
	var stray []string
	for _, k := range outputs {
		if !kept[k] {
			stray = append(stray, k)
		}
	}
	_, err = p.deleteOwned(ctx, key, stray)
	return err
}

// options are the variants' options, in order, for a source with the
// focal point focus (nil: none; see withFocus).
func (p *Pipeline) options(focus *imageproc.Point) []imageproc.Options {
	opts := make([]imageproc.Options, len(p.cfg.Variants))
	for i, v := range p.cfg.Variants {
		opts[i] = withFocus(v, focus)
	}
	return opts
}

// outputKeys are the keys of the outputs of key, each checked as the
// output store checks keys (a key near the length limit has outputs over
// it), before anything is written; the manifest's key is checked too.
func (p *Pipeline) outputKeys(key string, results []*imageproc.Result) ([]string, error) {
	keys := make([]string, len(results))
	for i, r := range results {
		keys[i] = p.outputKey(key, p.cfg.Variants[i], r.Format)
		if err := p.checkOutputKey(keys[i]); err != nil {
			return nil, fmt.Errorf("variant %s: %w", p.cfg.Variants[i].Name, err)
		}
	}
	if err := p.checkOutputKey(p.ManifestKey(key)); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return keys, nil
}

// Journal is a store of originals that keeps, across a crash, the keys
// of its uploads under way: a directory, which has no event to finish
// what a killed upload left (an original without its variants), as S3's
// ObjectCreated does.
type Journal interface {
	// BeginUpload notes an upload of data to key, durably, with the
	// version (ETag) it stores, and returns the note's id.
	BeginUpload(key string, data []byte) (string, error)
	// EndUpload removes the note id.
	EndUpload(id string) error
	// PendingUploads returns the notes left, by id.
	PendingUploads() (map[string]storage.PendingUpload, error)
}

// Recover finishes what uploads cut short by a crash left, when the store
// of originals keeps a Journal: each key noted is brought in line with
// its original as it stands (the original's variants and manifest made,
// or the outputs of one that is gone deleted), and its note removed. A
// note that names the version its upload stored is run as that version's
// event (Run): replaced since (another upload, or its own rollback put
// the original it replaced back) or gone, the key is settled, and the
// outputs of the noted version at keys the original as it stands has
// none at (another format's extension) are deleted with the rest. It
// returns the keys it finished, each once. A key that fails keeps its
// note, for the next start; the error names the first.
func (p *Pipeline) Recover(ctx context.Context) ([]string, error) {
	j, ok := p.in.(Journal)
	if !ok {
		return nil, nil
	}
	notes, err := j.PendingUploads()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	// Notes of one version of one key (uploads of the same bytes cut
	// short together, notes a failing EndUpload left) are done once.
	finished := map[storage.PendingUpload]bool{}
	for id, n := range notes {
		key := n.Key
		var err error
		switch {
		case finished[n]:
		case n.ETag != "":
			_, err = p.Run(ctx, key, n.ETag)
		default:
			_, err = p.Remove(ctx, key)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("finish the upload of %q: %w", key, err))
			continue
		}
		finished[n] = true
		if err := j.EndUpload(id); err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, key)
	}
	slices.Sort(done)
	done = slices.Compact(done)
	if len(errs) > 0 {
		return done, errs[0]
	}
	return done, nil
}

// keyChecker is a store that holds fewer keys than storage.ValidateKey
// allows: a directory, whose file names are bounded in length.
type keyChecker interface {
	CheckKey(key string) error
}

// checkOutputKey checks key as the output store checks keys.
func (p *Pipeline) checkOutputKey(key string) error {
	if c, ok := p.out.(keyChecker); ok {
		return c.CheckKey(key)
	}
	return storage.ValidateKey(key)
}

// Run makes the variants of the stored source key at ETag etag (the
// current one when etag is empty), with the focal point of its metadata.
// A source outside the inputs is skipped (StatusLoopGuard); one whose
// outputs all carry etag and its current focus already is skipped without
// being read (StatusUpToDate: the same bytes uploaded again with another
// focus keep their ETag, so the ETag alone would not do); one that has
// changed or gone since the event was sent is StatusSuperseded, and the
// outputs are brought to what the original as it stands implies (settle).
// A source that can never be processed (IsPermanent) is StatusRejected
// with a nil error, and moved under RejectedPrefix when that is set. Concurrent runs for the same key
// and ETag do the work once.
func (p *Pipeline) Run(ctx context.Context, key, etag string) (Result, error) {
	if !p.isInput(key) {
		return Result{Status: StatusLoopGuard, Key: key}, nil
	}
	// A run under way may have found the outputs current before some of
	// them were deleted (a removal beside a new upload of the same bytes,
	// which failed after deleting and is sent again): it would report them
	// current. Only a run that started since the last such deletion is
	// joined.
	flight := key + "\x00" + etag + "\x00" + strconv.FormatUint(p.deletions[deletionStripe(key)].Load(), 10)
	v, err, _ := p.flights.Do(flight, func() (any, error) { return p.runOnce(ctx, key, etag) })
	if err != nil {
		return Result{}, err
	}
	res := v.(Result)
	if res.settle {
		// Outside the shared run: settle runs the stored version, and
		// a run waiting for another from inside its own could wait for
		// one that waits for it.
		if err := p.settle(ctx, key, etag); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// deletionStripe is the stripe of deletions that counts those of the
// outputs of the source key: a fixed number of counters, whatever the
// number of keys (two keys that share one only share fewer runs).
func deletionStripe(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(Pipeline{}.deletions)))
}

// deleted records that outputs of the source key, of the version it may
// hold again, were deleted, or may have been (a deletion that failed
// midway): runs of key that start from now on join none that started
// before (Run). A run's own pruning of outputs its version no longer
// makes need not: no run of the version looks at them.
func (p *Pipeline) deleted(key string) {
	p.deletions[deletionStripe(key)].Add(1)
}

// settle brings the outputs of key to what the original as it stands
// implies, after an event of version etag found that version replaced or
// gone: the stored version's outputs made when they are not current, or a
// deleted original's removed (Remove); and then the outputs of version
// etag at keys the stored one has none at (another format's extension)
// deleted. The event's version may have written them in a delivery that
// failed before it could prune them (a passing failure, a crash); that
// delivery failed, so the event comes again and settles them. Its
// successor's own event may have come first, and finds no manifest that
// lists them. Every event so leaves the key as its original stands, and
// a run that could not look at its original after writing (overtaken)
// fails its event, to be settled when it comes again.
func (p *Pipeline) settle(ctx context.Context, key, etag string) error {
	if _, err := p.Remove(ctx, key); err != nil {
		return err
	}
	if etag = trimETag(etag); etag == "" {
		return nil
	}
	stray, err := p.deleteIf(ctx, p.everyOutputKey(key), func(obj storage.Object) bool {
		return madeFrom(obj, key) && obj.Metadata[MetaSourceETag] == etag
	})
	p.deleted(key) // outputs of the version stored again, perhaps
	if err != nil {
		return fmt.Errorf("delete the outputs of a replaced version: %w", err)
	}
	if len(stray) == 0 {
		return nil
	}
	// Stored again since (the same bytes, the same ETag), its run may
	// have written them: made again, by a run of its own.
	switch head, err := p.in.Head(ctx, key); {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("look at the original after deleting: %w", err)
	case trimETag(head.ETag) == etag:
		_, err := p.runOnce(ctx, key, head.ETag)
		return err
	}
	return nil
}

// everyOutputKey lists every key an output of key can have: each
// variant's, in its format or, for a variant that keeps the original's,
// in every output format (the key's extension follows the format).
func (p *Pipeline) everyOutputKey(key string) []string {
	var keys []string
	for _, v := range p.cfg.Variants {
		formats := imageproc.OutputFormats
		if v.Options.Format != imageproc.FormatUnknown {
			formats = []imageproc.Format{v.Options.Format}
		}
		for _, f := range formats {
			if k := p.outputKey(key, v, f); !slices.Contains(keys, k) && storage.ValidateKey(k) == nil {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// keysToDelete lists the keys the outputs of key may be at, for their
// deletion: every key an output can have (everyOutputKey), and those m,
// its manifest (none: zero), lists besides (variants since retired).
func (p *Pipeline) keysToDelete(key string, m Manifest) []string {
	keys := p.everyOutputKey(key)
	for _, v := range m.Variants {
		if p.isPrunable(v.Key) && !slices.Contains(keys, v.Key) {
			keys = append(keys, v.Key)
		}
	}
	return keys
}

// runOnce is Run's work, in a run of its own: it joins no run under way.
// A run calls it, not Run, for work it must see done after its own writes
// (overtaken, remove): a run of the same version under way may have
// written before them, and finish as current; and a run waiting for
// another run, from inside its own, could wait for one that waits for it
// (the original back to an earlier version: A, B, A).
func (p *Pipeline) runOnce(ctx context.Context, key, etag string) (Result, error) {
	res, err := p.run(ctx, key, etag)
	err = p.timeoutAgain(key, etag, err)
	if err == nil {
		p.timedOut.Forget(timeoutKey(key, etag))
	}
	if err != nil && IsPermanent(err) {
		return p.reject(ctx, key, etag, err)
	}
	return res, err
}

// ErrKeyTaken: an output key of the source is another original's output
// key. A key keeps the original's name and adds the output format's
// extension only when the name's own does not say it, so that the WebP
// variant of a.jpg and the WebP variant of the original a.jpg.webp are
// both a.jpg.webp; whichever came first keeps it, and the other is
// refused rather than written over it, which would serve one original's
// picture as the other's.
var ErrKeyTaken = errors.New("output key taken by another original")

// claim looks at the output keys of source before they are written: it
// fails with ErrKeyTaken when one holds an output of another original
// that still exists (an output of one deleted, or of none named, is taken
// over), and otherwise returns, for each key, the ETag of the object to
// be written over ("" for none). The writes are conditional on them
// (store), so that of two originals that claim one key at once, the
// second to write finds it taken.
func (p *Pipeline) claim(ctx context.Context, source string, keys []string) ([]string, error) {
	over := make([]string, len(keys))
	err := parallel(len(keys), func(i int) error {
		var err error
		over[i], err = p.claimOne(ctx, source, keys[i])
		return err
	})
	return over, err
}

// claimOne is claim of one key.
func (p *Pipeline) claimOne(ctx context.Context, source, key string) (string, error) {
	obj, err := p.out.Head(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look at output %q: %w", key, err)
	}
	if ownsOutput(obj, source) {
		return obj.ETag, nil
	}
	other, err := url.PathUnescape(obj.Metadata[MetaSourceKey])
	if err != nil {
		return obj.ETag, nil
	}
	if _, err := p.in.Head(ctx, other); errors.Is(err, storage.ErrNotFound) {
		return obj.ETag, nil
	} else if err != nil {
		return "", fmt.Errorf("look at original %q: %w", other, err)
	}
	return "", fmt.Errorf("%w: %q would be written over the output of %q: give one of them another name",
		ErrKeyTaken, key, other)
}

// claimTries bounds the writes of one output that find the key changed
// since it was claimed, each claiming it again. Runs of one original
// writing at once take turns: a run whose version is no longer the stored
// one gives way (errGaveWay) to the stored version's, which tries again;
// another original's output ends it (ErrKeyTaken). Three tries, without
// giving way, failed most of twenty uploads of one key at once (a 500).
const claimTries = 16

// errGaveWay: an output was not written because its original is no longer
// the version it is made from, and the key changed meanwhile: the stored
// version's run writes it. The run goes on as one overtaken.
var errGaveWay = errors.New("gave way to the stored version")

// putClaimed writes an output at key over the object whose ETag over is
// (none: ""), the output of version etag of source, claiming the key
// again when it changed meanwhile; unless source is no longer version
// etag: then the output is left to the stored version (errGaveWay).
func (p *Pipeline) putClaimed(ctx context.Context, source, etag, key, over string, data []byte, o storage.PutOptions) (storage.Object, error) {
	for try := 1; ; try++ {
		o.IfMatch, o.IfAbsent = over, over == ""
		obj, err := p.out.Put(ctx, key, data, o)
		if !errors.Is(err, storage.ErrPreconditionFailed) || try == claimTries {
			return obj, err
		}
		switch head, herr := p.in.Head(ctx, source); {
		case errors.Is(herr, storage.ErrNotFound):
			return storage.Object{}, errGaveWay
		case herr != nil:
			return storage.Object{}, fmt.Errorf("look at original %q: %w", source, herr)
		case trimETag(head.ETag) != trimETag(etag):
			return storage.Object{}, errGaveWay
		}
		if over, err = p.claimOne(ctx, source, key); err != nil {
			return storage.Object{}, err
		}
	}
}

// ErrTimedOutAgain: the processing of one version of a source ran into the
// processor's timeout a second time within FailureTTL. A timeout may be
// the moment's (a machine slowed by its neighbours), so the first is worth
// a retry; the second is the source's own doing (a decompression bomb, a
// codec that hangs), and retrying it would only hold a processing slot for
// the whole timeout, each time, until the event reached the dead-letter
// queue.
var ErrTimedOutAgain = errors.New("processing timed out again")

// timeoutAgain returns err, made ErrTimedOutAgain when it is a timeout of
// version etag of key and an earlier one was remembered; a first timeout
// is remembered. Without an ETag nothing is: the version is unknown.
func (p *Pipeline) timeoutAgain(key, etag string, err error) error {
	if trimETag(etag) == "" || !errors.Is(err, imageproc.ErrTimeout) || p.timedOut.Add(timeoutKey(key, etag), struct{}{}) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrTimedOutAgain, err)
}

// timeoutKey is the timedOut memo's key of version etag of key.
func timeoutKey(key, etag string) string { return key + "\x00" + trimETag(etag) }

// IsPermanent reports whether err means that the source can never be
// processed, however often it is tried: it is not an image, or too large,
// or its key is not one the stores accept, or a variant's option cannot
// be used on it (a crop outside it), or it cannot be made as a variant
// asks (max_bytes under what quality 1 gives, a trim that leaves nothing),
// or its processing ran into the timeout twice (ErrTimedOutAgain), or its
// outputs' keys are another original's (ErrKeyTaken). A
// variant that names a watermark that cannot be used is not: no original
// can be made until the configuration is mended (ErrMisconfigured).
func IsPermanent(err error) bool {
	for _, e := range []error{imageproc.ErrUnsupported, imageproc.ErrUndecodable, imageproc.ErrTooLarge, imageproc.ErrBadOption,
		imageproc.ErrUnsatisfiable, storage.ErrInvalidKey, ErrTimedOutAgain, ErrKeyTaken} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// reject reports a source that cannot be processed and, with a rejected
// prefix, moves it there, so that it neither sits among the inputs nor is
// tried again. The move is best effort: the rejection stands either way.
// Then, unless its name is at fault, what other versions of the key left
// is deleted (dropReplaced); a failure to look or delete is an error,
// which may pass.
func (p *Pipeline) reject(ctx context.Context, key, etag string, cause error) (Result, error) {
	res := Result{Status: StatusRejected, Key: key, Reason: cause.Error()}
	if errors.Is(cause, storage.ErrInvalidKey) || errors.Is(cause, ErrKeyTaken) {
		return res, nil // its name is at fault, not its content: left where it is
	}
	if p.cfg.RejectedPrefix != "" {
		p.moveAside(ctx, key, etag, cause, &res)
	}
	stale, err := p.dropReplaced(ctx, key, etag)
	if err != nil {
		return Result{}, fmt.Errorf("rejected (%v), and the outputs of the version it replaced not deleted: %w", cause, err)
	}
	res.Stale = stale
	return res, nil
}

// moveAside moves version etag of key (the stored one when etag is empty)
// under the rejected prefix, and says in res's reason when it could not.
func (p *Pipeline) moveAside(ctx context.Context, key, etag string, cause error, res *Result) {
	// The version that failed, and no other: one stored since is its own
	// event's to judge (a precondition failure leaves it in place).
	o := storage.GetOptions{MaxBytes: p.cfg.MaxSourceBytes}
	if etag = trimETag(etag); etag != "" {
		o.IfMatch = `"` + etag + `"`
	}
	data, obj, err := p.in.Get(ctx, key, o)
	if err == nil {
		to := p.cfg.RejectedPrefix + strings.TrimPrefix(key, p.cfg.InputPrefix)
		if _, err = p.in.Put(ctx, to, data, storage.PutOptions{ContentType: obj.ContentType,
			Metadata: map[string]string{MetaSourceKey: escapeKey(key), "rejected": truncate(cause.Error(), 200)}}); err == nil {
			err = p.deleteIfStill(ctx, key, obj.ETag)
		}
	}
	if err != nil {
		res.Reason += " (not moved: " + err.Error() + ")"
	}
}

// dropReplaced deletes, once version etag of key has been rejected (the
// stored one when etag is empty), what other versions of key left: their
// variants and manifest would otherwise stand for an original that can
// have none, served and listed as its own, and a manifest whose etag is
// the old version's. Outputs of the rejected version itself (made under
// other variant definitions, before one could not be made) are kept, as
// is everything when the key holds another version by now (its own event
// judges it). An original moved aside or deleted meanwhile has its
// outputs removed as its removal would (remove). As remove does, it looks
// at the original again after deleting, and makes the outputs of a
// version stored meanwhile again. It returns the keys it deleted.
func (p *Pipeline) dropReplaced(ctx context.Context, key, etag string) ([]string, error) {
	head, err := p.in.Head(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		res, err := p.remove(ctx, key)
		return res.Stale, err
	case err != nil:
		return nil, fmt.Errorf("look at the original: %w", err)
	}
	if etag = trimETag(etag); etag == "" {
		etag = trimETag(head.ETag)
	}
	if trimETag(head.ETag) != etag {
		return nil, nil
	}
	m, mobj, listed, err := p.readManifestObject(ctx, key)
	if err != nil {
		return nil, err
	}
	deleted, err := p.deleteIf(ctx, p.keysToDelete(key, m), func(obj storage.Object) bool {
		return madeFrom(obj, key) && obj.Metadata[MetaSourceETag] != etag
	})
	p.deleted(key)
	if err != nil {
		return nil, fmt.Errorf("delete the outputs of the version replaced: %w", err)
	}
	if (listed || mobj.ETag != "") && mobj.Metadata[MetaSourceETag] != etag {
		if err := p.out.Delete(ctx, p.ManifestKey(key)); err != nil {
			return nil, fmt.Errorf("delete the manifest of the version replaced: %w", err)
		}
	}
	switch head, err := p.in.Head(ctx, key); {
	case errors.Is(err, storage.ErrNotFound):
		res, err := p.remove(ctx, key)
		return append(deleted, res.Stale...), err
	case err != nil:
		return nil, fmt.Errorf("look at the original after deleting: %w", err)
	case trimETag(head.ETag) != etag:
		// Stored since: its run may have finished before these deletions.
		if _, err := p.runOnce(ctx, key, head.ETag); err != nil {
			return nil, err
		}
	}
	return deleted, nil
}

// deleteOwned deletes those of the outputs keys that are source's, and
// returns them. Two originals can have one output key (a.jpg's WebP
// variant is a.jpg.webp, as is the original a.jpg.webp's), and anyone
// may store objects under the output prefix, so an object is deleted only
// when its metadata names source (madeFrom): every output the service
// has written names its original. Keys the store cannot hold (a long key
// with a format's extension appended) hold nothing and are skipped.
func (p *Pipeline) deleteOwned(ctx context.Context, source string, keys []string) ([]string, error) {
	return p.deleteIf(ctx, keys, func(obj storage.Object) bool { return madeFrom(obj, source) })
}

// deleteIf deletes those of keys whose object, as a HEAD finds it, is
// one that owned says it may delete, and returns them.
func (p *Pipeline) deleteIf(ctx context.Context, keys []string, owned func(storage.Object) bool) ([]string, error) {
	gone := make([]bool, len(keys))
	err := parallel(len(keys), func(i int) error {
		if storage.ValidateKey(keys[i]) != nil {
			return nil
		}
		obj, err := p.out.Head(ctx, keys[i])
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil
		case err != nil:
			return err
		}
		if !owned(obj) {
			return nil // another original's, or not an output at all
		}
		gone[i] = true
		return p.out.Delete(ctx, keys[i])
	})
	var deleted []string
	for i, k := range keys {
		if gone[i] {
			deleted = append(deleted, k)
		}
	}
	return deleted, err
}

// ownsOutput reports whether obj, at an output key of source, may be
// written over by source's output: its metadata name source, or no
// original (an object the service did not write, at a key it owns: the
// output would otherwise never be made).
func ownsOutput(obj storage.Object, source string) bool {
	_, ok := obj.Metadata[MetaSourceKey]
	return !ok || madeFrom(obj, source)
}

// madeFrom reports whether obj is an output made from source: its
// metadata name source (escapeKey). Only such an object is ever deleted:
// one without the name is not the service's.
func madeFrom(obj storage.Object, source string) bool {
	owner, ok := obj.Metadata[MetaSourceKey]
	return ok && owner == escapeKey(source)
}

// deleteIfStill deletes key if it is still version etag. The stores have
// no conditional delete, so a version stored between the look and the
// delete (milliseconds) could still go; its own event then finds it gone.
func (p *Pipeline) deleteIfStill(ctx context.Context, key, etag string) error {
	head, err := p.in.Head(ctx, key)
	if err != nil {
		return err
	}
	if trimETag(head.ETag) != trimETag(etag) {
		return fmt.Errorf("%w: replaced by version %s", storage.ErrPreconditionFailed, head.ETag)
	}
	return p.in.Delete(ctx, key)
}

// truncate keeps metadata values within what S3 allows (ASCII, short).
func truncate(s string, n int) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > n {
		b = b[:n]
	}
	return string(b)
}

// Remove deletes the variants of a source that was deleted. A source that
// is there all the same gets the variants of the version now stored, as
// Run makes them (StatusUpToDate when they are): on a versioned bucket a
// removal can bring an older version back with no creation reported (the
// newest version deleted by its ID, or a delete marker deleted: an
// undelete), and the outputs of the version removed must not stand for
// it, nor an undeleted original stay without any. A source re-created
// after the deletion is found up to date, or made a moment before its own
// event would make it.
func (p *Pipeline) Remove(ctx context.Context, key string) (Result, error) {
	res, err := p.remove(ctx, key)
	if err != nil || res.Status != StatusSuperseded {
		return res, err
	}
	return p.Run(ctx, key, res.ETag)
}

// remove is Remove without the run of a source that is there, which it
// reports as StatusSuperseded with the stored ETag. overtaken calls it
// from inside a run, where a run of the same version would wait for
// itself; a source there again has an event of its own. A source stored
// again while the outputs were deleted is made again, by a run of its own
// (runOnce), and that run's result is remove's.
func (p *Pipeline) remove(ctx context.Context, key string) (Result, error) {
	if !p.isInput(key) {
		return Result{Status: StatusLoopGuard, Key: key}, nil
	}
	if head, err := p.in.Head(ctx, key); err == nil {
		return Result{Status: StatusSuperseded, Key: key, ETag: head.ETag}, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return Result{}, err
	}
	// A variant kept the source's format, which is gone with it: every
	// format it could have had is deleted (deleting nothing is no error),
	// and what the manifest lists; then the manifest itself.
	m, _, err := p.readManifest(ctx, key)
	if err != nil {
		return Result{}, err
	}
	deleted, err := p.deleteOwned(ctx, key, p.keysToDelete(key, m))
	p.deleted(key) // done or failed, some may be gone
	if err != nil {
		return Result{}, fmt.Errorf("delete variants: %w", err)
	}
	if err := p.out.Delete(ctx, p.ManifestKey(key)); err != nil {
		return Result{}, fmt.Errorf("delete manifest: %w", err)
	}
	// Stored again since the look, its run may have finished before these
	// deletions, and its event be done: its outputs are made again, by a
	// run of its own (one under way may have written before them).
	switch head, err := p.in.Head(ctx, key); {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return Result{}, fmt.Errorf("look at the original after deleting: %w", err)
	default:
		return p.runOnce(ctx, key, head.ETag)
	}
	return Result{Status: StatusDeleted, Key: key, Stale: deleted}, nil
}

func (p *Pipeline) run(ctx context.Context, key, etag string) (Result, error) {
	// The head gives the ETag when the event has none, and the focus the
	// outputs must have been made with to be current.
	head, err := p.in.Head(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Result{Status: StatusSuperseded, Key: key, ETag: etag, settle: true}, nil
	}
	if err != nil {
		return Result{}, err
	}
	if etag == "" {
		etag = head.ETag
	}
	if trimETag(head.ETag) == trimETag(etag) {
		focus, _ := storedFocus(head.Metadata) // one that does not parse is none, as make takes it
		switch f, res, ph := p.freshness(ctx, key, etag, focusText(focus)); f {
		case fresh:
			return Result{Status: StatusUpToDate, Key: key, ETag: etag}, nil
		case staleManifest:
			res.ETag, res.Focus = head.ETag, focus
			return p.rewrite(ctx, res, ph)
		}
	}
	data, obj, err := p.in.Get(ctx, key, storage.GetOptions{IfMatch: etag, MaxBytes: p.cfg.MaxSourceBytes})
	switch {
	case errors.Is(err, storage.ErrPreconditionFailed), errors.Is(err, storage.ErrNotFound):
		return Result{Status: StatusSuperseded, Key: key, ETag: etag, settle: true}, nil
	case errors.Is(err, storage.ErrTooLarge):
		return Result{}, fmt.Errorf("%w: source %s", imageproc.ErrTooLarge, err)
	case err != nil:
		return Result{}, err
	}
	res, err := p.make(ctx, obj, data)
	if err != nil {
		return res, err
	}
	return p.stillCurrent(ctx, key, etag, res)
}

// stillCurrent is res, the result of making version etag of key, unless
// that version was overtaken while it was made: then StatusSuperseded.
func (p *Pipeline) stillCurrent(ctx context.Context, key, etag string, res Result) (Result, error) {
	switch overtaken, err := p.overtaken(ctx, key, etag); {
	case err != nil:
		return Result{}, err
	case overtaken:
		return Result{Status: StatusSuperseded, Key: key, ETag: etag}, nil
	}
	return res, nil
}

// overtaken checks, once version etag of key is made, that it is still
// the stored one. The read was of that version (If-Match), or the upload
// stored it, but the writes that followed could land after a newer
// version's own run (or upload) had written its outputs and manifest, and
// over them; or after the source's deletion had removed its outputs,
// which would then outlive it. Replaced since, the current version is
// made again, by a run of its own; deleted, what was written is
// removed. Either way it reports true: this version's outputs do not
// stand. A failed look is an error.
func (p *Pipeline) overtaken(ctx context.Context, key, etag string) (bool, error) {
	head, err := p.in.Head(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if _, err := p.remove(ctx, key); err != nil {
			return true, fmt.Errorf("deleted while it was made: %w", err)
		}
	case err != nil:
		// Unknown: the writes may have landed over a newer version's
		// outputs, whose event is done. The event fails, and comes
		// again to find its version replaced (settle).
		return false, fmt.Errorf("look at the original after writing: %w", err)
	case trimETag(head.ETag) == trimETag(etag):
		return false, nil
	default:
		// A run of its own, started after these writes: one under way
		// may have written before them.
		if _, err := p.runOnce(ctx, key, head.ETag); err != nil {
			return true, fmt.Errorf("replaced while it was made: %w", err)
		}
	}
	return true, nil
}

// make processes the source, with the focus its metadata give it, and
// writes every output.
func (p *Pipeline) make(ctx context.Context, src storage.Object, data []byte) (Result, error) {
	pr, err := p.prepare(ctx, src.Key, data, src.Metadata)
	if err != nil {
		return Result{}, err
	}
	res, err := p.store(ctx, src, data, pr)
	if err != nil {
		return Result{}, err
	}
	if err := p.finish(ctx, &res, pr.ph); err != nil {
		return Result{}, err
	}
	return res, nil
}

// prepared is an original's variants made in memory, before anything is
// written: the header of the original and the focus they were cut
// around, the keys they go to, each claimed (over: the ETag of the object
// to write over, "" for none), and the original's placeholder.
type prepared struct {
	header  imageproc.Header
	focus   *imageproc.Point
	results []*imageproc.Result
	keys    []string
	over    []string
	ph      placeholder
}

// prepare makes the variants of the original key, data with the
// metadata meta (its focus), and claims their keys: what Upload and a run
// do alike before they write. Its errors are imageproc's (ErrMisconfigured
// for a variant's watermark), a key the stores cannot hold, and
// ErrKeyTaken.
func (p *Pipeline) prepare(ctx context.Context, key string, data []byte, meta map[string]string) (prepared, error) {
	pr := prepared{focus: focusOf(ctx, key, meta)}
	var err error
	if pr.header, pr.results, err = p.proc.Variants(ctx, data, p.options(pr.focus)); err != nil {
		return prepared{}, misconfigured(err)
	}
	if pr.keys, err = p.outputKeys(key, pr.results); err != nil {
		return prepared{}, err
	}
	if pr.over, err = p.claim(ctx, key, pr.keys); err != nil {
		return prepared{}, err
	}
	info, err := p.proc.Info(ctx, data)
	if err != nil {
		return prepared{}, fmt.Errorf("placeholder: %w", err)
	}
	pr.ph = placeholderOf(info)
	return pr, nil
}

// store writes the outputs of src, as pr made and claimed them.
func (p *Pipeline) store(ctx context.Context, src storage.Object, data []byte, pr prepared) (Result, error) {
	res := Result{Status: StatusProcessed, Key: src.Key, ETag: src.ETag, Format: pr.header.Format,
		Width: pr.header.Width, Height: pr.header.Height, Bytes: int64(len(data)), Focus: pr.focus,
		Outputs: make([]Output, len(pr.results)), wrote: true}
	err := parallel(len(pr.results), func(i int) error {
		r, v := pr.results[i], p.cfg.Variants[i]
		meta := map[string]string{
			MetaSourceETag: trimETag(src.ETag),
			MetaSourceKey:  escapeKey(src.Key),
			MetaVariant:    v.Name,
			// The definition it was made under: a changed one makes
			// it out of date (outputOf).
			MetaVariantDigest: v.Digest(),
			MetaEncoder:       EncoderVersion,
		}
		if pr.focus != nil {
			meta[MetaSourceFocus] = FormatFocus(*pr.focus)
		}
		obj, err := p.putClaimed(ctx, src.Key, src.ETag, pr.keys[i], pr.over[i], r.Data, storage.PutOptions{
			ContentType:  r.Format.ContentType(),
			CacheControl: p.cfg.CacheControl,
			Metadata:     meta,
		})
		if errors.Is(err, errGaveWay) {
			// Replaced meanwhile: the run ends as overtaken (Upload,
			// stillCurrent), as if this had been written and then
			// written over.
			err = nil
		}
		if err != nil {
			return fmt.Errorf("store variant %s: %w", v.Name, err)
		}
		res.Outputs[i] = Output{Variant: v.Name, Key: pr.keys[i], Format: r.Format, Width: r.Width, Height: r.Height,
			Bytes: int64(len(r.Data)), ETag: obj.ETag}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	return res, nil
}

func trimETag(e string) string { return strings.Trim(e, `"`) }

// parallel runs fn(0..n-1) at once and returns the first error.
func parallel(n int, fn func(i int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = fn(i)
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}
