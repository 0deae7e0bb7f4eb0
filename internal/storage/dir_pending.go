package storage

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// pendingDir holds a note per upload under way: a file named at random
// that holds the upload's key. A crash between an upload's first write
// and its last leaves the note, and the server that starts next on the
// directory finishes the key's outputs (pipeline's Recover). S3 needs no
// notes: its ObjectCreated event does that work.
const pendingDir = ".pending"

// maxPendingNote bounds what is read of a note: a key and no more.
const maxPendingNote = 4 << 10

// BeginUpload notes that an upload of key is under way, on the disk
// before it returns, and returns the note's id for EndUpload.
func (d *Dir) BeginUpload(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	id := strings.ToLower(rand.Text())
	f, err := d.root.OpenFile(pendingDir+"/"+id, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("note upload: %w", fsError(err))
	}
	_, err = f.WriteString(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.syncDir(pendingDir)
	}
	if err != nil {
		d.root.Remove(pendingDir + "/" + id)
		return "", fmt.Errorf("note upload: %w", fsError(err))
	}
	return id, nil
}

// EndUpload removes the note id: the upload is done, or undone.
func (d *Dir) EndUpload(id string) error {
	if err := d.root.Remove(pendingDir + "/" + id); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("end upload note: %w", fsError(err))
	}
	return nil
}

// PendingUploads returns the notes left, by id: the keys of uploads that
// a crash cut short. A note that cannot be read as a key (torn by a
// crash before its sync) is removed: its upload had written nothing yet.
func (d *Dir) PendingUploads() (map[string]string, error) {
	ents, err := fs.ReadDir(d.root.FS(), pendingDir)
	if err != nil {
		return nil, fmt.Errorf("read upload notes: %w", fsError(err))
	}
	notes := map[string]string{}
	for _, e := range ents {
		name := pendingDir + "/" + e.Name()
		b, err := d.readNote(name)
		if err != nil {
			return nil, err
		}
		if key := string(b); e.Type().IsRegular() && ValidateKey(key) == nil {
			notes[e.Name()] = key
			continue
		}
		d.root.Remove(name)
	}
	return notes, nil
}

// readNote reads at most maxPendingNote bytes of a note, without
// following a link.
func (d *Dir) readNote(name string) ([]byte, error) {
	st, err := d.root.Lstat(name)
	if err != nil || !st.Mode().IsRegular() {
		return nil, nil // gone, or not a note of ours
	}
	f, err := d.root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read upload note: %w", fsError(err))
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPendingNote+1))
	if err != nil {
		return nil, fmt.Errorf("read upload note: %w", fsError(err))
	}
	if len(b) > maxPendingNote {
		return nil, nil
	}
	return b, nil
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
