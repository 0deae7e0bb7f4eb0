package pipeline

import (
	"path"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// Preset is a variant as delivery by URL serves it.
type Preset struct {
	// Options are the variant's options.
	Options imageproc.Options
	// Stored is the key where the variant of the original is stored, ""
	// when none is made for it.
	Stored string
	// Digest is the variant's definition's digest (MetaVariantDigest): a
	// stored output with another was made by an older definition.
	Digest string
}

// Preset returns the variant name of the original key, for delivery by
// URL: its options, and where its output is stored: for an input, at the
// format its key's extension predicts (as Run's check for current outputs
// does; a wrong guess only costs a render); "" for a key outside the
// inputs, which has no variants. It reports false when no variant has that
// name.
func (p *Pipeline) Preset(key, name string) (Preset, bool) {
	for _, v := range p.cfg.Variants {
		if v.Name != name {
			continue
		}
		pr := Preset{Options: v.Options, Digest: v.Digest()}
		if !p.isInput(key) {
			return pr, true
		}
		f := v.Options.Format
		if f == imageproc.FormatUnknown {
			src := imageproc.FormatOfExt(strings.TrimPrefix(path.Ext(key), "."))
			if src == imageproc.FormatUnknown {
				return pr, true
			}
			f = imageproc.OutputFormatFor(src, false)
		}
		pr.Stored = p.outputKey(key, v, f)
		return pr, true
	}
	return Preset{}, false
}
