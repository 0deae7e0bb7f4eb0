package httpapi

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/resizer/resizer/internal/imageproc"
)

// The pages in a real browser: headless Chromium from Debian, driven by
// chromedp. A screenshot of each page goes to ARTIFACTS_DIR (default: the
// test's temporary folder).

// browser starts Chromium with a fresh profile and without its background
// connections (this machine refuses them), and returns a context bounded
// in time for the test's actions.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (apt-get install chromium; make test does)")
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 1400))
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// The browser starts with the first call, which must not carry a
	// deadline (it would bound the browser's life); later calls may.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	tctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	return tctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	os.MkdirAll(dir, 0o755)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatal(err)
	}
}

func TestDocsPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	s := newTestServer(t, nil)
	ctx := browser(t)
	do(t, ctx, chromedp.Navigate(s.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(".opblock")))
	ops := run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll(".opblock").length`))
	title := run(t, ctx, chromedp.Text(chromedp.CSS(".info .title")))
	if ops < 12 || !strings.Contains(title, "resizer") {
		t.Fatalf("%d operations rendered, title %q", ops, title)
	}
	screenshot(t, ctx, "docs.png")
}

func TestTryItPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	s := newTestServer(t, nil)
	ctx := browser(t)
	photo, err := filepath.Abs(filepath.Join("..", "..", "testdata", "ladybird.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	do(t, ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("resize-file")),
		chromedp.SetUploadFiles(chromedp.ID("resize-file"), []string{photo}),
		chromedp.SetValue(chromedp.ID("width"), "320"),
		chromedp.Click(chromedp.ID("resize-button")),
	)
	natural := run(t, ctx, chromedp.Poll[int](`document.getElementById("result").naturalWidth || null`, chromedp.WithPollingTimeout(30*time.Second)))
	message := run(t, ctx, chromedp.Text(chromedp.ID("resize-message")))
	if natural != 320 || !strings.Contains(message, "image/jpeg") {
		t.Fatalf("result %d pixels wide, message %q", natural, message)
	}

	// The operations: a quarter turn and a crop, from the "More
	// operations" fields.
	do(t, ctx,
		chromedp.Click(chromedp.CSS(`#more summary`)),
		chromedp.SetValue(chromedp.ID("width"), ""),
		chromedp.SetValue(chromedp.ID("crop"), "0,0,400,200"),
		chromedp.SetValue(chromedp.ID("rotate"), "90"),
		chromedp.Click(chromedp.ID("resize-button")),
	)
	size := run(t, ctx, chromedp.Poll[[]int](`(() => { const r = document.getElementById("result");
		return r.complete && r.naturalWidth !== 320 ? [r.naturalWidth, r.naturalHeight] : null })()`, chromedp.WithPollingTimeout(30*time.Second)))
	if len(size) != 2 || size[0] != 200 || size[1] != 400 {
		t.Fatalf("crop 400x200 turned: %v, want 200x400", size)
	}

	// A presigned upload to the local store, then its variants.
	do(t, ctx,
		chromedp.SetUploadFiles(chromedp.ID("upload-file"), []string{photo}),
		chromedp.Click(chromedp.ID("upload-button")),
	)
	widths := run(t, ctx, chromedp.Poll[[]int](`(() => { const imgs = [...document.querySelectorAll("#variants img")];
		return imgs.length === 2 && imgs.every(i => i.naturalWidth > 0) ? imgs.map(i => i.naturalWidth) : null })()`,
		chromedp.WithPollingTimeout(30*time.Second)))
	message = run(t, ctx, chromedp.Text(chromedp.ID("upload-message")))
	if len(widths) != 2 || widths[0] != 100 || widths[1] != 400 || !strings.Contains(message, "2 variants") {
		t.Fatalf("variants %v, message %q", widths, message)
	}
	screenshot(t, ctx, "try-it.png")

	// The page's Content-Security-Policy stops a script injected inline.
	violated := run(t, ctx, chromedp.Evaluate[string](`new Promise((resolve) => {
		document.addEventListener("securitypolicyviolation", (e) => resolve(e.violatedDirective));
		const s = document.createElement("script");
		s.textContent = "window.__injected = true";
		document.body.appendChild(s);
		setTimeout(() => resolve(window.__injected ? "ran" : "none"), 2000);
	})`, chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(violated, "script-src") {
		t.Fatalf("inline script: %q, want a script-src violation", violated)
	}
}

// A problem from the API is shown in words.
func TestTryItPageShowsErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("long: run without -short (make test runs it)")
	}
	s := newTestServer(t, nil)
	ctx := browser(t)
	text := filepath.Join(t.TempDir(), "photo.jpg")
	if err := os.WriteFile(text, []byte("not really a photo"), 0o644); err != nil {
		t.Fatal(err)
	}
	do(t, ctx,
		chromedp.Navigate(s.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("resize-file")),
		chromedp.SetUploadFiles(chromedp.ID("resize-file"), []string{text}),
		chromedp.Click(chromedp.ID("resize-button")),
	)
	message := run(t, ctx, chromedp.Poll[string](`(() => { const m = document.getElementById("resize-message");
		return m.classList.contains("error") ? m.textContent : null })()`, chromedp.WithPollingTimeout(20*time.Second)))
	if !strings.Contains(message, "not an image") {
		t.Fatalf("message %q", message)
	}
}

func TestUIOff(t *testing.T) {
	s := newTestServer(t, func(c *Config, _ *imageproc.Config) { c.UI = false })
	for _, p := range []string{"/", "/docs", "/ui/app.js"} {
		if resp, _ := s.do(t, "GET", p, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s with UI off: %d", p, resp.StatusCode)
		}
	}
}

func TestAssets(t *testing.T) {
	s := newTestServer(t, nil)
	for p, ct := range map[string]string{"/ui/app.js": "text/javascript", "/ui/swagger-ui-bundle.js": "text/javascript",
		"/ui/app.css": "text/css", "/ui/swagger-ui.css": "text/css"} {
		resp, body := s.do(t, "GET", p, nil, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || len(body) == 0 {
			t.Errorf("%s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/ui/index.html", "/ui/LICENSE", "/ui/..%2Fui.go", "/ui/nothing.js"} {
		if resp, _ := s.do(t, "GET", p, nil, nil); resp.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, resp.StatusCode)
		}
	}
	resp, _ := s.do(t, "GET", "/", nil, nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("page CSP %q", csp)
	}
}
