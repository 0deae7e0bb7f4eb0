package storage

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/s3test"
)

// An inventory in MinIO: what List keeps, and what makes OpenInventory or
// List refuse the report.
func TestInventory(t *testing.T) {
	s := newS3(t)
	srv := s3test.Start(t)
	ctx := t.Context()
	src := s.Bucket()
	gz := func(text string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(text))
		zw.Close()
		return b.Bytes()
	}
	put := func(key string, b []byte) {
		t.Helper()
		if _, err := s.Put(ctx, key, b, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	good := gz(fmt.Sprintf(`"%[1]s","uploads/b+1.jpg","true","false","20","e2"
"%[1]s","uploads/a%%2B.jpg","true","false","10","e1"
"%[1]s","uploads/gone.jpg","true","true","",""
"%[1]s","uploads/old.jpg","false","false","5","e0"
"%[1]s","resized/thumb/a%%2B.jpg","true","false","3","e3"
`, src))
	put("inv/data/good.csv.gz", good)
	put("inv/data/other.csv.gz", gz(`"elsewhere","uploads/c.jpg","true","false","1","e"`+"\n"))
	sum := func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
	manifest := func(name, checksum string, files ...string) string {
		t.Helper()
		var entries []string
		for _, f := range files {
			b, _, err := s.Get(ctx, f, GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			entries = append(entries, fmt.Sprintf(`{"key":%q,"size":%d,"MD5checksum":%q}`, f, len(b), sum(b)))
		}
		m := fmt.Sprintf(`{"sourceBucket":%q,"destinationBucket":"arn:aws:s3:::%s","fileFormat":"CSV",
			"fileSchema":"Bucket, Key, IsLatest, IsDeleteMarker, Size, ETag","files":[%s]}`, src, src, strings.Join(entries, ","))
		key := "inv/" + name + "/manifest.json"
		put(key, []byte(m))
		if checksum == "" {
			checksum = sum([]byte(m))
		}
		put("inv/"+name+"/manifest.checksum", []byte(checksum+"\n"))
		return "s3://" + src + "/" + key
	}
	cfg := S3Config{Endpoint: srv.Endpoint, PathStyle: true}

	inv, err := OpenInventory(ctx, manifest("good", "", "inv/data/good.csv.gz"), src, cfg, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	objs, err := inv.List(ctx, "uploads/", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(objs); got != fmt.Sprint([]Object{{Key: "uploads/a+.jpg", Size: 10, ETag: `"e1"`}, {Key: "uploads/b 1.jpg", Size: 20, ETag: `"e2"`}}) {
		t.Errorf("listed %s", got)
	}
	if objs, err := inv.List(ctx, "uploads/", 1); err != nil || len(objs) != 1 || objs[0].Key != "uploads/a+.jpg" {
		t.Errorf("limit 1: %v %v", objs, err)
	}

	// A manifest that names a file twice (or files that overlap) lists
	// each object once: a listing has each key once.
	inv, err = OpenInventory(ctx, manifest("twice", "", "inv/data/good.csv.gz", "inv/data/good.csv.gz"), src, cfg, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if objs, err := inv.List(ctx, "uploads/", 0); err != nil || len(objs) != 2 {
		t.Errorf("a file named twice: %v %v, want 2 objects", objs, err)
	}
	// A gzip bomb: 32 MiB of one row, its checksum right.
	var bomb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&bomb, gzip.BestCompression)
	fmt.Fprintf(zw, `"%s","uploads/`, src)
	zw.Write(bytes.Repeat([]byte("a"), 32<<20))
	zw.Close()
	put("inv/data/bomb.csv.gz", bomb.Bytes())
	inv, err = OpenInventory(ctx, manifest("bomb", "", "inv/data/bomb.csv.gz"), src, cfg, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.List(ctx, "uploads/", 0); !errors.Is(err, ErrInvalidInventory) || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("a row of 32 MiB: %v", err)
	}

	// A file changed since the manifest was written.
	inv, err = OpenInventory(ctx, manifest("changed", "", "inv/data/good.csv.gz"), src, cfg, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	put("inv/data/good.csv.gz", append(good[:len(good):len(good)], 0))
	if _, err := inv.List(ctx, "uploads/", 0); !errors.Is(err, ErrInvalidInventory) || !strings.Contains(err.Error(), "MD5 checksum") {
		t.Errorf("a changed file: %v", err)
	}
	put("inv/data/good.csv.gz", good)
	inv, err = OpenInventory(ctx, manifest("other", "", "inv/data/other.csv.gz"), src, cfg, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.List(ctx, "uploads/", 0); !errors.Is(err, ErrInvalidInventory) || !strings.Contains(err.Error(), `a row of bucket "elsewhere"`) {
		t.Errorf("a row of another bucket: %v", err)
	}
	for name, open := range map[string]func() error{
		"manifest.checksum differs": func() error {
			_, err := OpenInventory(ctx, manifest("sum", strings.Repeat("a", 32), "inv/data/good.csv.gz"), src, cfg, srv.AWSConfig())
			return err
		},
		"another source bucket": func() error {
			_, err := OpenInventory(ctx, manifest("src", "", "inv/data/good.csv.gz"), "input", cfg, srv.AWSConfig())
			return err
		},
	} {
		if err := open(); !errors.Is(err, ErrInvalidInventory) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := OpenInventory(ctx, "s3://"+src+"/inv/none/manifest.json", src, cfg, srv.AWSConfig()); !errors.Is(err, ErrNotFound) {
		t.Errorf("no manifest: %v", err)
	}
}
