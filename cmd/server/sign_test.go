package main

import (
	"bytes"
	"errors"
	"image"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "golang.org/x/image/webp" // decode the WebP answers

	"github.com/resizer/resizer/internal/imagetest"
)

// signPath runs `server sign args...` with env and returns what it prints.
func signPath(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), append([]string{"server", "sign"}, args...), func(k string) string { return env[k] }, &out)
	return strings.TrimSuffix(out.String(), "\n"), err
}

// The README's first minutes: on the embedded default, an uploaded
// original is served by the path `server sign` prints, with the key kept
// in DATA_DIR; a path changed by hand is refused.
func TestSignServesOnTheEmbeddedDefault(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir()}
	s := start(t, env)
	if resp, body := post(t, s.url+"/uploads?key=cats/tom.jpg", imagetest.Photo(t)); resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	path, err := signPath(t, env, "uploads/cats/tom.jpg", "width=320&format=webp")
	if err != nil || !strings.HasPrefix(path, "/img/") || !strings.HasSuffix(path, "/format=webp&width=320/uploads/cats/tom.jpg") {
		t.Fatalf("%q %v", path, err)
	}
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, format, err := image.DecodeConfig(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err != nil || format != "webp" || cfg.Width != 320 {
		t.Fatalf("%d: %s %d wide (%v)", resp.StatusCode, format, cfg.Width, err)
	}
	resp, err = http.Get(s.url + strings.Replace(path, "width=320", "width=321", 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("tampered: %d", resp.StatusCode)
	}
}

// With URL_SIGNING_KEYS the first key signs; --expires adds the expiry;
// bad arguments are refused with the usage.
func TestSignArguments(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(),
		"URL_SIGNING_KEYS": "0123456789abcdef0123456789abcdef-new,0123456789abcdef0123456789abcdef-old"}
	a, err := signPath(t, env, "uploads/a.jpg", "width=800")
	if err != nil {
		t.Fatal(err)
	}
	env["URL_SIGNING_KEYS"] = "0123456789abcdef0123456789abcdef-new"
	if b, _ := signPath(t, env, "uploads/a.jpg", "width=800"); a != b {
		t.Errorf("not signed with the first key: %s, %s", a, b)
	}
	if p, err := signPath(t, env, "--expires", "1h", "uploads/a.jpg", "preset=thumb"); err != nil || !strings.Contains(p, "/exp=") || !strings.Contains(p, "&preset=thumb/") {
		t.Errorf("expiring preset: %q %v", p, err)
	}
	// With S3 the key must be given: the server's is in its environment.
	if p, err := signPath(t, map[string]string{"S3_BUCKET": "photos"}, "uploads/a.jpg", "width=800"); err == nil {
		t.Errorf("S3 without URL_SIGNING_KEYS: printed %q", p)
	}
	if _, err := signPath(t, map[string]string{"S3_BUCKET": "photos", "URL_SIGNING_KEYS": "short"}, "uploads/a.jpg", "width=800"); err == nil ||
		!strings.Contains(err.Error(), "URL_SIGNING_KEYS") {
		t.Errorf("a short key: %v", err)
	}
	for _, args := range [][]string{
		{"uploads/a.jpg"},
		{"--expires", "soon", "uploads/a.jpg", "width=800"},
		{"uploads/a.jpg", "width=800&width=900"},
		{"uploads//a.jpg", "width=800"},
		{"uploads/a.jpg", "exp=1"},
		{"uploads/a.jpg", "preset=thumb&preset=large"},
		{"uploads/a.jpg", "width=80&v=0123abcd&v=4567ef01"},
		// Options the server would refuse: the path could only fail.
		{"uploads/a.jpg", "width=100&foo=1"},
		{"uploads/a.jpg", "width=-5"},
		{"uploads/a.jpg", "width=100000"},
		{"uploads/a.jpg", "format=bmp"},
	} {
		if p, err := signPath(t, env, args...); err == nil {
			t.Errorf("%q: printed %q", args, p)
		}
	}
	// Each refusal says what is wrong, then the usage; help is no fault.
	for args, want := range map[string]string{
		"uploads/a.jpg":                         "want KEY and OPTIONS, got 1 arguments",
		"--expires -1h uploads/a.jpg width=80":  "must not be negative",
		"--expires soon uploads/a.jpg width=80": `invalid value "soon"`,
	} {
		_, err := signPath(t, env, strings.Fields(args)...)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "<nil>") ||
			!strings.Contains(err.Error(), "usage: server sign") {
			t.Errorf("%s: %v", args, err)
		}
	}
	if p, err := signPath(t, env, "uploads/a.jpg", "format=auto&width=80"); err != nil || !strings.Contains(p, "format=auto") {
		t.Errorf("format=auto: %q %v", p, err)
	}
	// Run from another folder, with no DATA_DIR there: refused, not a
	// key of its own made (every path it printed would be a 403).
	missing := filepath.Join(t.TempDir(), "data")
	if p, err := signPath(t, map[string]string{"DATA_DIR": missing}, "uploads/a.jpg", "width=80"); err == nil || !strings.Contains(err.Error(), "DATA_DIR") {
		t.Errorf("a DATA_DIR that does not exist: %q %v", p, err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server sign made %s: %v", missing, err)
	}
	for _, h := range []string{"-h", "--help"} {
		if out, err := signPath(t, env, h); err != nil || !strings.HasPrefix(out, "usage: server sign") {
			t.Errorf("%s: %q %v", h, out, err)
		}
	}
}

// server sign prints no path the server would refuse whatever is stored:
// a key outside DELIVERY_PREFIXES or among the derived images, or a
// preset VARIANTS does not define; each refusal names the setting.
func TestSignOnlyServablePaths(t *testing.T) {
	env := map[string]string{"DATA_DIR": t.TempDir(), "URL_SIGNING_KEYS": "0123456789abcdef0123456789abcdef"}
	refused := func(want string, args ...string) {
		t.Helper()
		if p, err := signPath(t, env, args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: printed %q, %v; want a refusal naming %s", args, p, err, want)
		}
	}
	accepted := func(args ...string) {
		t.Helper()
		if p, err := signPath(t, env, args...); err != nil || !strings.HasPrefix(p, "/img/") {
			t.Errorf("%q: %q %v", args, p, err)
		}
	}
	// The defaults: uploads/ served, the default variants.
	accepted("uploads/a.jpg", "width=80")
	accepted("uploads/a.jpg", "preset=medium")
	refused("DELIVERY_PREFIXES", "photos/a.jpg", "width=80")
	refused("DELIVERY_PREFIXES", "resized/thumb/a.jpg", "width=80")
	refused("VARIANTS", "uploads/a.jpg", "preset=huge")
	// As the server is configured.
	env["DELIVERY_PREFIXES"], env["VARIANTS"] = "photos/,resized/", "huge:3000x0,tiny:20x20:cover"
	accepted("photos/a.jpg", "width=80")
	accepted("resized/thumb/a.jpg", "width=80")
	accepted("photos/a.jpg", "preset=huge")
	refused("DELIVERY_PREFIXES", "uploads/a.jpg", "width=80")
	refused("derived image", "resized/_cache/ab/cd.jpg", "width=80")
	refused("VARIANTS", "photos/a.jpg", "preset=medium")
	env["VARIANTS"] = "bad"
	refused("VARIANTS", "photos/a.jpg", "preset=huge")
}
