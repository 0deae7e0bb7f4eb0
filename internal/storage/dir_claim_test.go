package storage

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A signed upload URL allows one upload: it is held by one request at a
// time, given back by a failure, used up by a success, and stays used up
// after a restart until it has expired.
func TestDirUploadClaims(t *testing.T) {
	d := newDir(t)
	now := time.Now()
	q, err := d.SignUpload("uploads/x.jpg", "image/jpeg", 10, nil, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	upper := url.Values{}
	for k, v := range q {
		upper[k] = append([]string(nil), v...)
	}
	upper.Set("sig", strings.ToUpper(q.Get("sig")))
	claim := func(d *Dir, q url.Values, at time.Time) (*UploadClaim, error) {
		return d.ClaimUpload("uploads/x.jpg", q, "image/jpeg", 10, at)
	}

	c, err := claim(d, q, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, qq := range []url.Values{q, upper} {
		if _, err := claim(d, qq, now); !errors.Is(err, ErrConflict) {
			t.Errorf("claimed twice at once: %v, want ErrConflict", err)
		}
	}
	c.Release() // the upload failed: the URL may be used again
	c, err = claim(d, q, now)
	if err != nil {
		t.Fatalf("after a failed upload: %v", err)
	}
	if err := c.Use(); err != nil {
		t.Fatal(err)
	}
	c.Release()
	for _, qq := range []url.Values{q, upper} {
		if _, err := claim(d, qq, now); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "used") {
			t.Errorf("used URL: %v, want ErrBadSignature (already used)", err)
		}
	}
	// The claim still checks the signature first.
	if _, err := d.ClaimUpload("uploads/x.jpg", q, "image/jpeg", 11, now); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "exactly") {
		t.Errorf("other size: %v", err)
	}

	// A claim holds the metadata signed into its URL.
	mq, _ := d.SignUpload("uploads/x.jpg", "image/jpeg", 10, map[string]string{"focus": "0.5,0.5"}, now.Add(time.Minute))
	mc, err := claim(d, mq, now)
	if err != nil {
		t.Fatal(err)
	}
	if m := mc.Metadata(); len(m) != 1 || m["focus"] != "0.5,0.5" {
		t.Errorf("claim metadata %v", m)
	}
	mc.Release()

	// After a restart the URL stays used.
	d2, err := NewDir(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := claim(d2, q, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("used URL after a restart: %v, want ErrBadSignature", err)
	}

	// Once the URL has long expired its marker goes, at the next claim.
	later := now.Add(2 * time.Hour)
	q2, _ := d2.SignUpload("uploads/y.jpg", "image/jpeg", 10, nil, later.Add(time.Minute))
	c2, err := d2.ClaimUpload("uploads/y.jpg", q2, "image/jpeg", 10, later)
	if err != nil {
		t.Fatal(err)
	}
	if n := used(t, d2); len(n) != 1 || !strings.HasSuffix(n[0], ".claim") {
		t.Errorf("markers after the sweep: %v, want the one claim in progress", n)
	}
	if _, err := claim(d2, q, later); !errors.Is(err, ErrBadSignature) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("swept URL: %v, want ErrBadSignature (expired)", err)
	}
	c2.Release()
	if n := used(t, d2); len(n) != 0 {
		t.Errorf("markers after an unused claim: %v", n)
	}
}

func used(t *testing.T, d *Dir) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(d.dir, ".used"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
