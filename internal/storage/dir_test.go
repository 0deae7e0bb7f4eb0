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
		b, err := os.ReadFile(filepath.Join(d.dir, "uploads", "big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		whole := len(b) == len(big) && (string(b) == string(big) || strings.Count(string(b), string(b[:1])) == len(b))
		if !whole {
			t.Fatalf("read a partial or mixed object: %d bytes starting %q", len(b), b[:min(10, len(b))])
		}
	}
	left, _ := os.ReadDir(filepath.Join(d.dir, ".tmp"))
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
	if err := os.WriteFile(filepath.Join(d.dir, "k"), []byte("second!"), 0o644); err != nil {
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
	q, err := d.SignUpload("uploads/x.jpg", "image/jpeg", 1234, nil, now.Add(time.Minute))
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
	// Metadata signed into the URL cannot be changed, left out or added.
	mq, err := d.SignUpload("uploads/x.jpg", "image/jpeg", 1234, map[string]string{"focus": "0.3,0.25"}, now.Add(time.Minute))
	if err != nil || mq.Get("meta-focus") != "0.3,0.25" {
		t.Fatalf("signed with metadata: %v %v", mq, err)
	}
	if err := d.VerifyUpload("uploads/x.jpg", mq, "image/jpeg", 1234, now); err != nil {
		t.Fatalf("valid upload with metadata refused: %v", err)
	}
	edit := func(q url.Values, k string, vs ...string) url.Values {
		c := url.Values{}
		for kk, vv := range q {
			c[kk] = append([]string(nil), vv...)
		}
		if vs == nil {
			c.Del(k)
		} else {
			c[k] = vs
		}
		return c
	}
	for _, tt := range []struct {
		name string
		q    url.Values
		why  string
	}{
		{"metadata changed", edit(mq, "meta-focus", "0.9,0.9"), "does not match"},
		{"metadata left out", edit(mq, "meta-focus"), "does not match"},
		{"metadata added", edit(q, "meta-focus", "0.9,0.9"), "does not match"},
		{"other metadata added", edit(mq, "meta-owner", "me"), "does not match"},
		{"metadata given twice", edit(mq, "meta-focus", "0.3,0.25", "0.9,0.9"), "malformed"},
		{"metadata name upper-case", edit(q, "meta-Focus", "1,1"), "malformed"},
		{"metadata moved into the type", edit(edit(mq, "meta-focus"), "type", "image/jpeg\nmeta-focus=0.3,0.25"), "malformed"},
	} {
		if err := d.VerifyUpload("uploads/x.jpg", tt.q, "image/jpeg", 1234, now); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s: err = %v, want ErrBadSignature (%s)", tt.name, err, tt.why)
		}
	}
	if _, err := d.SignUpload("uploads/x.jpg", "image/jpeg", 1234, map[string]string{"focus": "0.3\n0.25"}, now); err == nil {
		t.Error("metadata with a line break was signed")
	}

	// The signing key survives a restart, so URLs issued before still work.
	d2, err := NewDir(d.dir)
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

// Symbolic links inside the directory lead nowhere outside it: nothing
// outside is read, listed, written or deleted through one, whether it
// links a file, a folder or the metadata of a folder.
func TestDirSymlinks(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	secret := filepath.Join(outside, "secret.jpg")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewDir(filepath.Join(parent, "data"))
	if err != nil {
		t.Fatal(err)
	}
	link := func(target, name string) {
		t.Helper()
		p := filepath.Join(d.dir, filepath.FromSlash(name))
		os.Remove(p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	link(secret, "uploads/file-link.jpg")
	link(outside, "uploads/dir-link")
	link(outside, ".meta/meta-link")
	ctx := t.Context()

	for _, k := range []string{"uploads/file-link.jpg", "uploads/dir-link/secret.jpg"} {
		if data, _, err := d.Get(ctx, k, GetOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s: %q, %v; want ErrNotFound", k, data, err)
		}
		if _, err := d.Head(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Errorf("head %s: %v; want ErrNotFound", k, err)
		}
	}
	if l, err := d.List(ctx, "", 0); err != nil || len(l) != 0 {
		t.Errorf("list shows %s (%v)", objKeys(l), err)
	}

	writes := []struct{ key, why string }{
		{"uploads/dir-link/new.jpg", "a folder linked outside"},
		{"meta-link/new.jpg", "metadata in a folder linked outside"},
	}
	for _, w := range writes {
		if _, err := d.Put(ctx, w.key, []byte("new"), PutOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("put through %s: %v, want ErrInvalidKey", w.why, err)
		}
	}
	if err := d.Delete(ctx, "uploads/dir-link/secret.jpg"); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("delete through a folder linked outside: %v, want ErrInvalidKey", err)
	}
	// A link in the place of the object itself is replaced, not followed.
	if _, err := d.Put(ctx, "uploads/file-link.jpg", []byte("mine"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := d.Get(ctx, "uploads/file-link.jpg", GetOptions{}); err != nil || string(b) != "mine" {
		t.Fatalf("after replacing the link: %q %v", b, err)
	}
	link(secret, "uploads/file-link.jpg")
	if err := d.Delete(ctx, "uploads/file-link.jpg"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(d.dir, "uploads", "file-link.jpg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link was not deleted: %v", err)
	}

	// Metadata read through a link are not trusted, even when they match.
	if _, err := d.Put(ctx, "m/x.jpg", []byte("pretend jpeg"), PutOptions{ContentType: "image/jpeg"}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(d.dir, ".meta", "m"), filepath.Join(outside, "m")); err != nil {
		t.Fatal(err)
	}
	link(filepath.Join(outside, "m"), ".meta/m")
	if h, err := d.Head(ctx, "m/x.jpg"); err != nil || h.ContentType != "" {
		t.Errorf("metadata read from outside: %+v %v", h, err)
	}

	if b, err := os.ReadFile(secret); err != nil || string(b) != "secret" {
		t.Fatalf("the file outside: %q %v", b, err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 2 {
		t.Fatalf("written outside: %v", ents)
	}
	assertWhole(t, d)

	// The store's own files are not followed outside either.
	for _, own := range []string{".signing-key", ".tmp"} {
		dir := filepath.Join(parent, "own"+own)
		os.MkdirAll(dir, 0o755)
		target := filepath.Join(outside, "own"+own)
		if err := os.Symlink(target, filepath.Join(dir, own)); err != nil {
			t.Fatal(err)
		}
		if _, err := NewDir(dir); err == nil {
			t.Errorf("%s linked outside: NewDir accepted it", own)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s linked outside: %s was written", own, target)
		}
	}
}

// Keys that cannot be files side by side (one would be a folder of the
// other, in the objects or in their metadata) are a conflict, refused
// before anything is written; once the first is deleted, the second may be
// stored, as in S3.
func TestDirConflicts(t *testing.T) {
	for _, tt := range []struct{ first, second string }{
		{"a.jpg", "a.jpg/x.jpg"},
		{"d/y.jpg", "d"},
		{"p/q/r.jpg", "p/q"},
		{"p/q.jpg", "p/q.jpg/r/s.jpg"},
		{"a", "a.json/b"}, // .meta/a.json is a file, .meta/a.json/b.json needs it as a folder
		{"a.json/b", "a"},
	} {
		d := newDir(t)
		ctx := t.Context()
		if _, err := d.Put(ctx, tt.first, []byte("first"), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Put(ctx, tt.second, []byte("second"), PutOptions{}); !errors.Is(err, ErrConflict) {
			t.Errorf("%s then %s: %v, want ErrConflict", tt.first, tt.second, err)
		}
		// Deleting the refused key deletes nothing: it is not there.
		if err := d.Delete(ctx, tt.second); err != nil {
			t.Errorf("%s then %s: delete: %v", tt.first, tt.second, err)
		}
		if b, _, err := d.Get(ctx, tt.first, GetOptions{}); err != nil || string(b) != "first" {
			t.Errorf("%s then %s: the first is %q %v", tt.first, tt.second, b, err)
		}
		assertWhole(t, d)
		if err := d.Delete(ctx, tt.first); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Put(ctx, tt.second, []byte("second"), PutOptions{}); err != nil {
			t.Errorf("%s deleted, then %s: %v", tt.first, tt.second, err)
		}
	}
}

// A key whose metadata file's name would be too long for the filesystem
// is refused before anything is written.
func TestDirLongSegments(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	seg := func(n int) string { return strings.Repeat("s", n) }
	for _, tt := range []struct {
		key string
		ok  bool
	}{
		{"uploads/" + seg(250), true},
		{"uploads/" + seg(251), false},
		{"uploads/" + seg(248) + ".jpg", false}, // 252 bytes
		{seg(255) + "/x.jpg", true},
		{seg(256) + "/x.jpg", false},
	} {
		_, err := d.Put(ctx, tt.key, []byte("x"), PutOptions{})
		switch {
		case tt.ok && err != nil:
			t.Errorf("%d-byte key: %v", len(tt.key), err)
		case !tt.ok && !errors.Is(err, ErrInvalidKey):
			t.Errorf("%d-byte key: %v, want ErrInvalidKey", len(tt.key), err)
		}
		if _, err := d.Head(ctx, tt.key); (err == nil) != tt.ok {
			t.Errorf("%d-byte key: head: %v", len(tt.key), err)
		}
	}
	assertWhole(t, d)
}

// assertWhole fails the test unless every object in d has its metadata
// file and no temporary file is left.
func assertWhole(t *testing.T, d *Dir) {
	t.Helper()
	err := filepath.WalkDir(d.dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.dir, p)
		if strings.HasPrefix(rel, ".") && rel != "." {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.Type().IsRegular() {
			if _, err := os.Stat(filepath.Join(d.dir, ".meta", rel+".json")); err != nil {
				t.Errorf("%s has no metadata file: %v", rel, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(filepath.Join(d.dir, ".tmp")); len(left) != 0 {
		t.Errorf("%d temporary files left", len(left))
	}
}
