package pipeline

import (
	"context"
	"path"
	"slices"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/storage"
)

// freshness is how much of an original's last run stands.
type freshness int

const (
	// stale: outputs are to be made (the original is to be read).
	stale freshness = iota
	// staleManifest: every output is current, but the manifest is not
	// (written under another VARIANTS_BASE_URL, ManifestVersion or set of
	// variants): it alone is to be written again (rewrite).
	staleManifest
	// fresh: nothing is to be done.
	fresh
)

// freshness reports whether every output of version etag of key carries
// etag, focus (FormatFocus, or empty for none) and its variant's current
// digest, and whether the manifest is there for etag, the configured
// variants and the current manifestDigest. The output keys are first
// predicted from the key's extension, in one round of HEADs; when that
// fails (no extension, one that lies, an image with alpha whose outputs
// are PNG, or a manifest out of date), the manifest says where the outputs
// are (recorded), and for staleManifest, res and ph are what its rewrite
// takes.
func (p *Pipeline) freshness(ctx context.Context, key, etag, focus string) (f freshness, res Result, ph placeholder) {
	if p.predictedCurrent(ctx, key, etag, focus) {
		return fresh, Result{}, placeholder{}
	}
	return p.recorded(ctx, key, etag, focus)
}

// recorded is freshness with the output keys the manifest records. For
// staleManifest, the manifest must also be of etag and record, for every
// configured variant, an output made by the variant's current definition
// (its digest): res, of StatusProcessed, is then the original as the
// manifest describes it with its outputs as they stand, and ph its
// placeholder. Width, height and format are the manifest's: the same
// definition and source give the same ones.
func (p *Pipeline) recorded(ctx context.Context, key, etag, focus string) (freshness, Result, placeholder) {
	m, obj, ok, err := p.readManifestObject(ctx, key)
	if err != nil || !ok || obj.Metadata[MetaSourceETag] != trimETag(etag) {
		return stale, Result{}, placeholder{}
	}
	outs := make([]Output, len(p.cfg.Variants))
	rewritable := trimETag(m.ETag) == trimETag(etag)
	for i, v := range p.cfg.Variants {
		j := slices.IndexFunc(m.Variants, func(mv ManifestVariant) bool { return mv.Name == v.Name })
		if j < 0 || !strings.HasPrefix(m.Variants[j].Key, p.cfg.OutputPrefix) {
			return stale, Result{}, placeholder{}
		}
		mv := m.Variants[j]
		f, err := imageproc.ParseFormat(mv.Format)
		rewritable = rewritable && err == nil && mv.Digest == v.Digest()
		outs[i] = Output{Variant: v.Name, Key: mv.Key, Format: f, Width: mv.Width, Height: mv.Height}
	}
	f, err := imageproc.ParseFormat(m.Format)
	rewritable = rewritable && err == nil
	current := p.manifestOf(obj, etag)
	if !current && !rewritable {
		return stale, Result{}, placeholder{} // without looking at the outputs
	}
	heads, ok := p.outputsCurrent(ctx, outs, etag, focus)
	switch {
	case !ok:
		return stale, Result{}, placeholder{}
	case current:
		return fresh, Result{}, placeholder{}
	}
	for i, h := range heads {
		outs[i].Bytes, outs[i].ETag = h.Size, h.ETag
	}
	return staleManifest, Result{Status: StatusProcessed, Key: key, ETag: m.ETag, Format: f, Width: m.Width, Height: m.Height,
		Bytes: m.Bytes, Outputs: outs}, placeholder{thumbHash: m.ThumbHash, dominant: m.DominantColor}
}

// rewrite writes the manifest of res, an original whose outputs are all
// current (staleManifest), again, without reading the original or making
// anything: the outputs its old manifest lists that are no longer
// configured are deleted, and the ready signal is sent with the new
// manifest, as after any run that writes one. Like such a run, it then
// checks that the version is still the stored one (stillCurrent).
func (p *Pipeline) rewrite(ctx context.Context, res Result, ph placeholder) (Result, error) {
	if err := p.finish(ctx, &res, ph); err != nil {
		return Result{}, err
	}
	return p.stillCurrent(ctx, res.Key, res.ETag, res)
}

// outputsCurrent reports whether each of outs, the outputs of the
// configured variants in order, is current (outputOf), with their HEADs.
func (p *Pipeline) outputsCurrent(ctx context.Context, outs []Output, etag, focus string) ([]storage.Object, bool) {
	heads := make([]storage.Object, len(outs))
	current := make([]bool, len(outs))
	parallel(len(outs), func(i int) error {
		obj, err := p.out.Head(ctx, outs[i].Key)
		heads[i], current[i] = obj, err == nil && p.outputOf(obj, i, etag, focus)
		return nil
	})
	return heads, !slices.Contains(current, false)
}

// outputOf reports whether obj, an output of the configured variant i,
// was made from version etag with focus, by the variant's definition.
func (p *Pipeline) outputOf(obj storage.Object, i int, etag, focus string) bool {
	return obj.Metadata[MetaSourceETag] == trimETag(etag) && obj.Metadata[MetaSourceFocus] == focus &&
		obj.Metadata[MetaVariantDigest] == p.cfg.Variants[i].Digest()
}

// manifestOf reports whether obj, a manifest, was written for version etag,
// the configured variants and the current manifestDigest (the outputs'
// URLs, ManifestVersion).
func (p *Pipeline) manifestOf(obj storage.Object, etag string) bool {
	return obj.Metadata[MetaSourceETag] == trimETag(etag) && obj.Metadata[MetaVariantDigest] == p.setDigest() &&
		obj.Metadata[MetaManifestDigest] == p.manifestDigest()
}

// predictedKey is where variant v of the original key, of format src
// (FormatUnknown when its extension says none), is stored when its
// outputs are made as the key predicts: in v's own format, or else in
// src's output format for an image without alpha. "" when neither says a
// format.
func (p *Pipeline) predictedKey(key string, src imageproc.Format, v Variant) string {
	f := v.Options.Format
	if f == imageproc.FormatUnknown {
		if src == imageproc.FormatUnknown {
			return ""
		}
		f = imageproc.OutputFormatFor(src, false)
	}
	return p.outputKey(key, v, f)
}

// predictedCurrent is freshness's fresh with the output keys the key's
// extension predicts, and the manifest's HEAD, all in one round.
func (p *Pipeline) predictedCurrent(ctx context.Context, key, etag, focus string) bool {
	src := imageproc.FormatOfExt(strings.TrimPrefix(path.Ext(key), "."))
	if src == imageproc.FormatUnknown {
		return false
	}
	keys := make([]string, len(p.cfg.Variants))
	for i, v := range p.cfg.Variants {
		keys[i] = p.predictedKey(key, src, v)
	}
	// The manifest too, written last: without it the run did not finish
	// (its retired outputs may remain, its ready signal was not sent).
	current := make([]bool, len(keys)+1)
	parallel(len(keys)+1, func(i int) error {
		if i == len(keys) {
			obj, err := p.out.Head(ctx, p.ManifestKey(key))
			current[i] = err == nil && p.manifestOf(obj, etag)
			return nil
		}
		obj, err := p.out.Head(ctx, keys[i])
		current[i] = err == nil && p.outputOf(obj, i, etag, focus)
		return nil
	})
	return !slices.Contains(current, false)
}
