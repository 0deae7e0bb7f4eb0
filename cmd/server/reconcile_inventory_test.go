package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

// inventoryReport writes an S3 Inventory report as AWS does: gzip'd CSV
// files without a header, every field quoted, keys URL-encoded; then
// manifest.json and manifest.checksum. edit may change the manifest
// before it is written. It returns the manifest's s3:// URL.
type inventoryReport struct {
	st     *storage.S3
	bucket string // the source and destination bucket
	schema []string
	rows   [][]string
}

func (r inventoryReport) write(t *testing.T, ctx context.Context, name string, files int, edit func(m map[string]any)) string {
	t.Helper()
	base := "inventory/" + r.bucket + "/" + name + "/"
	var entries []map[string]any
	for f := 0; f < files; f++ {
		var csv bytes.Buffer
		for i := f; i < len(r.rows); i += files {
			for j, v := range r.rows[i] {
				if j > 0 {
					csv.WriteByte(',')
				}
				csv.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"`)
			}
			csv.WriteByte('\n')
		}
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(csv.Bytes())
		zw.Close()
		key := fmt.Sprintf("%sdata/%d.csv.gz", base, f)
		if _, err := r.st.Put(ctx, key, gz.Bytes(), storage.PutOptions{ContentType: "application/gzip"}); err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(gz.Bytes())
		entries = append(entries, map[string]any{"key": key, "size": gz.Len(), "MD5checksum": hex.EncodeToString(sum[:])})
	}
	m := map[string]any{
		"sourceBucket": r.bucket, "destinationBucket": "arn:aws:s3:::" + r.bucket, "version": "2016-11-30",
		"creationTimestamp": "1764374400000", "fileFormat": "CSV", "fileSchema": strings.Join(r.schema, ", "), "files": entries,
	}
	if edit != nil {
		edit(m)
	}
	b, _ := json.Marshal(m)
	sum := md5.Sum(b)
	key := base + "2025-11-29T00-00Z/manifest.json"
	for k, v := range map[string][]byte{key: b, strings.TrimSuffix(key, ".json") + ".checksum": []byte(hex.EncodeToString(sum[:]))} {
		if _, err := r.st.Put(ctx, k, v, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return "s3://" + r.bucket + "/" + key
}

var toRead = regexp.MustCompile(`\(([^()]+) to read\)`)

// --inventory plans what a listing plans, from an inventory report of the
// same bucket that also holds outputs, other prefixes, a delete marker and
// a version that is not the latest; then carries the plan out. A report
// whose file differs from its checksum, another bucket's report and a
// Parquet report are refused before anything is done.
func TestReconcileInventory(t *testing.T) {
	srv := s3test.Start(t)
	bucket := srv.Bucket(t)
	ctx := t.Context()
	env := map[string]string{
		"S3_BUCKET": bucket, "S3_ENDPOINT": srv.Endpoint, "S3_FORCE_PATH_STYLE": "true",
		"AWS_REGION": srv.Region, "AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey,
		"CONCURRENCY": "2", "LOG_LEVEL": "warn", "VARIANTS": "thumb:64x64:cover,old:100x0",
	}
	st, err := storage.NewS3(storage.S3Config{Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	put := func(keys ...string) {
		t.Helper()
		for i, k := range keys {
			if _, err := st.Put(ctx, k, small(t, i+len(k)), storage.PutOptions{ContentType: "image/jpeg"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Four originals done under the old VARIANTS, two new ones, one
	// outside the input prefix; then the definitions change.
	put("uploads/a.jpg", "uploads/with space+plus.jpg", "uploads/café/写真 1.jpg", "uploads/dir/b.jpg")
	if out, err := reconcileRun(ctx, env); err != nil || processed(t, out) != 4 {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	put("uploads/new 1.jpg", "uploads/new+2.jpg", "other/x.jpg")
	env["VARIANTS"] = "thumb:64x64:cover,medium:150x0"

	// The report of the whole bucket, as S3 would write it.
	objs, err := st.List(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := inventoryReport{st: st, bucket: bucket,
		schema: []string{"Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag", "StorageClass"}}
	for _, o := range objs {
		rep.rows = append(rep.rows, []string{bucket, url.QueryEscape(o.Key), "v1", "true", "false", fmt.Sprint(o.Size),
			o.LastModified.UTC().Format("2006-01-02T15:04:05.000Z"), strings.Trim(o.ETag, `"`), "STANDARD"})
	}
	rep.rows = append(rep.rows,
		[]string{bucket, "uploads/deleted.jpg", "v2", "true", "true", "", "2025-11-28T10:00:00.000Z", "", ""},
		[]string{bucket, "uploads/old+version.jpg", "v0", "false", "false", "1000", "2025-11-28T10:00:00.000Z", "abc", "STANDARD"})
	manifest := rep.write(t, ctx, "daily", 2, nil)

	listed, err := reconcileRun(ctx, env, "--dry-run", "--json")
	if err != nil {
		t.Fatalf("listed: %v\n%s", err, listed)
	}
	if got, want := lastJSON(t, listed), map[string]int{"current": 0, "create": 2, "regenerate": 4, "delete": 4}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed plan %v, want %v\n%s", got, want, listed)
	}
	fromInventory, err := reconcileRun(ctx, env, "--dry-run", "--json", "--inventory", manifest)
	if err != nil {
		t.Fatalf("inventory: %v\n%s", err, fromInventory)
	}
	if got, want := lastJSON(t, fromInventory), lastJSON(t, listed); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("plan from the inventory %v, from the listing %v\n%s", got, want, fromInventory)
	}
	if a, b := toRead.FindStringSubmatch(fromInventory), toRead.FindStringSubmatch(listed); a == nil || b == nil || a[1] != b[1] {
		t.Errorf("bytes to read: %v from the inventory, %v from the listing", a, b)
	}
	if !strings.Contains(fromInventory, "originals from the inventory of "+bucket+" begun 2025-11-29T00:00:00Z (2 files)") {
		t.Errorf("no inventory line in\n%s", fromInventory)
	}

	out, err := reconcileRun(ctx, env, "--json", "--inventory", manifest)
	if err != nil || processed(t, out) != 6 {
		t.Fatalf("run from the inventory: %v\n%s", err, out)
	}
	out, err = reconcileRun(ctx, env, "--dry-run", "--json")
	if got := lastJSON(t, out); err != nil || got["current"] != 6 || got["delete"] != 0 || got["create"]+got["regenerate"] != 0 {
		t.Errorf("after: %v %v\n%s", got, err, out)
	}

	// Refused, each with a message that says why.
	for name, tt := range map[string]struct {
		edit func(m map[string]any)
		want string
	}{
		"a file's checksum": {func(m map[string]any) {
			m["files"].([]map[string]any)[1]["MD5checksum"] = strings.Repeat("0", 32)
		}, "MD5 checksum"},
		"another bucket's": {func(m map[string]any) { m["sourceBucket"] = "someone-else" }, `is the inventory of bucket "someone-else", not of the input bucket`},
		"Parquet": {func(m map[string]any) {
			m["fileFormat"] = "Parquet"
			m["fileSchema"] = "message s3.inventory { required binary bucket (UTF8); required binary key (UTF8); }"
		}, `"Parquet" format; only CSV`},
	} {
		man := rep.write(t, ctx, strings.ReplaceAll(name, " ", "-"), 2, tt.edit)
		for _, args := range [][]string{{"--dry-run", "--json"}, {"--json"}} {
			out, err := reconcileRun(ctx, env, append(args, "--inventory", man)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s %v: %v, want an error with %q\n%s", name, args, err, tt.want, out)
			}
			if strings.Contains(out, "progress:") {
				t.Errorf("%s %v: carried out\n%s", name, args, out)
			}
		}
	}
	for _, bad := range []string{"https://x/manifest.json", "s3://" + bucket + "/inventory/none/manifest.json"} {
		if out, err := reconcileRun(ctx, env, "--dry-run", "--inventory", bad); err == nil {
			t.Errorf("%s: accepted\n%s", bad, out)
		}
	}
}
