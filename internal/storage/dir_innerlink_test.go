package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A symbolic link planted in the directory that stays inside it (a
// relative link in an archive of originals unpacked there) is no object
// either: it would serve, and list, a file the store keeps for itself
// (the signing key of upload URLs, with which anyone could sign one) or
// another key's bytes under its own key.
func TestDirInnerLinksAreNoObjects(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	if _, err := d.Put(ctx, "uploads/real.jpg", []byte("pretend jpeg"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"uploads/key.jpg":   "../" + signingKeyFile,
		"uploads/alias.jpg": "real.jpg",
	} {
		if err := os.Symlink(target, filepath.Join(d.dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
		if b, _, err := d.Get(ctx, name, GetOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s (a link to %s): %q, %v; want ErrNotFound", name, target, b, err)
		}
		if _, err := d.Head(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("head %s (a link to %s): %v; want ErrNotFound", name, target, err)
		}
	}
	if objs, err := d.List(ctx, "", 0); err != nil || objKeys(objs) != objKeys([]Object{{Key: "uploads/real.jpg"}}) {
		t.Errorf("list: %s, %v; want uploads/real.jpg alone", objKeys(objs), err)
	}
}

// A hard link to one of the store's own files (an archive of originals
// unpacked in the directory may hold one: its entry names a path, which
// need not be in the archive) is no object either; a hard link between
// two objects (originals copied in with cp -l) is one.
func TestDirHardLinkToOwnFileIsNoObject(t *testing.T) {
	d := newDir(t)
	ctx := t.Context()
	if _, err := d.URLSigningKey(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Put(ctx, "uploads/real.jpg", []byte("pretend jpeg"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"uploads/key.jpg":  signingKeyFile,
		"uploads/url.jpg":  urlKeyFile,
		"uploads/copy.jpg": "uploads/real.jpg",
	} {
		if err := os.Link(filepath.Join(d.dir, filepath.FromSlash(target)), filepath.Join(d.dir, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"uploads/key.jpg", "uploads/url.jpg"} {
		if b, _, err := d.Get(ctx, name, GetOptions{}); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s: %q, %v; want ErrNotFound", name, b, err)
		}
	}
	if b, _, err := d.Get(ctx, "uploads/copy.jpg", GetOptions{}); err != nil || string(b) != "pretend jpeg" {
		t.Errorf("a hard link between objects: %q, %v", b, err)
	}
	if objs, err := d.List(ctx, "", 0); err != nil || objKeys(objs) != "uploads/copy.jpg,uploads/real.jpg" {
		t.Errorf("list: %s, %v", objKeys(objs), err)
	}
}
