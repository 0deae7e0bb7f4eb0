package storage

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// The files under Dir: how keys become paths, how files are written and
// renamed into place, and how filesystem errors become the store's.

// maxNameBytes is the longest file name that Linux filesystems take
// (NAME_MAX: ext4, XFS, btrfs and tmpfs alike).
const maxNameBytes = 255

// CheckKey reports whether the directory can hold key (see checkKey). The
// error wraps ErrInvalidKey.
func (d *Dir) CheckKey(key string) error { return checkKey(key) }

// checkKey is ValidateKey plus what a directory needs: every segment must
// be a file name the filesystem takes, the last one with room for the
// metadata file's ".json", so that a key the store cannot hold whole is
// refused before anything is written. The error wraps ErrInvalidKey.
func checkKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	segs := strings.Split(key, "/")
	for i, s := range segs {
		limit := maxNameBytes
		if i == len(segs)-1 {
			limit -= len(metaExt)
		}
		if len(s) > limit {
			return fmt.Errorf("%w %.40q...: a path segment of %d bytes, over the %d of local storage", ErrInvalidKey, key, len(s), limit)
		}
	}
	return nil
}

// place checks, before anything is written, that the file rel (relative
// to the root) can be written or removed: each parent that exists must be
// a real directory, neither an object (ErrConflict: "a" is a file, so
// "a/b" cannot be one) nor a symbolic link (ErrInvalidKey: the file would
// not be where the key says, and perhaps outside the store), and rel
// itself must not be a directory (ErrConflict: "a" holds "a/b"), unless
// clear is set and it holds no file, when it is removed (removeEmpty). A
// symbolic link at rel itself is replaced by the file, never followed.
func (d *Dir) place(rel string, clear bool) error {
	// One directory at a time, each opened from its parent, so that the
	// walk costs a few system calls per segment rather than a walk from
	// the root for each.
	r := d.root
	defer func() {
		if r != d.root {
			r.Close()
		}
	}()
	segs := strings.Split(rel, "/")
	for i, seg := range segs {
		st, err := r.Lstat(seg)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fsError(err)
		}
		last := i == len(segs)-1
		p := func() string { return strings.Join(segs[:i+1], "/") } // for messages only
		switch mode := st.Mode(); {
		case last && mode.IsDir() && clear && removeEmpty(r, seg):
			// Folders without a file, which a crash between a
			// deletion and its prune leaves (or between a write's
			// making of its folders and its rename): no key is there,
			// as in S3, and none may be kept from being written.
			return nil
		case last && mode.IsDir():
			return fmt.Errorf("%w: %s is a folder of other keys", ErrConflict, p())
		case last:
			return nil
		case mode&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: %s is a symbolic link", ErrInvalidKey, p())
		case !mode.IsDir() && clear && d.removeOrphan(segs[:i+1], r, seg):
			return nil // nothing was beneath it
		case !mode.IsDir():
			return fmt.Errorf("%w: %s is an object, not a folder", ErrConflict, p())
		}
		sub, err := r.OpenRoot(seg)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed since (a prune)
		}
		if err != nil {
			return fsError(err)
		}
		if r != d.root {
			r.Close()
		}
		r = sub
	}
	return nil
}

// removeOrphan removes the file name of r, at the path segs, when it is
// the metadata of an object that is not there (a crash between a
// deletion's removal of the object and of its metadata leaves them), and
// reports whether it is gone: it would keep the keys beneath its name
// ("a.json/b", whose metadata need .meta/a.json as a folder) from ever
// being written. The object is written before its metadata, so metadata
// without their object are never a write's under way.
func (d *Dir) removeOrphan(segs []string, r *os.Root, name string) bool {
	key, ok := strings.CutSuffix(strings.Join(segs, "/"), metaExt)
	key, inMeta := strings.CutPrefix(key, metaDir+"/")
	if !ok || !inMeta || ValidateKey(key) != nil {
		return false
	}
	if _, err := d.root.Lstat(key); !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	err := r.Remove(name)
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

// removeEmpty removes the folder name of r when it holds no file, only
// folders that hold none (at most a few levels: a key's), and reports
// whether it is gone.
func removeEmpty(r *os.Root, name string) bool {
	ents, err := fs.ReadDir(r.FS(), name)
	if err != nil || len(ents) > 16 {
		return false
	}
	for _, e := range ents {
		if !e.IsDir() || !removeEmpty(r, name+"/"+e.Name()) {
			return false
		}
	}
	err = r.Remove(name)
	return err == nil || errors.Is(err, fs.ErrNotExist)
}

// tempMaxAge is the age past which a file in the temporary directory is
// taken for one a crash left behind: a write's lasts a moment. Another
// process on the directory (server reconcile beside the server) may be
// writing the younger ones.
const tempMaxAge = time.Hour

// sweepTemp removes the files of the temporary directory older than
// tempMaxAge: those of writes cut short by a crash, which nothing else
// would ever remove (a killed upload's are megabytes).
func (d *Dir) sweepTemp(now time.Time) {
	ents, err := fs.ReadDir(d.root.FS(), tmpDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		name := tmpDir + "/" + e.Name()
		if st, err := d.root.Lstat(name); err == nil && !st.IsDir() && now.Sub(st.ModTime()) > tempMaxAge {
			d.root.Remove(name)
		}
	}
}

// writeTemp writes data to a new file in the temporary directory, synced
// to the disk when sync is set, and returns its name and description. The
// file is removed on failure.
func (d *Dir) writeTemp(data []byte, sync bool) (string, fs.FileInfo, error) {
	return d.writeTempMode(data, sync, 0o644) // objects are for reading
}

// writeOwn replaces the store's own file name (relative to the root) with
// one of data and mode perm, synced: written aside and renamed over it,
// never through it, so that a hard link planted in its place to a file
// outside the directory leads nowhere.
func (d *Dir) writeOwn(name string, data []byte, perm fs.FileMode) error {
	tmp, _, err := d.writeTempMode(data, true, perm)
	if err != nil {
		return err
	}
	if err := d.root.Rename(tmp, name); err != nil {
		d.root.Remove(tmp)
		return fsError(err)
	}
	return nil
}

// writeTempMode is writeTemp for a file of mode perm. The file is made
// readable by its owner alone and given perm once written, so that no
// one else can read a secret (a signing key) while it is being written.
func (d *Dir) writeTempMode(data []byte, sync bool, perm fs.FileMode) (string, fs.FileInfo, error) {
	if d.readOnly {
		return "", nil, errReadOnly
	}
	name := tmpDir + "/" + strings.ToLower(rand.Text())
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm&0o600)
	if err != nil {
		return "", nil, fsError(err)
	}
	var st fs.FileInfo
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if err == nil {
		err = f.Chmod(perm) // whatever the umask
	}
	if err == nil {
		st, err = f.Stat()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.root.Remove(name)
		return "", nil, fsError(err)
	}
	return name, st, nil
}

// rename moves the file from into place at to, creating its parents when
// they are missing (most often they are there: a rename is tried first). A
// parent removed in between by a concurrent Delete (prune) is made again.
func (d *Dir) rename(from, to string) error {
	err := d.root.Rename(from, to)
	for range 3 {
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err = d.root.MkdirAll(path.Dir(to), 0o755); err == nil {
			err = d.root.Rename(from, to)
		}
	}
	return fsError(err)
}

// prune removes the parents of rel that are empty, as a deleted object's
// folders would vanish in S3, so that they stand in the way of no later
// key ("a/b" deleted, "a" may be an object).
func (d *Dir) prune(rel string) {
	for dir := path.Dir(rel); dir != "." && dir != metaDir; dir = path.Dir(dir) {
		if d.root.Remove(dir) != nil {
			return // not empty, or gone already
		}
	}
}

// fsError translates a filesystem error into the store's: a full or
// failing disk is ErrUnavailable, a file or folder the process may not
// read or write ErrAccessDenied (copied in by another user: not a missing
// object, which would have its outputs removed), a file in the way
// ErrConflict, a name too long ErrInvalidKey; the original error stays
// wrapped.
func fsError(err error) error {
	var errno syscall.Errno
	if err == nil || !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case syscall.EACCES, syscall.EPERM:
		return fmt.Errorf("%w: %w", ErrAccessDenied, err)
	case syscall.ENOTDIR, syscall.EISDIR, syscall.EEXIST, syscall.ENOTEMPTY:
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case syscall.ENAMETOOLONG:
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return err
}

// syncDir syncs the directory name, so that a file created or renamed in
// it survives a crash of the machine.
func (d *Dir) syncDir(name string) error {
	f, err := d.root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
