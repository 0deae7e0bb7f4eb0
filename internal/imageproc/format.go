package imageproc

import (
	"fmt"
	"slices"
	"strings"
)

// Format is an image file format known to the service, as input or output.
type Format int

// The formats. The zero value is FormatUnknown.
const (
	FormatUnknown Format = iota
	FormatJPEG
	FormatPNG
	FormatWebP
	FormatGIF
	FormatAVIF
	FormatHEIF
	FormatTIFF
	FormatSVG
	FormatPDF
	FormatJXL
	numFormats
)

// formatInfo is everything the service knows of one format. Every other
// list of formats (names, media types, extensions, loaders, what can be
// written, default qualities) is derived from formatTable.
type formatInfo struct {
	name string
	// names are further names ParseFormat accepts.
	names []string
	// types are its media types, the canonical one first.
	types []string
	// exts are its file extensions, the usual one first.
	exts []string
	// loader is libvips' loader class; blocking it blocks its file, buffer
	// and source variants.
	loader string
	// saver is libvips' saver class where libvips marks it untrusted, and
	// so blocks it, until the format is enabled.
	saver string
	// write: the service can write it. alpha: it can hold transparency.
	// keeps: the service can write an EXIF block and an ICC profile into
	// it (keep=copyright, keep=icc). animate: it can hold frames, and the
	// service writes them.
	write, alpha, keeps, animate bool
	// quality is the default for lossy output: visually transparent for
	// photographs at web sizes (AVIF reaches the same look at a lower
	// number); 0 where quality means nothing.
	quality int
	// maxSide is the longest side the format, or its encoder, holds: a
	// WebP's 14 bits, a GIF's 16, libjpeg's 65,500, AV1's 65,536 (past it
	// libheif writes an AVIF without its image); 0 where the service
	// meets none (PNG and JPEG XL write and read a 1,000,001-pixel strip).
	maxSide int
	// byDefault: accepted as input when INPUT_FORMATS is not set: the
	// formats browsers and cameras produce, each decoded by a library built
	// for untrusted input. TIFF, SVG, PDF and JPEG XL must be asked for.
	byDefault bool
}

var formatTable = [numFormats]formatInfo{
	FormatJPEG: {name: "jpeg", names: []string{"jpg"}, types: []string{"image/jpeg", "image/jpg", "image/pjpeg"},
		exts: []string{"jpg", "jpeg", "jpe"}, loader: "VipsForeignLoadJpeg", write: true, keeps: true, quality: 80,
		maxSide: 65500, byDefault: true},
	FormatPNG: {name: "png", types: []string{"image/png"}, exts: []string{"png"},
		loader: "VipsForeignLoadPng", write: true, alpha: true, keeps: true, byDefault: true},
	FormatWebP: {name: "webp", types: []string{"image/webp"}, exts: []string{"webp"},
		loader: "VipsForeignLoadWebp", write: true, alpha: true, keeps: true, animate: true, quality: 80, maxSide: 16383,
		byDefault: true},
	FormatGIF: {name: "gif", types: []string{"image/gif"}, exts: []string{"gif"},
		loader: "VipsForeignLoadNsgif", write: true, alpha: true, animate: true, maxSide: 65535, byDefault: true},
	FormatAVIF: {name: "avif", types: []string{"image/avif"}, exts: []string{"avif"},
		loader: "VipsForeignLoadHeif", write: true, alpha: true, keeps: true, quality: 60, maxSide: 65536,
		byDefault: true},
	FormatHEIF: {name: "heif", names: []string{"heic"}, types: []string{"image/heif", "image/heic"},
		exts: []string{"heic", "heif"}, loader: "VipsForeignLoadHeif", byDefault: true},
	FormatTIFF: {name: "tiff", names: []string{"tif"}, types: []string{"image/tiff"}, exts: []string{"tif", "tiff"},
		loader: "VipsForeignLoadTiff"},
	FormatSVG: {name: "svg", types: []string{"image/svg+xml"}, exts: []string{"svg"}, loader: "VipsForeignLoadSvg"},
	FormatPDF: {name: "pdf", types: []string{"application/pdf"}, exts: []string{"pdf"}, loader: "VipsForeignLoadPdf"},
	// JPEG XL is off by default: Debian's libvips 8.14 decodes it with
	// libjxl 0.7, which libvips itself marks untrusted. Enabling it as an
	// input also enables it as an output (see Processor).
	FormatJXL: {name: "jxl", types: []string{"image/jxl"}, exts: []string{"jxl"}, loader: "VipsForeignLoadJxl",
		saver: "VipsForeignSaveJxl", write: true, alpha: true, keeps: true, quality: 80},
}

func (f Format) info() formatInfo {
	if f <= FormatUnknown || f >= numFormats {
		return formatInfo{}
	}
	return formatTable[f]
}

// formatsWhere lists the formats, in table order, for which keep is true.
func formatsWhere(keep func(formatInfo) bool) []Format {
	var fs []Format
	for f := FormatUnknown + 1; f < numFormats; f++ {
		if keep(formatTable[f]) {
			fs = append(fs, f)
		}
	}
	return fs
}

// DefaultInputFormats are the formats accepted when INPUT_FORMATS is not set.
var DefaultInputFormats = formatsWhere(func(i formatInfo) bool { return i.byDefault })

// OutputFormats are the formats the service can write.
var OutputFormats = formatsWhere(func(i formatInfo) bool { return i.write })

// AllFormats are every format the service knows, as input.
var AllFormats = formatsWhere(func(formatInfo) bool { return true })

// String returns the lower-case name used in options and configuration.
func (f Format) String() string {
	if n := f.info().name; n != "" {
		return n
	}
	return "unknown"
}

// ContentType returns the media type of the format.
func (f Format) ContentType() string {
	if ts := f.info().types; len(ts) > 0 {
		return ts[0]
	}
	return "application/octet-stream"
}

// ContentTypes returns every media type the format is known by.
func (f Format) ContentTypes() []string { return append([]string(nil), f.info().types...) }

// Ext returns the usual file extension of the format, without the dot.
func (f Format) Ext() string {
	if es := f.info().exts; len(es) > 0 {
		return es[0]
	}
	return f.String()
}

// CanWrite reports whether the service can write the format.
func (f Format) CanWrite() bool { return f.info().write }

// Writable reports whether the service writes f when the formats enabled
// as input are enabled: every format it can write, except that JPEG XL,
// whose encoder libvips marks untrusted as it does the decoder, is written
// only when it is enabled as input too (one switch for libjxl).
func (f Format) Writable(enabled []Format) bool {
	return f.CanWrite() && (f.info().saver == "" || slices.Contains(enabled, f))
}

// CanAnimate reports whether the format holds frames that the service
// reads and writes (GIF, WebP; libvips 8.14 writes no animated AVIF).
func (f Format) CanAnimate() bool { return f.info().animate }

// HasAlpha reports whether the format can hold transparency.
func (f Format) HasAlpha() bool { return f.info().alpha }

// DefaultQuality is the quality written when none is asked for; 0 for
// formats without one.
func (f Format) DefaultQuality() int { return f.info().quality }

// holds reports whether an image of w x h can be written in f: its sides
// are within what the format holds.
func (f Format) holds(w, h int) bool {
	m := f.info().maxSide
	return m == 0 || w <= m && h <= m
}

// find returns the first format for which match is true, or FormatUnknown.
func find(match func(formatInfo) bool) Format {
	for f := FormatUnknown + 1; f < numFormats; f++ {
		if match(formatTable[f]) {
			return f
		}
	}
	return FormatUnknown
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FormatOfType returns the format of a media type such as "image/jpeg"
// (parameters ignored), or FormatUnknown.
func FormatOfType(mediaType string) Format {
	t, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(mediaType)), ";")
	t = strings.TrimSpace(t)
	return find(func(i formatInfo) bool { return has(i.types, t) })
}

// FormatOfExt returns the format a file extension (without the dot, any
// case) names, or FormatUnknown.
func FormatOfExt(ext string) Format {
	e := strings.ToLower(ext)
	return find(func(i formatInfo) bool { return has(i.exts, e) })
}

// ParseFormat returns the format with the given name or alias ("jpg" for
// "jpeg"). It returns an error for a name it does not know.
func ParseFormat(name string) (Format, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if f := find(func(i formatInfo) bool { return i.name == n || has(i.names, n) }); f != FormatUnknown {
		return f, nil
	}
	return FormatUnknown, fmt.Errorf("unknown image format %q", name)
}

// OutputFormatFor returns the format written for input format in when the
// caller keeps the original: the same where the service can write it, else
// PNG for images with alpha and JPEG for the rest (HEIF, TIFF, SVG, PDF).
func OutputFormatFor(in Format, alpha bool) Format {
	switch {
	case in.CanWrite():
		return in
	case alpha:
		return FormatPNG
	}
	return FormatJPEG
}
