package pipeline

import (
	"path"
	"strings"

	"github.com/resizer/resizer/internal/imageproc"
)

// Preset returns the options of the variant name, for delivery by URL, and
// the key where its output of the original key is stored: for an input,
// at the format its key's extension predicts (as Run's check for current
// outputs does; a wrong guess only costs a render); "" for a key outside
// the inputs, which has no variants. It reports false when no variant has
// that name.
func (p *Pipeline) Preset(key, name string) (imageproc.Options, string, bool) {
	for _, v := range p.cfg.Variants {
		if v.Name != name {
			continue
		}
		if !p.isInput(key) {
			return v.Options, "", true
		}
		f := v.Options.Format
		if f == imageproc.FormatUnknown {
			src := imageproc.FormatOfExt(strings.TrimPrefix(path.Ext(key), "."))
			if src == imageproc.FormatUnknown {
				return v.Options, "", true
			}
			f = imageproc.OutputFormatFor(src, false)
		}
		return v.Options, p.outputKey(key, v, f), true
	}
	return imageproc.Options{}, "", false
}
