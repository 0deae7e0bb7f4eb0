package storage

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A write never leaves part of an object: the file appears whole or not
// at all, and the temporary files are gone afterwards.
func TestDirPutIsAtomic(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	big := []byte(strings.Repeat("0123456789", 200_000))
	if _, err := d.Put(ctx, "uploads/big.bin", big, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 20; i++ {
			data := []byte(strings.Repeat(string(rune('a'+i)), len(big)))
			if _, err := d.Put(ctx, "uploads/big.bin", data, PutOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for reading := true; reading; {
		select {
		case <-done:
			reading = false
		default:
		}
		b, err := os.ReadFile(filepath.Join(d.root, "uploads", "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		whole := len(b) == len(big) && (string(b) == string(big) || strings.Count(string(b), string(b[:1])) == len(b))
		if !whole {
			t.Fatalf("read a partial or mixed object: %d bytes starting %q", len(b), b[:min(10, len(b))])
		}
	}
	left, _ := os.ReadDir(filepath.Join(d.root, ".tmp"))
	if len(left) != 0 {
		t.Fatalf("%d temporary files left", len(left))
	}
}

// Metadata from before a crash between the object's rename and the
// metadata's is noticed and not trusted.
func TestDirStaleMetadata(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	if _, err := d.Put(ctx, "k", []byte("first"), PutOptions{ContentType: "image/png", Metadata: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	// The object changes behind the metadata's back.
	if err := os.WriteFile(filepath.Join(d.root, "k"), []byte("second!"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := d.Head(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if h.Size != 7 || h.ContentType != "" || h.Metadata["a"] != "" || h.ETag != `"`+md5hex("second!")+`"` {
		t.Fatalf("stale metadata trusted: %+v", h)
	}
}

// No key reaches outside the directory, whatever the operation.
func TestDirRefusesTraversal(t *testing.T) {
	parent := t.TempDir()
	d, err := NewDir(filepath.Join(parent, "data"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o600)
	ctx := t.Context()
	for _, k := range []string{"../secret", "a/../../secret", "/etc/passwd", ".signing-key", ".meta/x.json"} {
		if _, _, err := d.Get(ctx, k, GetOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("get %q: %v", k, err)
		}
		if err := d.Delete(ctx, k); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("delete %q: %v", k, err)
		}
	}
	if _, err := os.Stat(filepath.Join(parent, "secret")); err != nil {
		t.Fatal("the file outside is gone")
	}
	if l, _ := d.List(ctx, "", 0); len(l) != 0 {
		t.Fatalf("list shows the store's own files: %v", objKeys(l))
	}
}

func TestDirSignedUploads(t *testing.T) {
	d := newDir(t)
	now := time.Now()
	q, err := d.SignUpload("uploads/x.jpg", "image/jpeg", 1234, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.VerifyUpload("uploads/x.jpg", q, "image/jpeg", 1234, now); err != nil {
		t.Fatalf("valid upload refused: %v", err)
	}
	tamper := func(k, v string) url.Values {
		c := url.Values{}
		for kk, vv := range q {
			c[kk] = append([]string(nil), vv...)
		}
		c.Set(k, v)
		return c
	}
	tests := []struct {
		name, key, ctype string
		q                url.Values
		size             int64
		at               time.Time
		why              string
	}{
		{"other key", "uploads/y.jpg", "image/jpeg", q, 1234, now, "does not match"},
		{"bigger body", "uploads/x.jpg", "image/jpeg", q, 1235, now, "exactly"},
		{"other type", "uploads/x.jpg", "text/html", q, 1234, now, "Content-Type"},
		{"expired", "uploads/x.jpg", "image/jpeg", q, 1234, now.Add(2 * time.Minute), "expired"},
		{"size raised in query", "uploads/x.jpg", "image/jpeg", tamper("size", "99999"), 99999, now, "does not match"},
		{"expiry moved", "uploads/x.jpg", "image/jpeg", tamper("expires", "99999999999"), 1234, now, "does not match"},
		{"no signature", "uploads/x.jpg", "image/jpeg", tamper("sig", ""), 1234, now, "missing"},
	}
	for _, tt := range tests {
		err := d.VerifyUpload(tt.key, tt.q, tt.ctype, tt.size, tt.at)
		if !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s: err = %v, want ErrBadSignature (%s)", tt.name, err, tt.why)
		}
	}
	// The signing key survives a restart, so URLs issued before still work.
	d2, err := NewDir(d.root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.VerifyUpload("uploads/x.jpg", q, "image/jpeg", 1234, now); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
