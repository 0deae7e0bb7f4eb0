package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// A signed upload URL of the local store allows one upload. Its use is
// recorded as a marker file in usedDir, named after the URL's expiry and a
// hash of its signature, so that it is refused from then on, after a
// restart too; markers are removed once their URLs have expired. While an
// upload runs its URL is claimed in memory, so that a second request with
// the same URL cannot succeed beside it: one server per directory, as the
// local store is meant for.

// sweepEvery is how often ClaimUpload removes expired markers.
const sweepEvery = time.Minute

// sweepGrace keeps a marker this long past its URL's expiry, so that a
// clock stepped back does not make a used URL valid again.
const sweepGrace = time.Hour

// claimExt names the marker of a claim in progress: written when the
// claim is taken, so that recording the use is only a rename, which a
// full disk does not prevent.
const claimExt = ".claim"

// UploadClaim holds the single use of one signed upload URL while its
// upload runs.
type UploadClaim struct {
	d    *Dir
	name string // of the marker in usedDir
	used bool
	meta map[string]string
}

// Metadata returns the metadata signed into the URL, which the upload is
// to be stored with (nil when there are none).
func (c *UploadClaim) Metadata() map[string]string { return c.meta }

// ClaimUpload verifies a PUT of key against its signed query, as
// VerifyUpload does, and claims the URL's single use; the claim holds the
// metadata signed into the URL. The caller must
// Release the claim when the upload is over, after Use when it succeeded.
// It fails with ErrBadSignature when the URL is not valid for this upload
// or has been used, with ErrConflict while another request holds it, and
// with ErrUnavailable when the claim cannot be written down.
func (d *Dir) ClaimUpload(key string, q url.Values, contentType string, size int64, now time.Time) (*UploadClaim, error) {
	if err := d.VerifyUpload(key, q, contentType, size, now); err != nil {
		return nil, err
	}
	// The signature's bytes, not its text: hex in capitals verifies too.
	sig, _ := hex.DecodeString(q.Get("sig"))
	sum := sha256.Sum256(sig)
	meta, _ := uploadMetadata(q) // verified with the signature
	name := q.Get("expires") + "-" + hex.EncodeToString(sum[:])

	d.mu.Lock()
	defer d.mu.Unlock()
	d.sweep(now)
	if d.inflight[name] {
		return nil, fmt.Errorf("%w: the upload URL is in use by another request", ErrConflict)
	}
	_, err := d.root.Lstat(usedDir + "/" + name)
	if err == nil {
		return nil, fmt.Errorf("%w: already used", ErrBadSignature)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("claim upload: %w", fsError(err))
	}
	// Made, never truncated: a marker is empty, and a file planted in
	// its place (a hard link to one outside) is left as it is.
	f, err := d.root.OpenFile(usedDir+"/"+name+claimExt, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("claim upload: %w", fsError(err))
	}
	f.Close()
	d.inflight[name] = true
	return &UploadClaim{d: d, name: name, meta: meta}, nil
}

// Use records, durably, that the URL has been used: it is refused from
// now on. Call it before the success is reported.
func (c *UploadClaim) Use() error {
	d := c.d
	if err := d.root.Rename(usedDir+"/"+c.name+claimExt, usedDir+"/"+c.name); err != nil {
		return fmt.Errorf("record upload URL use: %w", fsError(err))
	}
	c.used = true
	// The rename survives a crash only once its directory is synced.
	if err := d.syncDir(usedDir); err != nil {
		return fmt.Errorf("record upload URL use: %w", fsError(err))
	}
	return nil
}

// Release ends the claim. Without Use, the URL may be used again.
func (c *UploadClaim) Release() {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inflight, c.name)
	if !c.used {
		d.root.Remove(usedDir + "/" + c.name + claimExt)
	}
}

// sweep removes the markers, and the claims left by a crash, of URLs that
// expired more than sweepGrace ago, at most every sweepEvery. The caller
// holds d.mu.
func (d *Dir) sweep(now time.Time) {
	if since := now.Sub(d.swept); since >= 0 && since < sweepEvery {
		return
	}
	d.swept = now
	f, err := d.root.Open(usedDir)
	if err != nil {
		return
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return
	}
	for _, n := range names {
		exp, _, _ := strings.Cut(n, "-")
		e, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || now.Sub(time.Unix(e, 0)) <= sweepGrace || d.inflight[strings.TrimSuffix(n, claimExt)] {
			continue
		}
		d.root.Remove(usedDir + "/" + n)
	}
}
