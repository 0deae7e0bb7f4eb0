package httpapi

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	_ "image/png" // DecodeConfig of PNG responses
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/resizer/resizer/internal/contract"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/logbuf"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

func TestMain(m *testing.M) {
	imageproc.ServeWorkerIfAsked()
	code := checkCoverage(m.Run())
	s3test.Stop()
	os.Exit(code)
}

// testServer is the real handler, on real libvips, behind a real listener.
type testServer struct {
	*httptest.Server
	logs     *logbuf.Buffer
	draining *atomic.Bool
	proc     *imageproc.Processor
	deps     Deps
	local    *storage.Dir // nil with S3
	cdn      *recordingCDN
	reg      *prometheus.Registry
}

func newTestServer(t *testing.T, edit func(*Config, *imageproc.Config)) *testServer {
	t.Helper()
	return newTestServerOn(t, nil, edit)
}

// newTestServerOn serves with the given S3 store, or with a local
// directory when s3 is nil.
func newTestServerOn(t *testing.T, s3 *storage.S3, edit func(*Config, *imageproc.Config)) *testServer {
	t.Helper()
	return newTestServerWith(t, s3, edit, nil)
}

// testVariants are the test server's VARIANTS.
const testVariants = "thumb:100x100:cover,medium:400x0:webp"

// newTestServerWith is newTestServerOn with the pipeline's configuration
// edited by editPipeline (nil: none); with local storage, its ObjectURL is
// the /objects/ route's, as the server wires it.
func newTestServerWith(t *testing.T, s3 *storage.S3, edit func(*Config, *imageproc.Config), editPipeline func(*pipeline.Config)) *testServer {
	t.Helper()
	return newTestServerVariants(t, s3, testVariants, edit, editPipeline)
}

// newTestServerVariants is newTestServerWith with its own VARIANTS.
func newTestServerVariants(t *testing.T, s3 *storage.S3, variantSpec string, edit func(*Config, *imageproc.Config),
	editPipeline func(*pipeline.Config)) *testServer {
	t.Helper()
	cfg := Config{MaxBodyBytes: 4 << 20, MaxDimension: 8192, PresignExpiry: time.Minute,
		BodyMemory: 64 << 20, ReadTimeout: 30 * time.Second, MinBodyRate: 4 << 10, MinBodyRateGrace: 10 * time.Second,
		WebhookSecrets: []string{"webhook-secret-old", "webhook-secret"}, WebhookMaxBytes: 64 << 10, WebhookMaxRecords: 10,
		URLSigningKeys: []string{testSigningKey, testOldSigningKey},
		UI:             true,
		UploadTypes:    []string{"image/jpeg", "image/png", "image/webp", "image/gif", "image/avif", "image/heif"}}
	if s3 != nil {
		cfg.InputBucket = s3.Bucket()
	}
	// The listener first: the handler is told its address, as run does.
	srv := httptest.NewUnstartedServer(nil)
	t.Cleanup(srv.Close)
	cfg.ListenAddr = srv.Listener.Addr().String()
	pcfg := testProcConfig()
	if edit != nil {
		edit(&cfg, &pcfg)
	}
	reg := prometheus.NewRegistry()
	proc, err := imageproc.New(pcfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proc.Close)
	variants, err := pipeline.ParseVariants(variantSpec, 8192)
	if err != nil {
		t.Fatal(err)
	}
	d := Deps{}
	var st pipeline.Store
	var local *storage.Dir
	if s3 != nil {
		st, d.Store = s3, s3
	} else {
		if local, err = storage.NewDir(t.TempDir()); err != nil {
			t.Fatal(err)
		}
		st, d.Store = local, local
	}
	plc := pipeline.Config{InputPrefix: "uploads/", OutputPrefix: "resized/", SameStore: true,
		Variants: variants, CacheControl: "public, max-age=60", MaxSourceBytes: cfg.MaxBodyBytes}
	if local != nil {
		plc.ObjectURL = storage.ObjectPath
	}
	if editPipeline != nil {
		editPipeline(&plc)
	}
	d.Pipeline, err = pipeline.New(plc, st, st, proc)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logbuf.Buffer{}
	cdn := &recordingCDN{}
	d.Delivery, err = delivery.New(delivery.Config{Prefixes: []string{"uploads/"}, CachePrefix: "resized/_cache/",
		CacheControl: "public, max-age=300", ETagTTL: time.Second, MaxSourceBytes: cfg.MaxBodyBytes, RenderTimeout: time.Minute},
		delivery.Deps{Sources: st, Cache: st.(delivery.Cache), Renderer: proc, Presets: d.Pipeline, Invalidator: cdn,
			Logger: zerolog.New(logs), Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Delivery.Wait) // before the directory goes: renders write to it after they answer
	var draining atomic.Bool
	spec, err := os.ReadFile(contract.SpecPath())
	if err != nil {
		t.Fatal(err)
	}
	d.Logger, d.Processor, d.Registry, d.Spec, d.Draining = zerolog.New(logs), proc, reg, spec, &draining
	d.Checks = map[string]Check{"libvips": proc.Check}
	h, err := New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	return &testServer{Server: srv, logs: logs, draining: &draining, proc: proc, deps: d, local: local, cdn: cdn, reg: reg}
}

// do sends a request, reads the whole response, and checks it against
// openapi.yaml.
func (s *testServer) do(t *testing.T, method, path string, body []byte, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, s.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	contract.Check(t, req, resp, b)
	return resp, b
}

func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func testdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func imageSize(t *testing.T, b []byte) (int, int, string) {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("response is not an image: %v", err)
	}
	return cfg.Width, cfg.Height, format
}

func zerologFor(s *testServer) zerolog.Logger { return zerolog.New(s.logs) }

// s3AWSConfigForTests is SDK configuration with throwaway credentials, for
// stores that are never reached.
func s3AWSConfigForTests() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}
}

// serveWith returns a running server, closed at the end of the test, for a
// handler of the test's own, configured before it starts (changing a
// running server's fields races with its goroutines).
func serveWith(t *testing.T, h http.Handler, configure func(*http.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	if configure != nil {
		configure(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// testProcConfig is the image limits of a test: the service's defaults are
// internal/config's.
func testProcConfig() imageproc.Config {
	return imageproc.Config{ // a test's own limits: the service's defaults are internal/config's
		Formats: imageproc.DefaultInputFormats, MaxPixels: 50_000_000, MaxDimension: 8192, MaxJPEGScans: 64, MaxFrames: 500,
		Concurrency: 2, QueueSize: 16, QueueTimeout: 5 * time.Second, Timeout: 30 * time.Second,
	}
}

// A constructor given an empty configuration names every part it lacks,
// so that a wiring mistake says what to fix.
func TestNewNamesWhatIsMissing(t *testing.T) {
	_, err := New(Config{MaxBodyBytes: 1, BodyMemory: 1, MinBodyRate: -1}, Deps{})
	if err == nil {
		t.Fatal("New accepted an empty configuration")
	}
	for _, name := range []string{"Deps.Processor", "Deps.Registry", "Deps.Draining", "Deps.Pipeline", "Deps.Store",
		"Deps.Delivery", "BodyMemory", "WebhookMaxBytes", "WebhookMaxRecords", "MinBodyRate,"} {
		if !strings.Contains(err.Error()+",", name) {
			t.Errorf("the error does not name %s: %v", strings.TrimSuffix(name, ","), err)
		}
	}
	if strings.Contains(err.Error(), "MaxBodyBytes,") || strings.Contains(err.Error(), "MaxPerClient") {
		t.Errorf("the error names a field that is in range: %v", err)
	}
}
