package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// The output prefix reserves the segments that start with "_" for what is
// not a variant (variant names never start with "_"): pruning and
// reconcile never touch them.
const (
	// ManifestSegment holds one manifest per original.
	ManifestSegment = "_manifest/"
	// CacheSegment holds the derived images of delivery by URL.
	CacheSegment = "_cache/"
)

// Manifest describes an original and its variants as last written: what a
// page needs to show it (sizes, a srcset, a placeholder), and the record of
// which outputs exist, so that the next run deletes those it no longer
// makes. It is written after every output, so that its presence with the
// source's ETag means the run finished.
type Manifest struct {
	Key string `json:"key"`
	// ETag is the original's, as the store gives it (quoted).
	ETag   string `json:"etag"`
	Format string `json:"format"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	// Focus is the focal point the variants were made with (FormatFocus),
	// empty when the original has none.
	Focus string `json:"focus,omitempty"`
	// Srcset lists the variants by width for an <img srcset>, their URLs
	// under the public base URL.
	Srcset string `json:"srcset"`
	// ThumbHash is the original's ThumbHash (base64 in JSON), a
	// placeholder of about 25 bytes; DominantColor its most common colour
	// (hex RRGGBB), empty when it has no opaque pixel.
	ThumbHash     []byte            `json:"thumbhash,omitempty"`
	DominantColor string            `json:"dominant_color,omitempty"`
	Variants      []ManifestVariant `json:"variants"`
}

// ManifestVariant is one output in a Manifest.
type ManifestVariant struct {
	Name   string `json:"name"`
	Key    string `json:"key"`
	URL    string `json:"url"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Bytes  int64  `json:"bytes"`
	Format string `json:"format"`
	Digest string `json:"digest"`
}

// ManifestKey is where the manifest of the original key is kept:
// OUTPUT_PREFIX + "_manifest/" + the key without the input prefix + ".json".
func (p *Pipeline) ManifestKey(key string) string {
	return p.cfg.OutputPrefix + ManifestSegment + strings.TrimPrefix(key, p.cfg.InputPrefix) + ".json"
}

// ManifestURL is the URL of the manifest of the original key, made as its
// variants' URLs are (PublicURL): under the public base URL, or else
// ObjectURL's; "" when there is neither, and the manifests' URLs are the
// keys themselves, relative.
func (p *Pipeline) ManifestURL(key string) string {
	if p.cfg.PublicBaseURL == "" && p.cfg.ObjectURL == nil {
		return ""
	}
	return p.PublicURL(p.ManifestKey(key))
}

// PublicURL is the URL of an output key under the public base URL (a CDN
// in front of the private bucket), or else ObjectURL's, or else the key
// itself, relative. A path keeps "+" as it is, and S3 reads it as a space:
// it is written %2B.
func (p *Pipeline) PublicURL(key string) string {
	esc := strings.ReplaceAll((&url.URL{Path: key}).EscapedPath(), "+", "%2B")
	if p.cfg.PublicBaseURL == "" {
		if p.cfg.ObjectURL != nil {
			return p.cfg.ObjectURL(key)
		}
		return esc
	}
	return strings.TrimSuffix(p.cfg.PublicBaseURL, "/") + "/" + esc
}

// placeholder is what a manifest shows until a variant has loaded: the
// original's ThumbHash and dominant colour (Manifest's fields).
type placeholder struct {
	thumbHash []byte
	dominant  string
}

// placeholderOf is the placeholder of info (nil: none).
func placeholderOf(info *imageproc.Info) placeholder {
	var ph placeholder
	if info != nil {
		ph.thumbHash = info.ThumbHash
		if info.Dominant != nil {
			ph.dominant = info.Dominant.String()
		}
	}
	return ph
}

// manifest is the manifest of res, with the placeholder ph.
func (p *Pipeline) manifest(res Result, ph placeholder) Manifest {
	m := Manifest{Key: res.Key, ETag: res.ETag, Format: res.Format.String(), Width: res.Width, Height: res.Height,
		Bytes: res.Bytes, Focus: focusText(res.Focus), ThumbHash: ph.thumbHash, DominantColor: ph.dominant, Variants: make([]ManifestVariant, len(res.Outputs))}
	for i, o := range res.Outputs {
		m.Variants[i] = ManifestVariant{Name: o.Variant, Key: o.Key, URL: p.PublicURL(o.Key), Width: o.Width, Height: o.Height,
			Bytes: o.Bytes, Format: o.Format.String(), Digest: p.cfg.Variants[i].Digest()}
	}
	opts := make([]imageproc.Options, len(p.cfg.Variants))
	for i, v := range p.cfg.Variants {
		opts[i] = v.Options
	}
	m.Srcset = srcset(m.Variants, opts, m.Width, m.Height)
	return m
}

// srcset lists the variants that show the whole original (its aspect
// ratio within 2 % or a pixel: a browser takes srcset's candidates for one picture at
// several sizes, so a square crop among them would be wrong), by width,
// one URL per width (the first variant of a width wins), as an <img
// srcset> reads them. When no variant shows the whole original, it lists
// them all. opts, when given, are the variants' options: one that shows
// the picture otherwise than as it is, whatever its aspect (see
// showsAsItIs), is no candidate.
func srcset(all []ManifestVariant, opts []imageproc.Options, w, h int) string {
	var vs []ManifestVariant
	for i, v := range all {
		if i < len(opts) && !showsAsItIs(opts[i]) {
			continue
		}
		// The height the original's aspect gives this width, within 2 %
		// or the pixel that rounding may take.
		want := float64(v.Width) * float64(h) / float64(max(w, 1))
		if math.Abs(float64(v.Height)-want) <= max(1, 0.02*want) {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		vs = all
	}
	byWidth := slices.Clone(vs)
	slices.SortStableFunc(byWidth, func(a, b ManifestVariant) int { return cmp.Compare(a.Width, b.Width) })
	var parts []string
	last := 0
	for _, v := range byWidth {
		if v.Width == last {
			continue
		}
		last = v.Width
		parts = append(parts, v.URL+" "+strconv.Itoa(v.Width)+"w")
	}
	return strings.Join(parts, ", ")
}

// showsAsItIs reports whether a variant of options o shows the whole
// original as it is, at some size: not a part of it (crop, trim), not
// turned or mirrored (rotate, flip; EXIF orientation is always applied),
// without borders of its own (pad) and not blurred. A crop of the middle
// half, or the picture upside down, has the original's aspect, and a
// browser would show it at whichever widths srcset gives it.
func showsAsItIs(o imageproc.Options) bool {
	return o.Crop == nil && o.Trim == nil && o.Rotate == 0 && o.Flip == imageproc.FlipNone &&
		o.Pad == [4]int{} && o.Blur == 0
}

// readManifest reads the manifest of the original key: ok false when there
// is none, or one that does not parse (written by another program), which
// only costs that outputs it listed are not pruned.
func (p *Pipeline) readManifest(ctx context.Context, key string) (Manifest, bool, error) {
	m, _, ok, err := p.readManifestObject(ctx, key)
	return m, ok, err
}

// readManifestObject is readManifest with the stored object's description
// (its metadata: the version and variants it was written for).
func (p *Pipeline) readManifestObject(ctx context.Context, key string) (Manifest, storage.Object, bool, error) {
	b, obj, err := p.out.Get(ctx, p.ManifestKey(key), storage.GetOptions{MaxBytes: 1 << 20})
	if errors.Is(err, storage.ErrNotFound) {
		return Manifest{}, obj, false, nil
	}
	if err != nil {
		return Manifest{}, obj, false, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Str("key", key).Msg("stored manifest ignored")
		return Manifest{}, obj, false, nil
	}
	return m, obj, true, nil
}

// isPrunable reports whether an output key may be deleted as a retired
// variant: it lies under the output prefix, and not in a reserved segment.
func (p *Pipeline) isPrunable(key string) bool {
	rest, ok := strings.CutPrefix(key, p.cfg.OutputPrefix)
	return ok && rest != "" && !strings.HasPrefix(rest, "_") && storage.ValidateKey(key) == nil
}

// retired reports whether name is not the name of a configured variant.
func (p *Pipeline) retired(name string) bool {
	return !slices.ContainsFunc(p.cfg.Variants, func(v Variant) bool { return v.Name == name })
}

// finish completes a run whose outputs are written (or found current:
// rewrite): it deletes the outputs the previous manifest lists that this
// run did not write (variants no longer configured, unless KeepRetired,
// or whose format and so key changed), writes the new manifest, with the placeholder ph,
// which marks the run as finished, and announces it (Ready).
func (p *Pipeline) finish(ctx context.Context, res *Result, ph placeholder) error {
	old, ok, err := p.readManifest(ctx, res.Key)
	if err != nil {
		return err
	}
	m := p.manifest(*res, ph)
	if ok {
		written := map[string]bool{}
		for _, o := range res.Outputs {
			written[o.Key] = true
		}
		var stale []string
		for _, v := range old.Variants {
			if !written[v.Key] && p.isPrunable(v.Key) && !(p.cfg.KeepRetired && p.retired(v.Name)) {
				stale = append(stale, v.Key)
			}
		}
		if stale, err = p.deleteOwned(ctx, res.Key, stale); err != nil {
			return fmt.Errorf("delete retired variants: %w", err)
		}
		res.Pruned = stale
		if res.wrote && (res.upload || trimETag(old.ETag) != trimETag(res.ETag) || old.Focus != m.Focus) {
			// A replaced original (or the same picture stored again with
			// another focal point): its outputs written over, and those
			// of the old one at keys this one has none at (its format,
			// and so their extension, changed).
			res.Stale = slices.Clone(stale)
			for _, v := range old.Variants {
				if written[v.Key] {
					res.Stale = append(res.Stale, v.Key)
				}
			}
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if _, err := p.out.Put(ctx, p.ManifestKey(res.Key), b, storage.PutOptions{ContentType: "application/json",
		CacheControl: "no-cache", Metadata: map[string]string{MetaSourceETag: trimETag(res.ETag), MetaSourceKey: escapeKey(res.Key),
			MetaVariantDigest: p.setDigest(), MetaManifestDigest: p.manifestDigest()}}); err != nil {
		return fmt.Errorf("store manifest: %w", err)
	}
	res.Manifest = &m
	if res.upload {
		// An upload's caller sends it (Announce), once it holds nothing
		// that other requests wait for.
		res.ready = &m
		return nil
	}
	p.announce(ctx, res.Key, m)
	return nil
}

// announce sends the ready signal of key's manifest m. The outputs are
// written and stay written: a signal that cannot be delivered (after the
// notifier's own retries) is logged, not a reason to make the variants
// again. It goes out even when the request that made them has ended (the
// client gone is no reason to keep it from the receiver), within a bound
// of its own, so that a receiver that hangs holds a webhook delivery for
// readyTimeout at most.
func (p *Pipeline) announce(ctx context.Context, key string, m Manifest) {
	if p.cfg.Ready == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	if err := p.cfg.Ready.Ready(rctx, m); err != nil {
		zerolog.Ctx(ctx).Error().Err(err).Str("key", key).Msg("ready signal not delivered")
	}
}

// readyTimeout bounds a ready signal, its retries included: well within
// the forwarder's bound on one webhook delivery.
const readyTimeout = 15 * time.Second

// setDigest is the digest of every configured variant, in order: the
// manifest's record of the definitions it was written under.
func (p *Pipeline) setDigest() string {
	var b strings.Builder
	for _, v := range p.cfg.Variants {
		b.WriteString(v.Name + "=" + v.Digest() + ";")
	}
	return digest(b.String())
}

// ManifestVersion is the version of the manifest's content: a release that
// changes what a manifest holds, or how it is written, raises it, so that
// every stored manifest is written again (without its variants being made
// again: see rewrite).
const ManifestVersion = "2" // 2: the focus

// urlSample is an output key whose URL shows how every output key becomes
// a URL: its base, and its escaping of a space and a "+".
const urlSample = "a/b c+d.jpg"

// manifestDigest is the digest of what a manifest's content depends on
// besides its outputs and its original: how an output key becomes a URL
// (VARIANTS_BASE_URL, or the local store's object URL), and
// ManifestVersion. The manifest records it (MetaManifestDigest), so that
// a change of either makes every manifest out of date.
func (p *Pipeline) manifestDigest() string {
	return digest("url=" + p.PublicURL(urlSample) + ";version=" + ManifestVersion)
}
