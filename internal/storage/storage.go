// Package storage keeps objects: in S3 (or any S3-compatible store) through
// aws-sdk-go-v2, or in a local directory, the embedded default. Both offer
// the same small set of operations and the same errors, so that callers
// never see an AWS or filesystem type; each caller declares the interface it
// needs.
package storage

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"
)

// The failures of storage, translated from S3 and filesystem errors.
var (
	// ErrNotFound: no object has that key.
	ErrNotFound = errors.New("object not found")
	// ErrPreconditionFailed: the object's ETag is not the one required.
	ErrPreconditionFailed = errors.New("object changed")
	// ErrTooLarge: the object is larger than the caller accepts.
	ErrTooLarge = errors.New("object too large")
	// ErrInvalidKey: the key is empty, too long, or could escape its place.
	ErrInvalidKey = errors.New("invalid object key")
	// ErrAccessDenied: the store refuses this operation to these
	// credentials; retrying will not help.
	ErrAccessDenied = errors.New("storage access denied")
	// ErrUnavailable: the store is unreachable, throttling, failing or
	// full; the same call may succeed later.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrConflict: the key cannot be stored beside the keys already there
	// (in a directory, "a" and "a/b" cannot both be objects), or the upload
	// URL is in use by another request.
	ErrConflict = errors.New("conflict")
	// ErrBadSignature: a presigned URL of the local store is forged,
	// altered, expired, or used beyond what it allows.
	ErrBadSignature = errors.New("invalid or expired upload URL")
	// ErrUnsupported: the store cannot do what is asked (a form upload to
	// the local directory).
	ErrUnsupported = errors.New("not supported by this store")
)

// errNoBucket: the configured bucket does not exist (the configuration's
// fault, not a missing object).
var errNoBucket = errors.New("bucket does not exist")

// RefusesEveryWrite reports whether err is a refusal that every other
// write to the store would meet as well, until its operator acts: the
// credentials may not write, the bucket does not exist, the disk is full,
// over its quota or read-only. One key can be refused on its own too (an
// object under a KMS key the credentials may not use), so a caller that
// stops on it waits for several in a row.
func RefusesEveryWrite(err error) bool {
	return errors.Is(err, ErrAccessDenied) || errors.Is(err, errNoBucket) ||
		errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EROFS)
}

// Object describes a stored object.
type Object struct {
	Key          string
	Size         int64
	ETag         string // as S3 gives it, quoted
	ContentType  string
	CacheControl string
	// Metadata are the user metadata (x-amz-meta-*), keys in lower case.
	Metadata     map[string]string
	LastModified time.Time
}

// PutOptions are the headers and metadata written with an object.
type PutOptions struct {
	ContentType  string
	CacheControl string
	Metadata     map[string]string
	// Rebuildable marks an object that can be made again from others (a
	// derived image): the local store still writes it whole before it can
	// be seen, but does not wait for the disk to hold it, so that after a
	// power loss it may be missing or fail its size check and be read
	// without its metadata. S3 ignores it.
	Rebuildable bool
	// IfMatch, when set (quoted, as Object.ETag), makes the write fail
	// with ErrPreconditionFailed unless the key holds an object with this
	// ETag when it is written; IfAbsent, unless it holds none. Two writers
	// that looked at a key and found it free (or theirs) cannot then both
	// write it: the second fails, and looks again.
	IfMatch  string
	IfAbsent bool
}

// GetOptions constrain a read.
type GetOptions struct {
	// IfMatch, when set, makes the read fail with ErrPreconditionFailed
	// unless the object's ETag is this one.
	IfMatch string
	// MaxBytes, when positive, makes the read fail with ErrTooLarge for a
	// larger object, before its body is read.
	MaxBytes int64
	// Into, when set, is the buffer the body is read into (emptied first,
	// grown as needed), and the bytes returned are its own: a caller that
	// reads many objects can keep a pool of buffers rather than make
	// garbage of each body.
	Into *bytes.Buffer
}

// PresignRequest is an upload a client is to make straight to the store.
type PresignRequest struct {
	// Method is POST (a form) or PUT; empty: the store's own choice (S3: a
	// form, which S3 holds to a size range; the local directory: PUT).
	Method      string
	ContentType string
	// Size is the exact size of a PUT, the largest of a POST.
	Size int64
	TTL  time.Duration
	// Metadata are user metadata the uploaded object is to carry, bound
	// into the upload so that the client cannot change or drop them: S3
	// holds a POST to its x-amz-meta-* fields by the policy and a PUT to
	// its x-amz-meta-* headers by the signature; the local directory signs
	// them into its URL. Names and values follow checkMetadata.
	Metadata map[string]string
}

// Presigned is what a client needs to upload one object straight to the
// store.
type Presigned struct {
	Method string // POST (a form) or PUT
	URL    string
	// Fields are the form fields of a POST, to send before the file.
	Fields map[string]string
	// Headers must be sent as they are with a PUT.
	Headers map[string]string
	// ExpiresAt is when the store stops taking the upload, or a little
	// before: never after.
	ExpiresAt time.Time
}

// checkMetadata refuses user metadata that S3 would refuse or change:
// names of lower-case letters, digits and hyphens (S3 lower-cases names,
// and keeps them in HTTP header names), values of printable ASCII (the
// only text S3 keeps as it is in a header). The local store signs its
// upload URLs' metadata under the same rule, which keeps the signed text
// readable one way only.
func checkMetadata(m map[string]string) error {
	for k, v := range m {
		if k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return fmt.Errorf("metadata name %q: want lower-case letters, digits and hyphens", k)
		}
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return fmt.Errorf("metadata %s: value %q is not printable ASCII", k, v)
			}
		}
	}
	return nil
}

// maxKeyBytes is S3's limit on a key's length.
const maxKeyBytes = 1024

// ValidateKey checks that key is safe for every store: not empty, at most
// 1024 bytes of valid UTF-8, no control characters or backslashes, no
// leading slash, and no empty, ".", ".." or hidden (".x") path segment, so
// that a key can never name a place outside the store's directory or a
// file the store keeps for itself. The error wraps ErrInvalidKey.
func ValidateKey(key string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidKey, key, why) }
	switch {
	case key == "":
		return bad("empty")
	case len(key) > maxKeyBytes:
		return bad("longer than 1024 bytes")
	case !utf8.ValidString(key):
		return bad("not UTF-8")
	case strings.HasPrefix(key, "/"):
		return bad("absolute")
	case strings.ContainsRune(key, '\\'):
		return bad("backslash")
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return bad("control character")
		}
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || strings.HasPrefix(seg, ".") {
			return bad("empty, dot or hidden path segment")
		}
	}
	return nil
}
