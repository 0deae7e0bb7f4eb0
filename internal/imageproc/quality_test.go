package imageproc

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// Config.Qualities must name lossy formats and hold qualities 1..100.
func TestConfigQualities(t *testing.T) {
	base := Config{Formats: DefaultInputFormats, MaxPixels: 1, MaxOutputPixels: 1, MaxDimension: 1, MaxJPEGScans: 1,
		MaxFrames: 1, MaxAnimationPixels: 1, Concurrency: 1, Timeout: time.Second}
	tests := []struct {
		q    map[Format]int
		want string // in the error; "" for none
	}{
		{nil, ""},
		{map[Format]int{FormatJPEG: 1, FormatWebP: 100, FormatAVIF: 50, FormatJXL: 70}, ""},
		{map[Format]int{FormatJPEG: 0}, "Qualities[jpeg]"},
		{map[Format]int{FormatWebP: 101}, "Qualities[webp]"},
		{map[Format]int{FormatPNG: 80}, "Qualities[png]"},
	}
	for _, tt := range tests {
		cfg := base
		cfg.Qualities = tt.q
		err := cfg.validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Qualities %v: %v, want %q", tt.q, err, tt.want)
		}
	}
}

// A configured default quality is the one written when an output asks
// for none, format by format.
func TestDefaultQualities(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Qualities = map[Format]int{FormatJPEG: 30, FormatAVIF: 90} })
	src := encodePNG(t, quadrants(300, 200))
	for _, tt := range []struct {
		f    Format
		want int // the quality the default must equal
	}{{FormatJPEG, 30}, {FormatAVIF, 90}, {FormatWebP, FormatWebP.DefaultQuality()}} {
		byDefault, err := p.Process(t.Context(), src, Options{Format: tt.f})
		if err != nil {
			t.Fatal(err)
		}
		asked, err := p.Process(t.Context(), src, Options{Format: tt.f, Quality: tt.want})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(byDefault.Data, asked.Data) {
			t.Errorf("%s: the default (%d bytes) is not quality %d (%d bytes)", tt.f, len(byDefault.Data), tt.want, len(asked.Data))
		}
	}
}
