package storage

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The schema of a report of all versions, as AWS lists its columns.
var versionsSchema = []string{"Bucket", "Key", "VersionId", "IsLatest", "IsDeleteMarker", "Size", "LastModifiedDate", "ETag"}

func readRows(t *testing.T, text string, cols []string) ([]InventoryRow, error) {
	t.Helper()
	var rows []InventoryRow
	err := ReadInventoryCSV(strings.NewReader(text), cols, func(r InventoryRow) error {
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

func TestReadInventoryCSV(t *testing.T) {
	tests := []struct {
		name string
		cols []string
		line string
		want InventoryRow
	}{
		{"plain", versionsSchema,
			`"b","uploads/a.jpg","v1","true","false","1234","2026-11-29T01:02:03.000Z","0f343b0931126a20f133d67c2b018a3b"`,
			InventoryRow{Bucket: "b", Key: "uploads/a.jpg", Size: 1234, ETag: "0f343b0931126a20f133d67c2b018a3b", Latest: true,
				LastModified: time.Date(2026, 11, 29, 1, 2, 3, 0, time.UTC)}},
		{"a space as plus, a plus as %2B", []string{"Bucket", "Key", "Size"},
			`"b","uploads/with+space%2Bplus.jpg","5"`,
			InventoryRow{Bucket: "b", Key: "uploads/with space+plus.jpg", Size: 5, Latest: true}},
		{"a space as %20, the slash escaped", []string{"Bucket", "Key", "Size"},
			`"b","uploads%2Fdir%2Fa%20b.jpg","5"`,
			InventoryRow{Bucket: "b", Key: "uploads/dir/a b.jpg", Size: 5, Latest: true}},
		{"unicode", []string{"Bucket", "Key", "Size"},
			`"b","uploads/caf%C3%A9/%E5%86%99%E7%9C%9F+%F0%9F%93%B7.jpg","7"`,
			InventoryRow{Bucket: "b", Key: "uploads/café/写真 📷.jpg", Size: 7, Latest: true}},
		{"a quoted field with a comma and a doubled quote", []string{"Bucket", "Key", "Size", "StorageClass"},
			`"b","uploads/a,b%22c.jpg","9","STANDARD ""x"", y"`,
			InventoryRow{Bucket: "b", Key: `uploads/a,b"c.jpg`, Size: 9, Latest: true}},
		{"unquoted fields", []string{"Bucket", "Key", "Size", "ETag"},
			`b,uploads/x.png,10,abc`,
			InventoryRow{Bucket: "b", Key: "uploads/x.png", Size: 10, ETag: "abc", Latest: true}},
		{"columns in the schema's order", []string{"Key", "ETag", "Bucket", "Size"},
			`"uploads/o.jpg","e","b","3"`,
			InventoryRow{Bucket: "b", Key: "uploads/o.jpg", Size: 3, ETag: "e", Latest: true}},
		{"a delete marker: no size, no ETag", versionsSchema,
			`"b","uploads/gone.jpg","v2","true","true","","2026-11-29T01:02:03.000Z",""`,
			InventoryRow{Bucket: "b", Key: "uploads/gone.jpg", Latest: true, DeleteMarker: true,
				LastModified: time.Date(2026, 11, 29, 1, 2, 3, 0, time.UTC)}},
		{"a version not the latest", versionsSchema,
			`"b","uploads/old.jpg","v0","false","false","8","2026-11-28T01:02:03.000Z","e"`,
			InventoryRow{Bucket: "b", Key: "uploads/old.jpg", Size: 8, ETag: "e",
				LastModified: time.Date(2026, 11, 28, 1, 2, 3, 0, time.UTC)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := readRows(t, tt.line+"\n", tt.cols)
			if err != nil || len(rows) != 1 {
				t.Fatalf("rows %+v, %v", rows, err)
			}
			if fmt.Sprintf("%+v", rows[0]) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("got  %+v\nwant %+v", rows[0], tt.want)
			}
		})
	}
}

func TestReadInventoryCSVRefuses(t *testing.T) {
	cols := []string{"Bucket", "Key", "Size"}
	for name, text := range map[string]string{
		"a column too few":   `"b","uploads/a.jpg"` + "\n",
		"a column too many":  `"b","uploads/a.jpg","1","x"` + "\n",
		"a bad escape":       `"b","uploads/a%zz.jpg","1"` + "\n",
		"a size not numeric": `"b","uploads/a.jpg","big"` + "\n",
		"an open quote":      `"b","uploads/a.jpg,"1"` + "\n",
	} {
		if rows, err := readRows(t, `"b","uploads/ok.jpg","1"`+"\n"+text, cols); !errors.Is(err, ErrInvalidInventory) {
			t.Errorf("%s: %+v, %v", name, rows, err)
		}
	}
	if _, err := readRows(t, "", []string{"Bucket", "Size"}); !errors.Is(err, ErrInvalidInventory) {
		t.Errorf("no Key column: %v", err)
	}
	// fn's error stops the reading and comes back as it is.
	stop := errors.New("stop")
	n := 0
	err := ReadInventoryCSV(strings.NewReader("b,k1,1\nb,k2,2\n"), cols, func(InventoryRow) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("after fn's error: %v, %d rows", err, n)
	}
}

func TestParseInventoryManifest(t *testing.T) {
	manifest := func(format, schema, dest string) []byte {
		return fmt.Appendf(nil, `{"sourceBucket":"src","destinationBucket":%q,"version":"2016-11-30","creationTimestamp":"1764378000000",
			"fileFormat":%q,"fileSchema":%q,"files":[{"key":"inv/src/cfg/data/1.csv.gz","size":10,"MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]}`,
			dest, format, schema)
	}
	m, err := ParseInventoryManifest(manifest("CSV", "Bucket, Key, Size, LastModifiedDate, ETag", "arn:aws:s3:::dest"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := m.destination(); d != "dest" || strings.Join(m.Columns(), "|") != "Bucket|Key|Size|LastModifiedDate|ETag" ||
		!m.Created().Equal(time.Date(2025, 11, 29, 1, 0, 0, 0, time.UTC)) || m.Files[0].Size != 10 {
		t.Errorf("manifest %+v: destination %q, created %v", m, d, m.Created())
	}
	if m, err := ParseInventoryManifest(manifest("CSV", "Bucket, Key", "arn:aws-cn:s3:::cn-dest")); err != nil {
		t.Errorf("a China region's ARN: %v", err)
	} else if d, _ := m.destination(); d != "cn-dest" {
		t.Errorf("destination %q", d)
	}
	for name, tt := range map[string]struct {
		b    []byte
		text string
	}{
		"Parquet":     {manifest("Parquet", "message s3.inventory { required binary bucket (UTF8); }", "arn:aws:s3:::d"), `"Parquet" format; only CSV`},
		"ORC":         {manifest("ORC", "struct<bucket:string,key:string>", "arn:aws:s3:::d"), `"ORC" format; only CSV`},
		"no Key":      {manifest("CSV", "Bucket, Size", "arn:aws:s3:::d"), "no Key column"},
		"not an ARN":  {manifest("CSV", "Bucket, Key", "arn:aws:sqs:::d"), "not an S3 bucket's ARN"},
		"not JSON":    {[]byte("<xml/>"), "manifest:"},
		"no files":    {[]byte(`{"sourceBucket":"s","destinationBucket":"arn:aws:s3:::d","fileFormat":"CSV","fileSchema":"Bucket, Key","files":[]}`), "no files"},
		"no checksum": {[]byte(`{"sourceBucket":"s","destinationBucket":"arn:aws:s3:::d","fileFormat":"CSV","fileSchema":"Bucket, Key","files":[{"key":"k"}]}`), "MD5 checksum"},
		"no source":   {[]byte(`{"destinationBucket":"arn:aws:s3:::d","fileFormat":"CSV","fileSchema":"Bucket, Key","files":[{"key":"k","MD5checksum":"f11166069f1990abeb9c97ace9cdfabc"}]}`), "no sourceBucket"},
	} {
		if _, err := ParseInventoryManifest(tt.b); !errors.Is(err, ErrInvalidInventory) || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("%s: %v, want %q", name, err, tt.text)
		}
	}
}

// endless is a reader of a CSV row that never ends: a field of n bytes
// without a closing quote or a newline, as a small gzip'd file can
// decompress to (a gzip bomb of one line).
type endless struct{ n, read int }

func (e *endless) Read(p []byte) (int, error) {
	if e.read == 0 {
		e.read = copy(p, `"b","uploads/`)
		return e.read, nil
	}
	if e.read >= e.n {
		return 0, io.EOF
	}
	k := min(len(p), e.n-e.read)
	for i := range k {
		p[i] = 'a'
	}
	e.read += k
	return k, nil
}

// A row is bounded: one that runs on for 64 MiB (a key is at most 1,024
// bytes, 3 KiB escaped) is refused as soon as it passes the bound, without
// being held, and what is read of it stays small.
func TestReadInventoryCSVBoundsARow(t *testing.T) {
	for _, quoted := range []bool{false, true} {
		r := &endless{n: 64 << 20}
		var src io.Reader = r
		if !quoted {
			src = io.MultiReader(strings.NewReader(`b,uploads/`), &endless{n: 64 << 20, read: 1})
			r = nil
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := ReadInventoryCSV(src, []string{"Bucket", "Key"}, func(InventoryRow) error { return nil })
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrInvalidInventory) || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("quoted %v: %v, want a row too long", quoted, err)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
			t.Errorf("quoted %v: %d MiB allocated for one row", quoted, alloc>>20)
		}
		if r != nil && r.read > 1<<20 {
			t.Errorf("quoted %v: read %d KiB of one row", quoted, r.read>>10)
		}
	}
	// Rows up to the bound are read, one after another.
	row := `"b","uploads/` + strings.Repeat("k", 3000) + `","5"` + "\n"
	n := 0
	err := ReadInventoryCSV(strings.NewReader(strings.Repeat(row, 100)), []string{"Bucket", "Key", "Size"}, func(InventoryRow) error { n++; return nil })
	if err != nil || n != 100 {
		t.Errorf("100 rows of 3 KiB: %d read, %v", n, err)
	}
}
