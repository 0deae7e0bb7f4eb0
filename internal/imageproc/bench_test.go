package imageproc

import (
	"context"
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/h2non/bimg"
)

// benchImage is the photograph of docs/benchmarks.md when BENCH_IMAGE names
// it, else the small one in testdata.
func benchImage(b *testing.B) []byte {
	b.Helper()
	if p := os.Getenv("BENCH_IMAGE"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return readTestdata(b, "ladybird.jpg")
}

var benchOptions = Options{Width: 800, Quality: 80}

// BenchmarkCeiling is the ceiling the service is measured against: bimg
// called directly on the same bytes with the same bimg options the service
// derives, from as many goroutines as there are CPUs, with no gate, no
// header checks and no HTTP.
func BenchmarkCeiling(b *testing.B) {
	p := newTestProcessor(b, nil)
	in := benchImage(b)
	md, err := bimg.Metadata(in)
	if err != nil {
		b.Fatal(err)
	}
	pl, err := plan(source{width: md.Size.Width, height: md.Size.Height, orientation: md.Orientation,
		alpha: md.Alpha, format: Sniff(in)}, benchOptions, p.cfg.MaxDimension)
	if err != nil || len(pl.passes) != 1 {
		b.Fatalf("plan: %v %d passes", err, len(pl.passes))
	}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		runtime.LockOSThread() // as the service does: libvips wants a thread per image
		defer runtime.UnlockOSThread()
		for pb.Next() {
			if _, err := bimg.Resize(in, pl.passes[0]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkProcess is the service's core on the same work: Process, with
// the probe and the gate, from as many goroutines as there are CPUs.
func BenchmarkProcess(b *testing.B) {
	p := newTestProcessor(b, nil)
	in := benchImage(b)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Process(context.Background(), in, benchOptions); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkFormats is one image at a time to each output format.
func BenchmarkFormats(b *testing.B) {
	p := newTestProcessor(b, nil)
	in := benchImage(b)
	for _, f := range []Format{FormatJPEG, FormatPNG, FormatWebP, FormatAVIF} {
		b.Run(f.String(), func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Process(context.Background(), in, Options{Width: 800, Format: f}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRotated compares an EXIF-rotated JPEG (two passes) with the same
// pixels stored upright, and with bimg left to rotate it itself (one pass:
// rotate at full size, re-encode, then resize).
func BenchmarkRotated(b *testing.B) {
	p := newTestProcessor(b, nil)
	in := benchImage(b)
	rotated := withOrientation(in, 6)
	o := Options{Width: 800, Height: 800}
	for name, data := range map[string][]byte{"upright": in, "orientation6": rotated} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Process(context.Background(), data, o); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("orientation6-bimg-autorotate", func(b *testing.B) {
		md, err := bimg.Metadata(rotated)
		if err != nil {
			b.Fatal(err)
		}
		bo, _, err := planUpright(source{width: md.Size.Width, height: md.Size.Height, orientation: 6, format: FormatJPEG}, o, 8192)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, err := bimg.Resize(rotated, bo); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRejectFlood is the refusal of a 20000x20000 PNG from its header.
func BenchmarkRejectFlood(b *testing.B) {
	p := newTestProcessor(b, nil)
	flood := readTestdata(b, "flood.png")
	for b.Loop() {
		if _, err := p.Process(context.Background(), flood, Options{Width: 100}); !errors.Is(err, ErrTooLarge) {
			b.Fatal(err)
		}
	}
}
