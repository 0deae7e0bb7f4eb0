package storage

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Dir is a store in a local directory: each object is a plain file at
// <dir>/<key>, its headers and metadata in <dir>/.meta/<key>.json. Hidden
// names are the store's own (ValidateKey refuses them as keys).
//
// Every file is reached through an os.Root opened on the directory, so
// that no key, and no symbolic link planted inside, can lead a read, a
// write or a deletion outside it; writes and deletions do not go through
// symbolic links at all, and a link is no object, even one that stays
// inside (it could name the store's own files).
type Dir struct {
	dir     string // absolute path, for messages
	root    *os.Root
	signKey []byte
	// readOnly: opened by OpenDirReadOnly; every write is refused.
	readOnly bool
	// serverLock: the locked file of LockServer (dir_server.go), or nil.
	serverLock *os.File

	// writes serializes the writes and deletions of a key (striped by its
	// hash), so that a conditional write's look at the key and its write
	// are one step: the store is one process's.
	writes [64]sync.Mutex

	// The single use of signed upload URLs (dir_claim.go).
	mu       sync.Mutex
	inflight map[string]bool // markers of URLs whose upload is running
	swept    time.Time       // when expired markers were last removed
}

// The store's own directories, beside the keys.
const (
	metaDir = ".meta"
	tmpDir  = ".tmp"
	usedDir = ".used" // markers of used upload URLs
	// pendingDir (dir_pending.go): notes of uploads under way
	metaExt = ".json"
)

// dirMeta is what Dir keeps beside an object. Size, ModTime and Ino are
// the file's at the time the metadata was written: a crash between the
// two renames of a Put leaves the new file beside the metadata of the
// version it replaced, which must not be taken for its own (see stored).
type dirMeta struct {
	ETag         string            `json:"etag"`
	ContentType  string            `json:"content_type,omitempty"`
	CacheControl string            `json:"cache_control,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Size         int64             `json:"size"`
	ModTime      time.Time         `json:"mod_time"`
	// Ino is the file's inode number (0: unknown, or metadata written
	// before it was kept). A new version's file is written while the old
	// one still stands, so the two never share one, whereas their times
	// may be equal: Linux stamps files from a clock of a few milliseconds.
	Ino uint64 `json:"ino,omitempty"`
}

// How far the metadata kept for an object can be trusted (stored).
type metaState int

const (
	metaStale   metaState = iota // none, or another file's: ignored
	metaCurrent                  // written with this very file
	// metaUnsure: of a file of this size, but perhaps not this one (the
	// directory copied elsewhere, a crash on a coarse clock): current only
	// when the file's bytes have the metadata's ETag.
	metaUnsure
)

// NewDir returns a store in dir, creating it when missing. It fails when
// dir cannot be created or opened, or when one of the store's own
// directories in it is not a directory (a symbolic link, for one).
func NewDir(dir string) (*Dir, error) { return openDir(dir, false) }

// OpenDirReadOnly opens the store in dir, which must exist, to read it
// and nothing else (server reconcile --dry-run): unlike NewDir it makes
// nothing and removes nothing, neither the store's own directories and
// signing key nor a sweep of old temporary files, and every write,
// deletion or signature fails with ErrUnsupported.
func OpenDirReadOnly(dir string) (*Dir, error) { return openDir(dir, true) }

func openDir(dir string, readOnly bool) (*Dir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage dir %q: %w", dir, err)
	}
	if !readOnly {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("storage dir: %w", err)
		}
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	d := &Dir{dir: abs, root: root, inflight: map[string]bool{}, readOnly: readOnly}
	if readOnly {
		return d, nil
	}
	if err := d.init(); err != nil {
		root.Close()
		return nil, fmt.Errorf("storage dir %s: %w", abs, err)
	}
	return d, nil
}

// errReadOnly is every write to a store opened by OpenDirReadOnly.
var errReadOnly = fmt.Errorf("%w: the directory is open to read only", ErrUnsupported)

func (d *Dir) init() error {
	for _, sub := range []string{metaDir, tmpDir, usedDir, pendingDir} {
		if err := d.root.Mkdir(sub, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if st, err := d.root.Lstat(sub); err != nil || !st.IsDir() {
			return fmt.Errorf("%s is not a directory", sub)
		}
	}
	d.sweepTemp(time.Now())
	key, err := d.loadSigningKey()
	if err != nil {
		return err
	}
	d.signKey = key
	return nil
}

// Close releases the directory, and the server's lock of it.
func (d *Dir) Close() error {
	if d.serverLock != nil {
		d.serverLock.Close()
		d.serverLock = nil
	}
	return d.root.Close()
}

// metaPath is the file of key's metadata, relative to the root; the
// object's own file is the key itself.
func (d *Dir) metaPath(key string) string { return metaDir + "/" + key + metaExt }

// Put writes the object and its metadata so that neither is ever seen in
// part and the object is never left without its metadata: both are
// written whole to temporary files and synced (unless o.Rebuildable)
// before either is renamed into place, and the object is taken back out
// if its metadata's rename fails. A key that cannot be a file here is refused before anything is
// written: ErrInvalidKey (see checkKey, or a path through a symbolic link)
// or ErrConflict (a key is in the way); a full or failing disk is
// ErrUnavailable.
func (d *Dir) Put(ctx context.Context, key string, data []byte, o PutOptions) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	if d.readOnly {
		return Object{}, fmt.Errorf("put %q: %w", key, errReadOnly)
	}
	p, mp := key, d.metaPath(key)
	for _, rel := range []string{p, mp} {
		if err := d.place(rel, true); err != nil {
			return Object{}, fmt.Errorf("put %q: %w", key, err)
		}
	}
	tmp, st, err := d.writeTemp(data, !o.Rebuildable)
	if err != nil {
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			d.root.Remove(tmp)
		}
	}()
	m := dirMeta{ETag: dirETag(data), ContentType: o.ContentType, CacheControl: o.CacheControl,
		Metadata: lowerKeys(o.Metadata), Size: st.Size(), ModTime: st.ModTime(), Ino: fileID(st)}
	mb, err := json.Marshal(m)
	if err != nil {
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	mtmp, _, err := d.writeTemp(mb, !o.Rebuildable)
	if err != nil {
		return Object{}, fmt.Errorf("put %q metadata: %w", key, err)
	}
	// Written aside, outside the lock (a disk's sync can take long); what
	// the condition looks at, and the renames, under it.
	unlock := d.lock(key)
	defer unlock()
	if err := d.precondition(ctx, key, o); err != nil {
		d.root.Remove(mtmp)
		return Object{}, err
	}
	if err := d.rename(tmp, p); err != nil {
		d.root.Remove(mtmp)
		d.prune(p)
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	renamed = true
	if err := d.rename(mtmp, mp); err != nil {
		d.root.Remove(mtmp)
		d.root.Remove(p)
		d.prune(p)
		d.prune(mp)
		return Object{}, fmt.Errorf("put %q metadata: %w", key, err)
	}
	return m.object(key), nil
}

// precondition fails with ErrPreconditionFailed when key does not hold
// what o's IfMatch or IfAbsent asks of it; the caller holds key's lock.
func (d *Dir) precondition(ctx context.Context, key string, o PutOptions) error {
	if o.IfMatch == "" && !o.IfAbsent {
		return nil
	}
	cur, err := d.Head(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		if o.IfMatch != "" {
			return fmt.Errorf("put %q: no object, want ETag %s: %w", key, o.IfMatch, ErrPreconditionFailed)
		}
	case err != nil:
		return fmt.Errorf("put %q: %w", key, err)
	case o.IfAbsent:
		return fmt.Errorf("put %q: an object is there: %w", key, ErrPreconditionFailed)
	case cur.ETag != o.IfMatch:
		return fmt.Errorf("put %q: ETag %s, want %s: %w", key, cur.ETag, o.IfMatch, ErrPreconditionFailed)
	}
	return nil
}

// Head returns the object's description.
func (d *Dir) Head(ctx context.Context, key string) (Object, error) {
	f, st, err := d.open(key)
	if err != nil {
		return Object{}, fmt.Errorf("head %q: %w", key, err)
	}
	defer f.Close()
	m, state := d.stored(key, st)
	if state != metaCurrent {
		// Hashed as it is read: a file put here by hand (an original
		// copied in) may be of any size, and a HEAD or a listing holds
		// none of it.
		h := md5.New()
		if _, err := io.Copy(h, f); err != nil {
			return Object{}, fmt.Errorf("head %q: %w", key, fsError(err))
		}
		if etag := `"` + hex.EncodeToString(h.Sum(nil)) + `"`; state == metaStale || etag != m.ETag {
			m = dirMeta{ETag: etag, Size: st.Size(), ModTime: st.ModTime()}
		}
	}
	return m.object(key), nil
}

// Get reads the object whole.
func (d *Dir) Get(ctx context.Context, key string, o GetOptions) ([]byte, Object, error) {
	f, st, err := d.open(key)
	if err != nil {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, err)
	}
	defer f.Close()
	tooLarge := o.MaxBytes > 0 && st.Size() > o.MaxBytes
	var data []byte
	m, state := d.stored(key, st)
	if state != metaCurrent {
		if tooLarge {
			return nil, Object{}, fmt.Errorf("get %q: %d bytes: %w", key, st.Size(), ErrTooLarge)
		}
		if data, err = readFile(f, st.Size(), o.Into); err != nil {
			return nil, Object{}, fmt.Errorf("get %q: %w", key, fsError(err))
		}
		if fm := fileMeta(data, st); state == metaStale || fm.ETag != m.ETag {
			m = fm
		}
	}
	if o.IfMatch != "" && o.IfMatch != m.ETag {
		return nil, Object{}, fmt.Errorf("get %q: ETag %s, want %s: %w", key, m.ETag, o.IfMatch, ErrPreconditionFailed)
	}
	if tooLarge {
		return nil, Object{}, fmt.Errorf("get %q: %d bytes: %w", key, st.Size(), ErrTooLarge)
	}
	if data == nil {
		if data, err = readFile(f, st.Size(), o.Into); err != nil {
			return nil, Object{}, fmt.Errorf("get %q: %w", key, fsError(err))
		}
	}
	return data, m.object(key), nil
}

// readFile reads an object's open file of size bytes into a buffer of
// that size: objects are written to a temporary file and renamed into
// place, so an open file never changes, and io.ReadAll's growing buffers
// would triple the garbage of every read (the derived images of delivery
// by URL are read on every hit). With into set, the bytes are its own.
func readFile(f *os.File, size int64, into *bytes.Buffer) ([]byte, error) {
	var data []byte
	if into == nil {
		data = make([]byte, size)
	} else {
		into.Reset()
		into.Grow(int(size))
		data = into.AvailableBuffer()[:size]
	}
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, err
	}
	return data, nil
}

// open opens the object's file, or fails with ErrNotFound when there is
// no regular file at key inside the directory (a symbolic link, or a hard
// link to one of the store's signing keys, too), with ErrAccessDenied
// when the process may not read it or its folder, or with ErrUnavailable.
func (d *Dir) open(key string) (*os.File, fs.FileInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, nil, err
	}
	// Stat before opening: opening a FIFO or a device would block or
	// worse. A symbolic link is no object, even one that stays inside
	// the directory: it would give a file the store keeps for itself
	// (its signing key), which no key may name, or another key's bytes.
	// Lstat sees it; O_NOFOLLOW refuses one put there since.
	st, err := d.root.Lstat(key)
	if err == nil && !st.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	var f *os.File
	if err == nil {
		f, err = d.root.OpenFile(key, os.O_RDONLY|oNoFollow, 0)
	}
	if err == nil {
		if st, err = f.Stat(); err == nil && (!st.Mode().IsRegular() || d.isOwnFile(st)) {
			err = fs.ErrNotExist
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		if err = fsError(err); !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrAccessDenied) {
			err = ErrNotFound
		}
		return nil, nil, err
	}
	return f, st, nil
}

// isOwnFile reports whether st is one of the store's secret files under
// another name: a hard link planted at a key. Only a file of several
// names is looked at, which an object seldom is.
func (d *Dir) isOwnFile(st fs.FileInfo) bool {
	if fileLinks(st) < 2 {
		return false
	}
	for _, own := range []string{signingKeyFile, urlKeyFile} {
		if o, err := d.root.Lstat(own); err == nil && os.SameFile(o, st) {
			return true
		}
	}
	return false
}

// stored returns the metadata kept for the object whose file is st, and
// how far they can be trusted. Of a file of another size they are stale.
// Of a file of their size, time and inode they are current. Of a file of
// their size whose time or inode is not theirs they are unsure: the
// directory copied or restored elsewhere (new inodes, times perhaps cut
// to the second), or a crash between a Put's renames that left the new
// version, written in the same tick of the clock, beside the metadata of
// the old; the caller compares the file's ETag with theirs.
func (d *Dir) stored(key string, st fs.FileInfo) (dirMeta, metaState) {
	var m dirMeta
	b, err := d.root.ReadFile(d.metaPath(key))
	if err != nil || json.Unmarshal(b, &m) != nil || m.Size != st.Size() {
		return dirMeta{}, metaStale
	}
	if !m.ModTime.Equal(st.ModTime()) || (m.Ino != 0 && m.Ino != fileID(st)) {
		return m, metaUnsure
	}
	return m, metaCurrent
}

// fileMeta is what the file itself says when its metadata are missing or
// stale: its size, time and ETag.
func fileMeta(data []byte, st fs.FileInfo) dirMeta {
	return dirMeta{ETag: dirETag(data), Size: st.Size(), ModTime: st.ModTime()}
}

// dirETag is the ETag Dir gives data: its MD5 in hex, quoted, as S3's of
// a single-part upload.
func dirETag(data []byte) string {
	sum := md5.Sum(data)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// Delete removes the object; a missing one is not an error, as in S3.
// A key whose path goes through a symbolic link is ErrInvalidKey.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if d.readOnly {
		return fmt.Errorf("delete %q: %w", key, errReadOnly)
	}
	unlock := d.lock(key)
	defer unlock()
	for _, p := range []string{key, d.metaPath(key)} {
		err := d.place(p, true)
		if errors.Is(err, ErrConflict) {
			continue // a folder of other keys, or below an object: no object here
		}
		if err == nil {
			err = d.root.Remove(p)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", key, fsError(err))
		}
		d.prune(p)
	}
	return nil
}

// List returns up to limit objects whose keys start with prefix, in key
// order.
func (d *Dir) List(ctx context.Context, prefix string, limit int) ([]Object, error) {
	var out []Object
	err := fs.WalkDir(d.root.FS(), ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil && p != "." && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			// Removed under the walk (its last key deleted, and the
			// folder pruned): it holds nothing.
			return nil
		}
		if err != nil {
			return err
		}
		if e.IsDir() {
			if p != "." && (strings.HasPrefix(e.Name(), ".") || !mayHold(p+"/", prefix)) {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(p, prefix) && ValidateKey(p) == nil {
			obj, err := d.Head(ctx, p)
			switch {
			case err == nil:
				out = append(out, obj)
			case !errors.Is(err, ErrNotFound):
				// Unreadable, or a failing disk: a listing without it
				// would say it is not there (reconcile would leave it
				// without variants, and say all is in line).
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, fsError(err))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Folders lists the folders of the keys under prefix, as S3 does with a
// delimiter: each "prefix/name/", in key order, for a directory that can
// hold keys. A prefix that is not a directory has none. As in S3, a
// prefix may end inside a name (OUTPUT_PREFIX "resized-", whose folders
// are "resized-thumb/", "resized-_manifest/"): the folders are then those
// of its directory whose names start with that part.
func (d *Dir) Folders(ctx context.Context, prefix string) ([]string, error) {
	parent, part := "", prefix
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		parent, part = prefix[:i+1], prefix[i+1:]
	}
	dir := strings.TrimSuffix(parent, "/")
	if dir == "" {
		dir = "."
	} else if err := checkKey(dir); err != nil {
		return nil, fmt.Errorf("list folders of %q: %w", prefix, ErrInvalidKey)
	}
	// No folder where an object or a symbolic link stands on the way.
	if err := d.place(dir+"/x", false); errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalidKey) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("list folders of %q: %w", prefix, err)
	}
	entries, err := fs.ReadDir(d.root.FS(), dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list folders of %q: %w", prefix, fsError(err))
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), part) && ValidateKey(parent+e.Name()) == nil {
			out = append(out, parent+e.Name()+"/")
		}
	}
	sort.Strings(out) // in key order, as S3 gives them ("a-b/" before "a/")
	return out, nil
}

// mayHold reports whether a directory dir (ending in "/") can hold keys
// with the prefix.
func mayHold(dir, prefix string) bool {
	return strings.HasPrefix(dir, prefix) || strings.HasPrefix(prefix, dir)
}

// checkBytes is what the readiness check writes: a page, so that a full
// disk fails it (an empty file needs no space and would still succeed).
const checkBytes = 4096

// Check reports whether the directory takes writes, for readiness: it
// fails while the disk is full or failing.
func (d *Dir) Check(ctx context.Context) error {
	name, _, err := d.writeTemp(make([]byte, checkBytes), true)
	if err != nil {
		return fmt.Errorf("storage dir not writable: %w", err)
	}
	return d.root.Remove(name)
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

// lock takes the lock of key's writes, and returns its release.
func (d *Dir) lock(key string) func() {
	h := fnv.New32a()
	h.Write([]byte(key))
	mu := &d.writes[h.Sum32()%uint32(len(d.writes))]
	mu.Lock()
	return mu.Unlock
}
