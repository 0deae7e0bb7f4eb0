package storage

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// pendingDir holds a note per upload under way: a file named at random
// that holds the upload's key and, on a second line, the ETag of the
// version it stores (a note of an older server holds the key alone). A crash between an upload's first write
// and its last leaves the note, and the server that starts next on the
// directory finishes the key's outputs (pipeline's Recover). S3 needs no
// notes: its ObjectCreated event does that work.
const pendingDir = ".pending"

// maxPendingNote bounds what is read of a note: a key and an ETag, no
// more.
const maxPendingNote = 4 << 10

// PendingUpload is what a note says of an upload that a crash cut short:
// its key, and the ETag of the version it was storing ("" when the note
// does not say), whose outputs may stand beside the key's current ones.
type PendingUpload struct {
	Key, ETag string
}

// BeginUpload notes that an upload of data to key is under way, on the
// disk before it returns, and returns the note's id for EndUpload. The
// note names the version (the ETag that Put gives data).
func (d *Dir) BeginUpload(key string, data []byte) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	// Written aside and synced, then renamed into place: a note is whole
	// or absent.
	tmp, _, err := d.writeTemp([]byte(key+"\n"+dirETag(data)), true)
	if err != nil {
		return "", fmt.Errorf("note upload: %w", err)
	}
	id := path.Base(tmp)
	if err = d.root.Rename(tmp, pendingDir+"/"+id); err == nil {
		err = d.syncDir(pendingDir)
	}
	if err != nil {
		d.root.Remove(tmp)
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

// PendingUploads returns the notes left, by id: the uploads that a crash
// cut short. A file that cannot be read as a note (empty, planted: notes
// are renamed into place whole) is removed.
func (d *Dir) PendingUploads() (map[string]PendingUpload, error) {
	ents, err := fs.ReadDir(d.root.FS(), pendingDir)
	if err != nil {
		return nil, fmt.Errorf("read upload notes: %w", fsError(err))
	}
	notes := map[string]PendingUpload{}
	for _, e := range ents {
		name := pendingDir + "/" + e.Name()
		b, err := d.readNote(name)
		if err != nil {
			return nil, err
		}
		key, etag, _ := strings.Cut(string(b), "\n")
		if e.Type().IsRegular() && ValidateKey(key) == nil && (etag == "" || validETag(etag)) {
			notes[e.Name()] = PendingUpload{Key: key, ETag: etag}
			continue
		}
		if !d.readOnly {
			d.root.Remove(name)
		}
	}
	return notes, nil
}

// validETag reports whether s is an ETag as Put gives them: an MD5 in
// hex, quoted.
func validETag(s string) bool {
	if len(s) != 2*md5.Size+2 || s[0] != '"' || s[len(s)-1] != '"' {
		return false
	}
	_, err := hex.DecodeString(s[1 : len(s)-1])
	return err == nil
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
