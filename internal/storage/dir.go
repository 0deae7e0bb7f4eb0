package storage

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Dir is a store in a local directory: each object is a plain file at
// <dir>/<key>, its headers and metadata in <dir>/.meta/<key>.json. Hidden
// names are the store's own (ValidateKey refuses them as keys).
type Dir struct {
	root    string
	signKey []byte
}

// dirMeta is what Dir keeps beside an object. Size and ModTime are the
// file's at the time the metadata was written: a crash between the two
// renames of a Put leaves them different, and the metadata is then ignored.
type dirMeta struct {
	ETag         string            `json:"etag"`
	ContentType  string            `json:"content_type,omitempty"`
	CacheControl string            `json:"cache_control,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Size         int64             `json:"size"`
	ModTime      time.Time         `json:"mod_time"`
}

// NewDir returns a store in dir, creating it when missing. It fails when
// dir cannot be created or written.
func NewDir(dir string) (*Dir, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage dir %q: %w", dir, err)
	}
	for _, d := range []string{root, filepath.Join(root, ".meta"), filepath.Join(root, ".tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("storage dir: %w", err)
		}
	}
	key, err := loadSigningKey(filepath.Join(root, ".signing-key"))
	if err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	return &Dir{root: root, signKey: key}, nil
}

func (d *Dir) path(key string) string { return filepath.Join(d.root, filepath.FromSlash(key)) }
func (d *Dir) metaPath(key string) string {
	return filepath.Join(d.root, ".meta", filepath.FromSlash(key)+".json")
}

// Put writes the object atomically: to a temporary file, synced, then
// renamed into place, so a reader or a crash never sees part of it. The
// metadata follows the same way.
func (d *Dir) Put(ctx context.Context, key string, data []byte, o PutOptions) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	sum := md5.Sum(data)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	p := d.path(key)
	if err := d.writeAtomic(p, data); err != nil {
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	st, err := os.Stat(p)
	if err != nil {
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	m := dirMeta{ETag: etag, ContentType: o.ContentType, CacheControl: o.CacheControl,
		Metadata: lowerKeys(o.Metadata), Size: st.Size(), ModTime: st.ModTime()}
	mb, err := json.Marshal(m)
	if err != nil {
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := d.writeAtomic(d.metaPath(key), mb); err != nil {
		return Object{}, fmt.Errorf("put %q metadata: %w", key, err)
	}
	return m.object(key), nil
}

func (d *Dir) writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(d.root, ".tmp"), "put-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename, a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Head returns the object's description.
func (d *Dir) Head(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	st, err := os.Stat(d.path(key))
	if err != nil || !st.Mode().IsRegular() {
		return Object{}, fmt.Errorf("head %q: %w", key, ErrNotFound)
	}
	m, err := d.meta(key, st)
	if err != nil {
		return Object{}, fmt.Errorf("head %q: %w", key, err)
	}
	return m.object(key), nil
}

// meta reads the metadata of the object whose file is st, or recomputes
// what it can (size, ETag, time) when the metadata is missing or stale.
func (d *Dir) meta(key string, st fs.FileInfo) (dirMeta, error) {
	var m dirMeta
	b, err := os.ReadFile(d.metaPath(key))
	if err == nil && json.Unmarshal(b, &m) == nil && m.Size == st.Size() && m.ModTime.Equal(st.ModTime()) {
		return m, nil
	}
	data, err := os.ReadFile(d.path(key))
	if err != nil {
		return m, err
	}
	sum := md5.Sum(data)
	return dirMeta{ETag: `"` + hex.EncodeToString(sum[:]) + `"`, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Get reads the object whole.
func (d *Dir) Get(ctx context.Context, key string, o GetOptions) ([]byte, Object, error) {
	obj, err := d.Head(ctx, key)
	if err != nil {
		return nil, Object{}, err
	}
	if o.IfMatch != "" && o.IfMatch != obj.ETag {
		return nil, Object{}, fmt.Errorf("get %q: ETag %s, want %s: %w", key, obj.ETag, o.IfMatch, ErrPreconditionFailed)
	}
	if o.MaxBytes > 0 && obj.Size > o.MaxBytes {
		return nil, Object{}, fmt.Errorf("get %q: %d bytes: %w", key, obj.Size, ErrTooLarge)
	}
	data, err := os.ReadFile(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, err)
	}
	return data, obj, nil
}

// Delete removes the object; a missing one is not an error, as in S3.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	for _, p := range []string{d.path(key), d.metaPath(key)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
	}
	return nil
}

// List returns up to limit objects whose keys start with prefix, in key
// order.
func (d *Dir) List(ctx context.Context, prefix string, limit int) ([]Object, error) {
	var out []Object
	err := filepath.WalkDir(d.root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.root, p)
		key := filepath.ToSlash(rel)
		if e.IsDir() {
			if p != d.root && (strings.HasPrefix(e.Name(), ".") || !mayHold(key+"/", prefix)) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(key, prefix) && ValidateKey(key) == nil {
			obj, err := d.Head(ctx, key)
			if err == nil {
				out = append(out, obj)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// mayHold reports whether a directory dir (ending in "/") can hold keys
// with the prefix.
func mayHold(dir, prefix string) bool {
	return strings.HasPrefix(dir, prefix) || strings.HasPrefix(prefix, dir)
}

// Check reports whether the directory is writable, for readiness.
func (d *Dir) Check(ctx context.Context) error {
	f, err := os.CreateTemp(filepath.Join(d.root, ".tmp"), "check-*")
	if err != nil {
		return fmt.Errorf("storage dir not writable: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func (m dirMeta) object(key string) Object {
	return Object{Key: key, Size: m.Size, ETag: m.ETag, ContentType: m.ContentType,
		CacheControl: m.CacheControl, Metadata: m.Metadata, LastModified: m.ModTime}
}

func lowerKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}
