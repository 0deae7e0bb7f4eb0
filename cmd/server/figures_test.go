package main

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resizer/resizer/internal/imagetest"
	"github.com/resizer/resizer/internal/s3test"
)

// TestBombFigures measures what each hostile input of docs/reliability.md
// costs the server binary: its answer, how long it held the only
// processing slot (a normal request sent at the same moment waits for
// it), and the peak RSS of the server and its workers. It is the harness
// behind the table, not a check, and runs only when asked:
//
//	RESIZER_FIGURES=1 go test ./cmd/server -run TestBombFigures -v
func TestBombFigures(t *testing.T) {
	if os.Getenv("RESIZER_FIGURES") == "" {
		t.Skip("a measurement, not a test: set RESIZER_FIGURES=1")
	}
	addr, err := s3test.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	server := startProc(t, map[string]string{"ADDR": addr, "DATA_DIR": t.TempDir(), "LOG_LEVEL": "error",
		"INPUT_FORMATS": "jpeg,png,webp,gif,avif,heif,svg,tiff", "CONCURRENCY": "1", "QUEUE_TIMEOUT": "60s",
		"PROCESS_TIMEOUT": "5s"})
	normal := imagetest.Photo(t)
	for _, b := range bombs(t) {
		var peak int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				peak = max(peak, treeRSS(server.cmd.Process.Pid))
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
		start := time.Now()
		var code atomic.Int32
		var took time.Duration
		var inner sync.WaitGroup
		inner.Add(1)
		go func() {
			defer inner.Done()
			resp, err := http.Post("http://"+addr+"/resize?"+b.query, "application/octet-stream", bytes.NewReader(b.data))
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code.Store(int32(resp.StatusCode))
			}
			took = time.Since(start)
		}()
		// The bomb first: wait until it holds the slot, or is answered.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if working(t, addr) || code.Load() != 0 {
				break
			}
		}
		resp, err := http.Post("http://"+addr+"/resize?width=100", "image/jpeg", bytes.NewReader(normal))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: the normal request: %v", b.name, err)
		}
		resp.Body.Close()
		held := time.Since(start)
		inner.Wait()
		close(stop)
		wg.Wait()
		t.Logf("| %s | %d KB | %d in %s | slot free after %s | peak RSS %d MiB |", b.name, len(b.data)>>10, code.Load(),
			took.Round(time.Millisecond), held.Round(time.Millisecond), peak>>20)
	}
}

// working reports whether the server's processing slot is taken.
func working(t *testing.T, addr string) bool {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return bytes.Contains(b, []byte("\nresizer_gate_working 1\n"))
}

type bomb struct {
	name, query string
	data        []byte
}

func bombs(t *testing.T) []bomb {
	q := image.NewRGBA(image.Rect(0, 0, 64, 64))
	var jb, pb bytes.Buffer
	jpeg.Encode(&jb, q, nil)
	png.Encode(&pb, q)
	jpg, pngb := jb.Bytes(), pb.Bytes()
	eoi := bytes.LastIndex(jpg, []byte{0xFF, 0xD9})
	scans := append(append([]byte{}, jpg[:eoi]...), bytes.Repeat([]byte{0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 0, 0x10}, 2000)...)
	scans = append(scans, 0xFF, 0xD9)

	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 256; i++ {
		zw.Write(zeros)
	}
	zw.Close()
	text := append([]byte{}, pngb[:33]...)
	for i := 0; i < 20; i++ {
		data := append([]byte("Comment\x00\x00"), z.Bytes()...)
		c := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		c = append(append(c, "zTXt"...), data...)
		text = append(text, binary.BigEndian.AppendUint32(c, crc32.ChecksumIEEE(append([]byte("zTXt"), data...)))...)
	}
	text = append(text, pngb[33:]...)

	var one bytes.Buffer
	jpeg.Encode(&one, image.NewGray(image.Rect(0, 0, 1, 1)), nil)

	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="4000" height="4000">` +
		`<filter id="f" x="0" y="0" width="1" height="1"><feGaussianBlur stdDeviation="300"/></filter>` +
		`<rect width="4000" height="4000" fill="red" filter="url(#f)"/>` +
		`<rect width="4000" height="4000" fill="blue" filter="url(#f)" opacity="0.5"/></svg>`)

	lying, err := os.ReadFile("../../testdata/heif/bomb-8192-ispe100.avif")
	if err != nil {
		t.Fatal(err)
	}
	return []bomb{
		{"JPEG with 2,000 empty progressive scans", "width=100", scans},
		{"PNG with twenty zTXt chunks (5 GiB inflated)", "width=100", text},
		{"1x1 JPEG enlarged to 8192x8192 AVIF", "width=8192&height=8192&fit=fill&enlarge=true&format=avif", one.Bytes()},
		{"AVIF claiming 100x100 around 8192x8192", "width=100", lying},
		{"SVG with a large blur (SVG enabled)", "width=3000&height=3000&fit=fill&enlarge=true", svg},
		{"TIFF of 200,000 pages (TIFF enabled)", "width=10", manyPagesTIFF(200_000)},
		{"photo enlarged to 5000x5000 AVIF", "width=5000&height=5000&fit=fill&enlarge=true&format=avif", imagetest.Photo(t)},
	}
}

func manyPagesTIFF(n int) []byte {
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

// treeRSS is the resident memory of a process and its children, in bytes.
func treeRSS(pid int) int64 {
	total := rss(pid)
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
	for _, c := range strings.Fields(string(out)) {
		if n, err := strconv.Atoi(c); err == nil {
			total += rss(n)
		}
	}
	return total
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
