package main

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"strings"
	"testing"
)

// Every flag that counts or paces is checked before anything is done:
// zero, negative, not a number, infinite and absurdly large values are
// usage errors that name the flag, rather than a panic (a --rate whose
// interval rounds to nothing), a silent "no limit" (NaN) or a run that
// holds a million originals at once.
func TestReconcileFlagBounds(t *testing.T) {
	ctx := t.Context()
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn", "VARIANTS": "thumb:32x32:cover", "CONCURRENCY": "2"}
	putOriginals(t, env["DATA_DIR"], func(t *testing.T, _ int) []byte { return small(t, 1) }, "uploads/a.jpg")
	for _, tt := range []struct {
		args []string
		flag string
	}{
		{[]string{"--rate", "-1"}, "--rate"},
		{[]string{"--rate", "NaN"}, "--rate"},
		{[]string{"--rate", "+Inf"}, "--rate"},
		{[]string{"--rate", "1e10"}, "--rate"},
		{[]string{"--concurrency", "0"}, "--concurrency"},
		{[]string{"--concurrency", "-3"}, "--concurrency"},
		{[]string{"--concurrency", "1000000000"}, "--concurrency"},
		{[]string{"--check-concurrency", "0"}, "--check-concurrency"},
		{[]string{"--check-concurrency", "1000000000"}, "--check-concurrency"},
		{[]string{"--throughput", "NaN"}, "--throughput"},
		{[]string{"--throughput", "+Inf"}, "--throughput"},
		{[]string{"--throughput", "0"}, "--throughput"},
		{[]string{"--progress", "0s"}, "--progress"},
		{[]string{"--progress", "-1s"}, "--progress"},
	} {
		var out string
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
			}()
			out, err = reconcileRun(ctx, env, tt.args...)
		}()
		if err == nil || !strings.Contains(err.Error(), tt.flag) || strings.HasPrefix(err.Error(), "panic") {
			t.Errorf("%v: %v, want a usage error naming %s\n%s", tt.args, err, tt.flag, out)
		}
		if strings.Contains(out, "done:") {
			t.Errorf("%v: it ran\n%s", tt.args, out)
		}
	}
	// The bounds themselves are accepted, and a rate too fast to pace is
	// no limit at all rather than a crash.
	for _, args := range [][]string{{"--rate", "1000000"}, {"--concurrency", "18", "--check-concurrency", "1024"}, {"--rate", "0"}} {
		if out, err := reconcileRun(ctx, env, append(args, "--json")...); err != nil {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
}

// big is a distinct JPEG large enough that its variants take a while.
func big(t *testing.T, i int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, 2000, 1500))
	for j := range img.Pix {
		img.Pix[j] = uint8(j*j + i)
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// In process, originals beyond CONCURRENCY wait for a slot of this
// process's own: however long that takes, it is no failure (there is no
// client waiting, and nobody would retry it).
func TestReconcileMoreInHandThanSlots(t *testing.T) {
	ctx := t.Context()
	const n = 8
	env := map[string]string{"DATA_DIR": t.TempDir(), "LOG_LEVEL": "warn", "VARIANTS": "a:1600x0,b:1200x0,c:800x0",
		"CONCURRENCY": "1", "QUEUE_TIMEOUT": "50ms"}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("uploads/%d.jpg", i)
	}
	putOriginals(t, env["DATA_DIR"], big, keys...)
	out, err := reconcileRun(ctx, env, "--concurrency", fmt.Sprint(n), "--json")
	if err != nil || processed(t, out) != n {
		t.Fatalf("reconcile: %v\n%s", err, out)
	}
}
