package storage

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The S3 Inventory report as AWS writes it: a manifest.json that names
// the source bucket, the format, the columns (fileSchema) and the data
// files, and data files that are, in the CSV format, gzip'd CSV without a
// header row, every field quoted, the key URL-encoded (a space as "+"),
// only the columns of fileSchema, in its order.

// ErrInvalidInventory: an inventory report that cannot be used as a
// listing (not CSV, another bucket's, a file whose checksum differs, a
// row that does not parse).
var ErrInvalidInventory = errors.New("unusable inventory")

// InventoryManifest is an inventory report's manifest.json.
type InventoryManifest struct {
	SourceBucket string `json:"sourceBucket"`
	// DestinationBucket is the ARN of the bucket that holds the files
	// (arn:aws:s3:::name).
	DestinationBucket string `json:"destinationBucket"`
	Version           string `json:"version"`
	// CreationTimestamp is when the report began scanning the bucket, in
	// milliseconds since 1970, as a string.
	CreationTimestamp string          `json:"creationTimestamp"`
	FileFormat        string          `json:"fileFormat"`
	FileSchema        string          `json:"fileSchema"`
	Files             []InventoryFile `json:"files"`
}

// InventoryFile is one data file of a report.
type InventoryFile struct {
	Key         string `json:"key"`
	Size        int64  `json:"size"`
	MD5Checksum string `json:"MD5checksum"`
}

// ParseInventoryManifest reads a manifest.json and checks that a listing
// can be read from it: the CSV format, a Key column, a destination
// bucket's ARN, files with their checksums. Its errors wrap
// ErrInvalidInventory.
func ParseInventoryManifest(b []byte) (InventoryManifest, error) {
	var m InventoryManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: manifest: %v", ErrInvalidInventory, err)
	}
	if !strings.EqualFold(m.FileFormat, "CSV") {
		return m, fmt.Errorf("%w: the report is in the %q format; only CSV is read (set the inventory's format to CSV)", ErrInvalidInventory, m.FileFormat)
	}
	if m.SourceBucket == "" {
		return m, fmt.Errorf("%w: manifest: no sourceBucket", ErrInvalidInventory)
	}
	if _, err := m.destination(); err != nil {
		return m, err
	}
	cols := m.Columns()
	if col(cols, "Key") < 0 {
		return m, fmt.Errorf("%w: manifest: fileSchema %q has no Key column", ErrInvalidInventory, m.FileSchema)
	}
	if len(m.Files) == 0 {
		return m, fmt.Errorf("%w: manifest: no files", ErrInvalidInventory)
	}
	for _, f := range m.Files {
		if f.Key == "" || len(f.MD5Checksum) != 32 {
			return m, fmt.Errorf("%w: manifest: file %q without a key or an MD5 checksum", ErrInvalidInventory, f.Key)
		}
	}
	return m, nil
}

// Columns returns the column names of fileSchema, in order.
func (m InventoryManifest) Columns() []string {
	cols := strings.Split(m.FileSchema, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	return cols
}

// Created returns when the report began scanning the bucket; zero when the
// manifest does not say.
func (m InventoryManifest) Created() time.Time {
	ms, err := strconv.ParseInt(m.CreationTimestamp, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// destination returns the name of the bucket the files are in.
func (m InventoryManifest) destination() (string, error) {
	name, ok := strings.CutPrefix(m.DestinationBucket, "arn:")
	if ok {
		// arn:partition:s3:::name (aws, aws-cn, aws-us-gov)
		parts := strings.SplitN(name, ":", 5)
		if len(parts) == 5 && parts[1] == "s3" {
			name = parts[4]
		} else {
			name = ""
		}
	}
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%w: manifest: destinationBucket %q is not an S3 bucket's ARN", ErrInvalidInventory, m.DestinationBucket)
	}
	return name, nil
}

// col returns the index of the named column, or -1.
func col(cols []string, name string) int {
	for i, c := range cols {
		if strings.EqualFold(c, name) {
			return i
		}
	}
	return -1
}

// InventoryRow is one object of a report, with what the columns gave:
// Size, ETag and the version flags only when fileSchema has them.
type InventoryRow struct {
	Bucket       string
	Key          string // decoded
	Size         int64
	ETag         string // as the report writes it, unquoted
	LastModified time.Time
	// Latest is false for a version that is not the current one;
	// DeleteMarker true for a delete marker (reports of all versions).
	Latest, DeleteMarker bool
}

// Object is the row as a listing's object: its ETag quoted, as S3 gives
// it elsewhere.
func (r InventoryRow) Object() Object {
	etag := r.ETag
	if etag != "" && !strings.HasPrefix(etag, `"`) {
		etag = `"` + etag + `"`
	}
	return Object{Key: r.Key, Size: r.Size, ETag: etag, LastModified: r.LastModified}
}

// maxInventoryRow bounds one row of a report: a key is at most 1,024
// bytes, 3 KiB URL-encoded, and the other columns AWS writes are short.
// A data file is a gzip stream, and a few kilobytes of it can inflate to
// gigabytes of one row, which the CSV reader would hold whole.
const maxInventoryRow = 64 << 10

// rowBound passes a reader through, failing once more than limit bytes
// have been read since the last reset (one row, and what the CSV reader's
// buffer reads ahead).
type rowBound struct {
	r     io.Reader
	n     int
	limit int
}

var errRowTooLong = errors.New("row too long")

func (b *rowBound) Read(p []byte) (int, error) {
	if b.n > b.limit {
		return 0, errRowTooLong
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

// ReadInventoryCSV reads the rows of one decompressed data file, with
// the columns of its manifest, and calls fn for each, as it goes: a file
// is never held whole, nor a row longer than maxInventoryRow. It stops at
// fn's first error and returns it; a row that does not parse (a field
// count other than the schema's, a key that is not URL-encoded, a size
// that is not a number, a row longer than the bound) is an error that
// wraps ErrInvalidInventory and names the line.
func ReadInventoryCSV(r io.Reader, columns []string, fn func(InventoryRow) error) error {
	var (
		iBucket, iKey     = col(columns, "Bucket"), col(columns, "Key")
		iSize, iETag      = col(columns, "Size"), col(columns, "ETag")
		iLatest, iDeleted = col(columns, "IsLatest"), col(columns, "IsDeleteMarker")
		iModified         = col(columns, "LastModifiedDate")
	)
	if iKey < 0 {
		return fmt.Errorf("%w: no Key column", ErrInvalidInventory)
	}
	// The CSV reader's buffer (4 KiB) reads ahead of the row it returns.
	bound := &rowBound{r: r, limit: maxInventoryRow + 4<<10}
	cr := csv.NewReader(bound)
	rows := 0
	cr.FieldsPerRecord = len(columns)
	cr.ReuseRecord = true
	field := func(rec []string, i int) string {
		if i < 0 {
			return ""
		}
		return rec[i]
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if errors.Is(err, errRowTooLong) {
			return fmt.Errorf("%w: the row after the %d read is longer than %d KiB", ErrInvalidInventory, rows, maxInventoryRow>>10)
		}
		bound.n = 0
		rows++
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return fmt.Errorf("%w: %v", ErrInvalidInventory, err)
			}
			return fmt.Errorf("read inventory: %w", err)
		}
		line, _ := cr.FieldPos(0)
		// Keys are written as a form value is: %XX escapes, "+" for a
		// space (a "+" itself is %2B).
		key, err := url.QueryUnescape(rec[iKey])
		if err != nil {
			return fmt.Errorf("%w: line %d: key %q: %v", ErrInvalidInventory, line, rec[iKey], err)
		}
		row := InventoryRow{Bucket: field(rec, iBucket), Key: key, ETag: field(rec, iETag), Latest: true}
		if s := field(rec, iSize); s != "" {
			if row.Size, err = strconv.ParseInt(s, 10, 64); err != nil {
				return fmt.Errorf("%w: line %d: size %q", ErrInvalidInventory, line, s)
			}
		}
		if s := field(rec, iLatest); s != "" {
			row.Latest = !strings.EqualFold(s, "false")
		}
		row.DeleteMarker = strings.EqualFold(field(rec, iDeleted), "true")
		if t, err := time.Parse(time.RFC3339Nano, field(rec, iModified)); err == nil {
			row.LastModified = t
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}
