package storage

import (
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Inventory is a bucket's listing read from an S3 Inventory report instead
// of ListObjectsV2 pages: for a bucket of millions of objects, paging the
// list takes hours and a request per thousand keys, where the report is a
// few gzip'd files. A report is as old as its last run (daily or weekly):
// objects added since are missing from it, and objects deleted since are
// still in it.
type Inventory struct {
	url      string
	manifest InventoryManifest
	files    *S3 // the destination bucket
}

// OpenInventory reads the manifest at manifestURL (s3://bucket/key, the
// report's manifest.json) and checks it: a CSV report of sourceBucket, the
// manifest's MD5 equal to the manifest.checksum beside it when there is
// one. cfg says how to reach S3 (its Bucket is ignored). It fails with
// ErrInvalidInventory (wrapped) for a report that cannot serve as
// sourceBucket's listing, and with the store's errors when the manifest
// cannot be read.
func OpenInventory(ctx context.Context, manifestURL, sourceBucket string, cfg S3Config, awsCfg aws.Config) (*Inventory, error) {
	bucket, key, err := parseS3URL(manifestURL)
	if err != nil {
		return nil, err
	}
	cfg.Bucket = bucket
	at, err := NewS3(cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	// A manifest lists one entry per data file: a few hundred bytes
	// each, a few thousand files at most.
	b, _, err := at.Get(ctx, key, GetOptions{MaxBytes: 64 << 20})
	if err != nil {
		return nil, fmt.Errorf("inventory manifest %s: %w", manifestURL, err)
	}
	if base, ok := strings.CutSuffix(key, "manifest.json"); ok {
		sum, _, err := at.Get(ctx, base+"manifest.checksum", GetOptions{MaxBytes: 1024})
		switch {
		case errors.Is(err, ErrNotFound): // a manifest copied without it
		case err != nil:
			return nil, fmt.Errorf("inventory manifest %s: %w", manifestURL, err)
		default:
			got := md5.Sum(b)
			if want := strings.TrimSpace(string(sum)); !strings.EqualFold(hex.EncodeToString(got[:]), want) {
				return nil, fmt.Errorf("%w: %s: MD5 %x, but manifest.checksum says %s", ErrInvalidInventory, manifestURL, got, want)
			}
		}
	}
	m, err := ParseInventoryManifest(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifestURL, err)
	}
	if m.SourceBucket != sourceBucket {
		return nil, fmt.Errorf("%w: %s is the inventory of bucket %q, not of the input bucket %q",
			ErrInvalidInventory, manifestURL, m.SourceBucket, sourceBucket)
	}
	if cfg.Bucket, err = m.destination(); err != nil {
		return nil, err
	}
	files, err := NewS3(cfg, awsCfg)
	if err != nil {
		return nil, err
	}
	return &Inventory{url: manifestURL, manifest: m, files: files}, nil
}

// Manifest returns the report's manifest.
func (inv *Inventory) Manifest() InventoryManifest { return inv.manifest }

// List returns up to limit objects of the report whose keys start with
// prefix, in key order (limit <= 0: all), each key once: the current
// versions only, delete markers left out, when the report has those
// columns. Each data file is
// streamed and its MD5 checked against the manifest; a file that differs,
// or a row that does not parse or names another bucket, fails the whole
// listing with ErrInvalidInventory (wrapped), so that no partial list is
// taken for the bucket's.
func (inv *Inventory) List(ctx context.Context, prefix string, limit int) ([]Object, error) {
	cols := inv.manifest.Columns()
	var out []Object
	for _, f := range inv.manifest.Files {
		err := inv.read(ctx, f, cols, func(r InventoryRow) error {
			switch {
			case r.Bucket != "" && r.Bucket != inv.manifest.SourceBucket:
				return fmt.Errorf("%w: a row of bucket %q in the inventory of %q", ErrInvalidInventory, r.Bucket, inv.manifest.SourceBucket)
			case !r.Latest, r.DeleteMarker, !strings.HasPrefix(r.Key, prefix):
				return nil
			}
			out = append(out, r.Object())
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	// A key listed twice (a manifest that names a file twice) is one
	// object: a listing has each key once.
	out = slices.CompactFunc(out, func(a, b Object) bool { return a.Key == b.Key })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// read streams one data file through gunzip and the CSV reader into fn,
// hashing the stored bytes as they pass, and checks the file's MD5 and
// size at its end (or at a failure to read it, which a damaged file
// explains best).
func (inv *Inventory) read(ctx context.Context, f InventoryFile, cols []string, fn func(InventoryRow) error) (err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("inventory file %s: %w", f.Key, err)
		}
	}()
	body, err := inv.files.open(ctx, f.Key)
	if err != nil {
		return err
	}
	defer body.Close()
	h := md5.New()
	n := &counter{}
	raw := io.TeeReader(body, io.MultiWriter(h, n))
	zr, err := gzip.NewReader(raw)
	if err == nil {
		err = ReadInventoryCSV(zr, cols, fn)
	}
	if err != nil {
		damaged := errors.Is(err, ErrInvalidInventory) || errors.Is(err, gzip.ErrHeader) ||
			errors.Is(err, gzip.ErrChecksum) || errors.Is(err, io.ErrUnexpectedEOF)
		if damaged {
			// Whether the file is the one the manifest describes says more.
			if _, cerr := io.Copy(io.Discard, raw); cerr == nil {
				if serr := checkSum(f, h.Sum(nil), n.n); serr != nil {
					return serr
				}
			}
		}
		return err
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return fmt.Errorf("read: %w", translate(err))
	}
	return checkSum(f, h.Sum(nil), n.n)
}

// checkSum compares a file read with its entry in the manifest.
func checkSum(f InventoryFile, sum []byte, size int64) error {
	if got := hex.EncodeToString(sum); !strings.EqualFold(got, f.MD5Checksum) {
		return fmt.Errorf("%w: MD5 checksum %s, the manifest says %s", ErrInvalidInventory, got, f.MD5Checksum)
	}
	if f.Size > 0 && size != f.Size {
		return fmt.Errorf("%w: %d bytes, the manifest says %d", ErrInvalidInventory, size, f.Size)
	}
	return nil
}

type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// open streams the object's body.
func (s *S3) open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", key, translate(err))
	}
	return out.Body, nil
}

// parseS3URL splits s3://bucket/key.
func parseS3URL(s string) (bucket, key string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "s3" || u.Host == "" || strings.Trim(u.Path, "/") == "" {
		return "", "", fmt.Errorf("inventory manifest %q: want s3://bucket/key/manifest.json", s)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}
