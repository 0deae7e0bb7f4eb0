package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Hard links planted in the directory, under the names of the store's own
// files, to files outside it: nothing is written through them. The
// store's files are replaced (the keys), left empty (a claim's marker),
// or refused (the server's lock, whose file must stay one file), and the
// files outside keep their bytes.
func TestDirHardLinksLeadNowhere(t *testing.T) {
	parent := t.TempDir()
	data := filepath.Join(parent, "data")
	if err := os.MkdirAll(filepath.Join(data, usedDir), 0o755); err != nil {
		t.Fatal(err)
	}
	victims := map[string]string{}
	plant := func(own string) {
		t.Helper()
		v := filepath.Join(parent, "victim-"+filepath.Base(own))
		if err := os.WriteFile(v, []byte("precious"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(v, filepath.Join(data, own)); err != nil {
			t.Fatal(err)
		}
		victims[own] = v
	}
	plant(signingKeyFile)
	plant(urlKeyFile)
	plant(serverLockFile)
	d, err := NewDir(data)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if k, err := d.URLSigningKey(); err != nil || len(k) != 64 {
		t.Errorf("URL signing key: %q, %v", k, err)
	}
	if err := d.LockServer(); err == nil {
		t.Error("a lock file linked elsewhere was taken")
	}
	q, err := d.SignUpload("uploads/a.jpg", "image/jpeg", 3, nil, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := hex.DecodeString(q.Get("sig"))
	sum := sha256.Sum256(sig)
	plant(usedDir + "/" + q.Get("expires") + "-" + hex.EncodeToString(sum[:]) + claimExt)
	c, err := d.ClaimUpload("uploads/a.jpg", q, "image/jpeg", 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.Release()
	for own, v := range victims {
		if b, err := os.ReadFile(v); err != nil || string(b) != "precious" {
			t.Errorf("%s linked to a file outside: it now holds %q (%v)", own, b, err)
		}
	}
	// The keys are the store's own, kept from other users, and read back.
	for _, own := range []string{signingKeyFile, urlKeyFile} {
		if st, err := os.Lstat(filepath.Join(data, own)); err != nil || st.Mode() != 0o600 {
			t.Errorf("%s: %v, %v; want a file of mode 0600", own, st.Mode(), err)
		}
	}
	d.Close()
	d2, err := NewDir(data)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.VerifyUpload("uploads/a.jpg", q, "image/jpeg", 3, time.Now()); err != nil {
		t.Errorf("after a restart: %v", err)
	}
}
