package pipeline

import (
	"context"
	"path"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// Preset is a variant as delivery by URL serves it.
type Preset struct {
	// Options are the variant's options as defined, for an original
	// without a focal point (see OptionsFor).
	Options imageproc.Options
	// Stored is the key where the variant of the original is stored when
	// the original's key predicts it (see Preset), "" when it does not or
	// none is made for it.
	Stored string
	// Digest is the variant's definition's digest (MetaVariantDigest): a
	// stored output with another was made by an older definition.
	Digest  string
	variant Variant
}

// OptionsFor are the preset's options for an original whose metadata are
// meta: cut around its focal point, as the pipeline makes its variant.
func (pr Preset) OptionsFor(meta map[string]string) imageproc.Options {
	f, _ := storedFocus(meta) // one that does not parse is none, as in the pipeline
	return withFocus(pr.variant, f)
}

// Preset returns the variant name of the original key, for delivery by
// URL: its options, and where its output is stored: for an input, at the
// format its key's extension predicts (as Run's check for current outputs
// does; when the key predicts nothing, or wrongly, StoredVariant reads
// where it is); "" for a key outside the inputs, which has no variants. It
// reports false when no variant has that name.
func (p *Pipeline) Preset(key, name string) (Preset, bool) {
	for _, v := range p.cfg.Variants {
		if v.Name != name {
			continue
		}
		pr := Preset{Options: v.Options, Digest: v.Digest(), variant: v}
		if !p.isInput(key) {
			return pr, true
		}
		pr.Stored = p.predictedKey(key, imageproc.FormatOfExt(strings.TrimPrefix(path.Ext(key), ".")), v)
		return pr, true
	}
	return Preset{}, false
}

// StoredVariant returns the key of the variant name of the original key
// as its manifest lists it: where it is when the key's extension does not
// predict its format (no extension, one that lies, an alpha channel that
// made a JPEG's variant a PNG). "" when key is not an input, or no
// manifest lists the variant. The error is the store's.
func (p *Pipeline) StoredVariant(ctx context.Context, key, name string) (string, error) {
	if !p.isInput(key) {
		return "", nil
	}
	m, ok, err := p.readManifest(ctx, key)
	if err != nil || !ok {
		return "", err
	}
	for _, v := range m.Variants {
		if v.Name == name && p.isPrunable(v.Key) {
			return v.Key, nil
		}
	}
	return "", nil
}
