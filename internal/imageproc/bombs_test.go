package imageproc

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// blurBomb is a small SVG whose rendering costs seconds at a large size,
// inside librsvg, where libvips' kill flag is never checked.
var blurBomb = []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000">` +
	`<filter id="f" x="0" y="0" width="1" height="1"><feGaussianBlur stdDeviation="300"/></filter>` +
	`<rect width="4000" height="4000" fill="red" filter="url(#f)"/>` +
	`<rect width="4000" height="4000" fill="blue" filter="url(#f)" opacity="0.5"/></svg>`)

// waitBusy waits until n workers are making an image.
func waitBusy(t *testing.T, p *Processor, n int) []int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		busy, _ := p.pool.pids()
		if len(busy) >= n {
			return busy
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers busy, want %d", len(busy), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// When an image's time is up, its worker is killed and the slot is free
// again at once, whatever the codec is doing: two bombs at once take both
// slots, and right after their timeout a normal image is served, where a
// slot still held would make it wait in vain (QueueTimeout) and fail.
func TestTimeoutFreesTheSlot(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = append(append([]Format{}, DefaultInputFormats...), FormatSVG)
		c.Concurrency, c.QueueSize, c.QueueTimeout, c.Timeout = 2, 4, 100*time.Millisecond, time.Second
	})
	photo := readTestdata(t, "ladybird.jpg")
	bombs := []struct {
		name string
		in   []byte
		o    Options
	}{
		{"svg blur", blurBomb, Options{Width: 3000, Height: 3000, Fit: FitFill, Enlarge: true}},
		{"avif encode", photo, Options{Width: 5000, Height: 5000, Fit: FitFill, Enlarge: true, Format: FormatAVIF}},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(bombs))
	start := time.Now()
	for i, b := range bombs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = p.Process(t.Context(), b.in, b.o)
		}()
	}
	wg.Wait()
	took := time.Since(start)
	for i, err := range errs {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: err = %v, want ErrTimeout", bombs[i].name, err)
		}
	}
	r, err := p.Process(t.Context(), photo, Options{Width: 100})
	if err != nil || r.Width != 100 {
		t.Fatalf("a normal image right after two bombs timed out: %v", err)
	}
	// The killed workers' replacements start in the background.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		busy, idle := p.pool.pids()
		if len(busy)+len(idle) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers running, want 2", len(busy)+len(idle))
		}
	}
	t.Logf("two bombs stopped after %s (timeout 1s); the next image served at once", took)
}

// A worker that dies mid-image (a crashing codec) costs that worker only:
// the image is tried once more on a fresh worker, and refused as
// undecodable if that one dies too.
//
// A worker the kernel kills (SIGKILL: its OOM killer, which takes workers
// first) is the same, but twice means the image needs more memory than
// the server has: too large, not undecodable.
func TestCrashingWorker(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Concurrency, c.Timeout = 1, time.Minute })
	photo := readTestdata(t, "ladybird.jpg")
	slow := Options{Width: 2400, Height: 2400, Fit: FitFill, Enlarge: true, Format: FormatAVIF}
	crash := func(sig syscall.Signal, times int) error {
		done := make(chan error, 1)
		go func() {
			_, err := p.Process(t.Context(), photo, slow)
			done <- err
		}()
		for i := 0; i < times; i++ {
			pid := waitBusy(t, p, 1)[0]
			syscall.Kill(pid, sig)
			for busy, _ := p.pool.pids(); len(busy) > 0 && busy[0] == pid; busy, _ = p.pool.pids() {
				time.Sleep(5 * time.Millisecond)
			}
		}
		return <-done
	}
	for _, sig := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGKILL} {
		if err := crash(sig, 1); err != nil {
			t.Fatalf("%s once: err = %v, want the image made on a fresh worker", sig, err)
		}
	}
	if err := crash(syscall.SIGSEGV, 2); !errors.Is(err, ErrUndecodable) {
		t.Fatalf("two crashes: err = %v, want ErrUndecodable", err)
	}
	if err := crash(syscall.SIGKILL, 2); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "memory") {
		t.Fatalf("killed by the kernel twice: err = %v, want ErrTooLarge for memory", err)
	}
	if r, err := p.Process(t.Context(), photo, Options{Width: 50}); err != nil || r.Width != 50 {
		t.Fatalf("after the crashes: %v", err)
	}
}

// Outputs are bounded in pixels, enlarging included, before any work: a
// 1x1 JPEG asked for 8192x8192 AVIF took 19.5 s and 1 GB.
func TestMaxOutputPixels(t *testing.T) {
	p := newTestProcessor(t, nil)
	tiny := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	_, err := p.Process(t.Context(), tiny, Options{Width: 8192, Height: 8192, Fit: FitFill, Enlarge: true, Format: FormatAVIF})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	p = newTestProcessor(t, func(c *Config) { c.MaxOutputPixels = 10_000 })
	if _, err := p.Process(t.Context(), tiny, Options{Width: 101, Height: 100, Fit: FitFill, Enlarge: true}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("101x100 over 10,000 pixels: err = %v, want ErrTooLarge", err)
	}
	if _, err := p.Process(t.Context(), tiny, Options{Width: 100, Height: 100, Fit: FitFill, Enlarge: true}); err != nil {
		t.Fatalf("100x100 at the limit: %v", err)
	}
	// padding counts: contain pads a small image to the box
	if _, err := p.Process(t.Context(), readTestdata(t, "ladybird.jpg"), Options{Width: 200, Height: 200, Fit: FitContain}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("contain padded to 200x200 over 10,000 pixels: err = %v, want ErrTooLarge", err)
	}
}

// manyPages is a TIFF of n 1x1 pages; libtiff counts pages by walking
// them all, seconds for 100,000.
func manyPages(n int) []byte {
	b := []byte("II*\x00")
	b = binary.LittleEndian.AppendUint32(b, 8)
	for i := 0; i < n; i++ {
		entries := [][3]uint32{{256, 3, 1}, {257, 3, 1}, {258, 3, 8}, {259, 3, 1}, {262, 3, 1}, {273, 4, 0}, {277, 3, 1}, {278, 3, 1}, {279, 4, 1}}
		data := uint32(len(b) + 2 + len(entries)*12 + 4)
		entries[5][2] = data
		b = binary.LittleEndian.AppendUint16(b, uint16(len(entries)))
		for _, e := range entries {
			b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
			b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
			b = binary.LittleEndian.AppendUint32(b, 1)
			b = binary.LittleEndian.AppendUint32(b, e[2])
		}
		next := uint32(0)
		if i < n-1 {
			next = data + 2
		}
		b = binary.LittleEndian.AppendUint32(b, next)
		b = append(b, 128, 0)
	}
	return b
}

// The header of a format that only libvips reads (a TIFF of 200,000 pages)
// is read in a worker, holding a slot and under the timer: it ran before
// any slot and without a limit.
func TestHeaderReadInsideTheSlot(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) {
		c.Formats = []Format{FormatTIFF, FormatJPEG}
		c.Concurrency, c.QueueSize, c.QueueTimeout, c.Timeout = 1, 4, 50*time.Millisecond, time.Second
	})
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := p.Process(t.Context(), manyPages(200_000), Options{Width: 10})
		done <- err
	}()
	waitBusy(t, p, 1)
	if _, err := p.Process(t.Context(), encodeJPEG(t, quadrants(8, 8)), Options{}); !errors.Is(err, ErrBusy) {
		t.Errorf("while the TIFF's header is read: err = %v, want ErrBusy (the read holds the slot)", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Errorf("200,000 pages: err = %v, want ErrTimeout", err)
	}
	t.Logf("stopped after %s", time.Since(start))
}

// The bombs that are refused or defused in Go, before libvips: an AVIF
// whose container claims 100x100 around an 8192x8192 AV1 image (decoded
// whole before: 13.5 s, 477 MiB), a progressive JPEG of 2,000 empty scans
// (33 s in libjpeg), and a PNG of twenty text chunks that inflate to
// gigabytes (libpng inflates them all: 70 s), which is served at once
// without them.
func TestBombsDefusedBeforeLibvips(t *testing.T) {
	p := newTestProcessor(t, func(c *Config) { c.Timeout = 5 * time.Second })
	for _, name := range []string{"heif/bomb-8192-ispe100.avif", "heif/bomb-8192-ispe100.heic"} {
		_, err := p.Process(t.Context(), readTestdata(t, name), Options{Width: 100})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge from the codec's own header", name, err)
		}
	}

	jpg := encodeJPEG(t, quadrants(64, 64))
	eoi := bytes.LastIndex(jpg, []byte{0xFF, 0xD9})
	// An empty progressive scan: DC of the first component, refinement
	// with no coded data.
	empty := []byte{0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0, 0x10}
	scans := append(append([]byte{}, jpg[:eoi]...), bytes.Repeat(empty, 2000)...)
	scans = append(scans, 0xFF, 0xD9)
	if _, err := p.Process(t.Context(), scans, Options{Width: 10}); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "scans") {
		t.Errorf("2,001 scans: err = %v, want ErrTooLarge for the scans", err)
	}

	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 256; i++ { // 256 MiB of zeros, about 256 KB deflated
		zw.Write(zeros)
	}
	zw.Close()
	pngb := encodePNG(t, quadrants(64, 64))
	bomb := append([]byte{}, pngb[:33]...)
	for i := 0; i < 20; i++ {
		bomb = append(bomb, crcChunk("zTXt", append([]byte("Comment\x00\x00"), z.Bytes()...))...)
	}
	bomb = append(bomb, pngb[33:]...)
	start := time.Now()
	r, err := p.Process(t.Context(), bomb, Options{Width: 32})
	if err != nil || r.Width != 32 {
		t.Fatalf("PNG with 5 GiB of text: %v", err)
	}
	t.Logf("PNG of %d KB with 20 zTXt chunks inflating to 5 GiB: served in %s", len(bomb)>>10, time.Since(start))
}

// crcChunk is a PNG chunk with its CRC.
func crcChunk(typ string, data []byte) []byte {
	c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	c = append(c, typ...)
	c = append(c, data...)
	return binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}
