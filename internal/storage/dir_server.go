package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// A directory is one server's: the locks that make a conditional write's
// look and write one step, and the claims on signed upload URLs, live in
// its memory, and a server that starts finishes the uploads that the
// directory's notes say were cut short, which on a directory another
// server is writing are uploads under way. A second server on the
// directory (two containers on one volume, a new one started before the
// old one stops) would break all three, so it is refused.

// serverLockFile is held by the server of the directory (an flock, which
// the system releases when the process ends, however it ends) and holds
// its process id, for the message of the server refused.
const serverLockFile = ".server.lock"

// errLockUnsupported: the system has no flock; the directory is not
// guarded.
var errLockUnsupported = errors.New("no file locks on this system")

// LockServer claims the directory for this process's server until Close.
// It fails with ErrConflict while another process's server holds it (or
// another Dir of this process), and with ErrUnsupported on a directory
// opened to read only. server reconcile and server sign do not take it:
// they may run beside the server.
func (d *Dir) LockServer() error {
	if d.readOnly {
		return fmt.Errorf("lock %s: %w", d.dir, errReadOnly)
	}
	// The file is written (the process id), so it must be the store's
	// own: not a link to another file, inside the directory or out.
	notOwn := fmt.Errorf("lock %s: %s is not a file of its own (a link?): remove it", d.dir, serverLockFile)
	if st, err := d.root.Lstat(serverLockFile); err == nil && !st.Mode().IsRegular() {
		return notOwn
	}
	// O_NOFOLLOW: a link planted after that look is refused too, as open
	// refuses one at a key.
	f, err := d.root.OpenFile(serverLockFile, os.O_RDWR|os.O_CREATE|oNoFollow, 0o644)
	if err != nil {
		return fmt.Errorf("lock %s: %w", d.dir, fsError(err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || fileLinks(st) > 1 {
		f.Close()
		return notOwn
	}
	held, err := flock(f)
	if errors.Is(err, errLockUnsupported) {
		f.Close()
		return nil
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("lock %s: %w", d.dir, err)
	}
	if held {
		b, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		who := "another server"
		if pid := strings.TrimSpace(string(b)); pid != "" {
			who += " (process " + pid + ")"
		}
		return fmt.Errorf("%w: %s is in use by %s: one server per directory", ErrConflict, d.dir, who)
	}
	// The process id is for the message alone; failing to write it is
	// no reason to refuse to start.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	d.serverLock = f
	return nil
}
