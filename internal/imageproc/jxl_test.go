package imageproc

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

// withJXL enables JPEG XL, as INPUT_FORMATS=...,jxl does.
func withJXL(c *Config) { c.Formats = append(slices.Clone(DefaultInputFormats), FormatJXL) }

// jxlContainer wraps a bare JPEG XL codestream in the ISO BMFF container:
// the signature box, ftyp, and the codestream in a jxlc box.
func jxlContainer(codestream []byte) []byte {
	out := append([]byte(nil), jxlContainerSignature...)
	out = append(out, 0, 0, 0, 20, 'f', 't', 'y', 'p', 'j', 'x', 'l', ' ', 0, 0, 0, 0, 'j', 'x', 'l', ' ')
	out = binary.BigEndian.AppendUint32(out, uint32(8+len(codestream)))
	out = append(out, "jxlc"...)
	return append(out, codestream...)
}

// JPEG XL, when enabled, is written by libvips' saver and read back, in
// both its forms, upright and with its colours where they were.
func TestJXLRoundTrip(t *testing.T) {
	p := newTestProcessor(t, withJXL)
	src := encodePNG(t, quadrants(300, 200))
	r, err := p.Process(t.Context(), src, Options{Format: FormatJXL})
	if err != nil {
		t.Fatal(err)
	}
	if Sniff(r.Data) != FormatJXL || r.Format != FormatJXL || r.Format.ContentType() != "image/jxl" {
		t.Fatalf("made %s (sniffed %s), want a JPEG XL codestream", r.Format, Sniff(r.Data))
	}
	t.Logf("300x200 JPEG XL: %d bytes", len(r.Data))
	for name, in := range map[string][]byte{"codestream": r.Data, "container": jxlContainer(r.Data)} {
		if Sniff(in) != FormatJXL {
			t.Fatalf("%s: sniffed %s", name, Sniff(in))
		}
		for _, o := range []Options{{Width: 150, Format: FormatPNG}, {Width: 150}} {
			out, err := p.Process(t.Context(), in, o)
			if err != nil {
				t.Fatalf("%s to %s: %v", name, o.Format, err)
			}
			if out.Width != 150 || out.Height != 100 {
				t.Errorf("%s to %s: %dx%d, want 150x100", name, out.Format, out.Width, out.Height)
			}
			if o.Format == FormatUnknown && out.Format != FormatJXL {
				t.Errorf("%s with format=original: made %s, want jxl", name, out.Format)
			}
			if o.Format != FormatPNG {
				continue
			}
			img := decode(t, out.Data)
			for _, c := range []struct {
				x, y int
				want [4]uint8
			}{{20, 20, [4]uint8{255, 0, 0, 255}}, {130, 20, [4]uint8{0, 255, 0, 255}}, {20, 80, [4]uint8{0, 0, 255, 255}}} {
				if got := rgbAt(img, c.x, c.y); !near(got, c.want, 24) {
					t.Errorf("%s: pixel (%d,%d) = %v, want about %v", name, c.x, c.y, got, c.want)
				}
			}
		}
	}
}

// Off by default: a JPEG XL input is not a supported image, format=jxl a
// bad option, and a truncated file, once enabled, is undecodable.
func TestJXLRefused(t *testing.T) {
	on := newTestProcessor(t, withJXL)
	off := newTestProcessor(t, nil)
	src := encodePNG(t, quadrants(300, 200))
	r, err := on.Process(t.Context(), src, Options{Format: FormatJXL})
	if err != nil {
		t.Fatal(err)
	}
	jxl := r.Data
	if _, err := off.Process(t.Context(), jxl, Options{Width: 100}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("JPEG XL input, not enabled: %v, want ErrUnsupported", err)
	}
	if _, err := off.Process(t.Context(), src, Options{Format: FormatJXL}); !errors.Is(err, ErrBadOption) {
		t.Errorf("format=jxl, not enabled: %v, want ErrBadOption", err)
	}
	for _, n := range []int{2, 12, len(jxl) / 4, len(jxl) / 2, len(jxl) - 20, len(jxl) - 1} {
		for name, in := range map[string][]byte{"codestream": jxl[:n], "container": jxlContainer(jxl)[:n+40]} {
			if _, err := on.Process(t.Context(), in, Options{Width: 100, Format: FormatPNG}); !errors.Is(err, ErrUndecodable) {
				t.Errorf("%s truncated to %d of %d bytes: %v, want ErrUndecodable", name, n, len(jxl), err)
			}
		}
	}
}
