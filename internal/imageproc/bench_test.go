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
// called directly on the same bytes for the same output (800 wide, quality
// 80, metadata stripped), from as many goroutines as there are CPUs, with
// no gate, no header checks, no worker processes and no HTTP.
func BenchmarkCeiling(b *testing.B) {
	in := benchImage(b)
	bo := bimg.Options{Width: benchOptions.Width, Quality: benchOptions.Quality, StripMetadata: true,
		NoAutoRotate: true, Type: bimg.JPEG}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		runtime.LockOSThread() // as the service does: libvips wants a thread per image
		defer runtime.UnlockOSThread()
		for pb.Next() {
			if _, err := bimg.Resize(in, bo); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInProcess is the service's own libvips steps (render) on the
// same work, run in this process: the cost of everything but the worker
// processes, to set against BenchmarkProcess.
func BenchmarkInProcess(b *testing.B) {
	in := benchImage(b)
	if err := vipsInit(AllFormats, 0); err != nil {
		b.Fatal(err)
	}
	st, _, err := readHeader(FormatJPEG, in)
	if err != nil {
		b.Fatal(err)
	}
	j := job{Header: Header{Format: FormatJPEG, Width: st.w, Height: st.h, Orientation: 1}, Outputs: []Options{benchOptions},
		Limits: unbounded}
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		buf := newCbuf(len(in))
		defer buf.free()
		copy(buf.bytes(), in)
		for pb.Next() {
			_, outs, err := render(buf, j)
			if err != nil {
				b.Error(err)
				return
			}
			freeC(outs[0].data)
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

// BenchmarkRotated compares an EXIF-rotated JPEG with the same pixels
// stored upright: the rotation is done on the small output.
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
