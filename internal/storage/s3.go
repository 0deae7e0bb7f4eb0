package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3Config says where a bucket is and how to reach it.
type S3Config struct {
	Bucket string
	// Endpoint, when set, replaces AWS's (MinIO and other S3-compatible
	// stores); PathStyle addresses the bucket in the path, as they need.
	Endpoint  string
	PathStyle bool
}

// S3 is a store in one S3 bucket.
type S3 struct {
	client    *s3.Client
	presign   *s3.PresignClient
	bucket    string
	endpoint  string
	pathStyle bool
	region    string
	// unconditional is set once the server refuses conditional writes
	// (S3-compatible servers that predate them answer NotImplemented):
	// they are then sent as plain writes, as before S3 had them.
	unconditional atomic.Bool
}

// NewS3 returns a store for cfg.Bucket. aws holds the region and
// credentials, from the SDK's default chain (environment, shared files, the
// ECS task role). Nothing is sent until the first call.
func NewS3(cfg S3Config, awsCfg aws.Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("storage: S3 bucket not set")
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums only when an operation requires them: S3-compatible
		// stores do not all accept the SDK's default CRC trailers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{client: client, presign: s3.NewPresignClient(client), bucket: cfg.Bucket,
		endpoint: strings.TrimSuffix(cfg.Endpoint, "/"), pathStyle: cfg.PathStyle, region: awsCfg.Region}, nil
}

// URL returns the object's https (or endpoint) URL. Reading it needs the
// bucket's permission, or a CDN in front of it.
func (s *S3) URL(key string) string {
	k := s3Path(key)
	switch {
	case s.endpoint != "" && s.pathStyle:
		return s.endpoint + "/" + s.bucket + "/" + k
	case s.endpoint != "":
		u, err := url.Parse(s.endpoint)
		if err != nil {
			return s.endpoint + "/" + s.bucket + "/" + k
		}
		u.Host = s.bucket + "." + u.Host
		return u.String() + "/" + k
	case s.region != "":
		return "https://" + s.bucket + ".s3." + s.region + ".amazonaws.com/" + k
	}
	return "https://" + s.bucket + ".s3.amazonaws.com/" + k
}

// s3Path is key as S3 names it in a path: every byte but the unreserved
// ones (RFC 3986) and "/" percent-encoded, as S3's signatures encode it. A
// "+" left as it is would be read as a space, and a signed request for a
// path spelled otherwise than S3 spells it is refused.
func s3Path(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		switch c := key[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Bucket returns the bucket's name.
func (s *S3) Bucket() string { return s.bucket }

// Put writes the object.
func (s *S3) Put(ctx context.Context, key string, data []byte, o PutOptions) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		Metadata:      lowerKeys(o.Metadata),
	}
	if o.ContentType != "" {
		in.ContentType = aws.String(o.ContentType)
	}
	if o.CacheControl != "" {
		in.CacheControl = aws.String(o.CacheControl)
	}
	conditional := (o.IfMatch != "" || o.IfAbsent) && !s.unconditional.Load()
	if conditional && o.IfMatch != "" {
		in.IfMatch = aws.String(o.IfMatch)
	}
	if conditional && o.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.PutObject(ctx, in)
	if apiErr := smithy.APIError(nil); conditional && errors.As(err, &apiErr) && apiErr.ErrorCode() == "NotImplemented" {
		s.unconditional.Store(true)
		in.IfMatch, in.IfNoneMatch = nil, nil
		in.Body = bytes.NewReader(data)
		out, err = s.client.PutObject(ctx, in)
	}
	if err != nil {
		err = translate(err)
		if errors.Is(err, ErrNotFound) && o.IfMatch != "" {
			// S3 answers a write if-match to no object with NoSuchKey.
			err = fmt.Errorf("%w: no object", ErrPreconditionFailed)
		}
		return Object{}, fmt.Errorf("put %q: %w", key, err)
	}
	return Object{Key: key, Size: int64(len(data)), ETag: aws.ToString(out.ETag), ContentType: o.ContentType,
		CacheControl: o.CacheControl, Metadata: in.Metadata, LastModified: time.Now()}, nil
}

// Head returns the object's description.
func (s *S3) Head(ctx context.Context, key string) (Object, error) {
	if err := ValidateKey(key); err != nil {
		return Object{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, fmt.Errorf("head %q: %w", key, translate(err))
	}
	return Object{Key: key, Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag),
		ContentType: aws.ToString(out.ContentType), CacheControl: aws.ToString(out.CacheControl),
		Metadata: lowerKeys(out.Metadata), LastModified: aws.ToTime(out.LastModified)}, nil
}

// Get reads the object whole.
func (s *S3) Get(ctx context.Context, key string, o GetOptions) ([]byte, Object, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Object{}, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)}
	if o.IfMatch != "" {
		in.IfMatch = aws.String(o.IfMatch)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, translate(err))
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	if o.MaxBytes > 0 && size > o.MaxBytes {
		return nil, Object{}, fmt.Errorf("get %q: %d bytes: %w", key, size, ErrTooLarge)
	}
	buf := o.Into
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if size > 0 {
		buf.Grow(int(size))
	}
	limit := o.MaxBytes
	if limit <= 0 {
		limit = 1<<62 - 1
	}
	if _, err := buf.ReadFrom(io.LimitReader(out.Body, limit+1)); err != nil {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, translate(err))
	}
	if int64(buf.Len()) > limit {
		return nil, Object{}, fmt.Errorf("get %q: %w", key, ErrTooLarge)
	}
	obj := Object{Key: key, Size: int64(buf.Len()), ETag: aws.ToString(out.ETag),
		ContentType: aws.ToString(out.ContentType), CacheControl: aws.ToString(out.CacheControl),
		Metadata: lowerKeys(out.Metadata), LastModified: aws.ToTime(out.LastModified)}
	return buf.Bytes(), obj, nil
}

// Delete removes the object; a missing one is not an error.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil && !errors.Is(translate(err), ErrNotFound) {
		return fmt.Errorf("delete %q: %w", key, translate(err))
	}
	return nil
}

// List returns up to limit objects whose keys start with prefix, in key
// order (limit <= 0: all).
func (s *S3) List(ctx context.Context, prefix string, limit int) ([]Object, error) {
	var out []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket), Prefix: aws.String(prefix),
		EncodingType: types.EncodingTypeUrl})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, translate(err))
		}
		for _, o := range page.Contents {
			key, err := listedKey(o.Key, page.EncodingType)
			if err != nil {
				return nil, fmt.Errorf("list %q: %w", prefix, err)
			}
			out = append(out, Object{Key: key, Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag),
				LastModified: aws.ToTime(o.LastModified)})
			if limit > 0 && len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// Folders lists the folders directly under prefix, which ends in "/" (or
// is empty): each a prefix of keys ending in "/", in key order, as
// ListObjectsV2 gives them with a delimiter, without listing their keys.
func (s *S3) Folders(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket),
		Prefix: aws.String(prefix), Delimiter: aws.String("/"), EncodingType: types.EncodingTypeUrl})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list folders of %q: %w", prefix, translate(err))
		}
		for _, c := range page.CommonPrefixes {
			folder, err := listedKey(c.Prefix, page.EncodingType)
			if err != nil {
				return nil, fmt.Errorf("list folders of %q: %w", prefix, err)
			}
			out = append(out, folder)
		}
	}
	return out, nil
}

// listedKey decodes a key of a listing asked for with EncodingType url.
// Without it, S3 writes keys into its XML answer as they are, and a key
// with a character XML 1.0 cannot hold (a control character, which any
// S3 client may store) makes the whole page, and so the whole listing,
// unreadable. Encoded, keys come as a form value is (a space as "+", a
// "+" as %2B), and the SDK leaves them so. A server that ignores the
// request (an S3-compatible one) says no encoding, and its keys are
// taken as they are.
func listedKey(k *string, enc types.EncodingType) (string, error) {
	if enc != types.EncodingTypeUrl {
		return aws.ToString(k), nil
	}
	key, err := url.QueryUnescape(aws.ToString(k))
	if err != nil {
		return "", fmt.Errorf("key %q of the listing: %w", aws.ToString(k), err)
	}
	return key, nil
}

// Check reports whether the bucket answers, for readiness.
func (s *S3) Check(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	switch err = translate(err); {
	case errors.Is(err, ErrNotFound): // a HEAD's 404 carries no code
		return fmt.Errorf("bucket %s does not exist", s.bucket)
	case err != nil:
		return fmt.Errorf("bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Presign returns an upload of key as r asks: a form (POST, the default)
// or a PUT, either held to r's metadata. It fails with ErrInvalidKey,
// ErrUnsupported for another method, with an error for metadata that
// checkMetadata refuses, and as presignPost and presignPut do.
func (s *S3) Presign(ctx context.Context, key string, r PresignRequest) (Presigned, error) {
	if err := ValidateKey(key); err != nil {
		return Presigned{}, err
	}
	if err := checkMetadata(r.Metadata); err != nil {
		return Presigned{}, fmt.Errorf("presign %q: %w", key, err)
	}
	// Taken before signing, and in whole seconds as S3 counts the
	// expiry: S3 takes a PUT until X-Amz-Date (the signing time, its
	// fraction of a second dropped) plus X-Amz-Expires (whole seconds),
	// and a form until its policy's expiration (whole seconds too), so
	// the time said is never later than the store's own.
	expires := time.Now().Truncate(time.Second).Add(r.TTL.Truncate(time.Second))
	var p Presigned
	var err error
	switch r.Method {
	case "", http.MethodPost:
		p, err = s.presignPost(ctx, key, r)
	case http.MethodPut:
		p, err = s.presignPut(ctx, key, r)
	default:
		return Presigned{}, fmt.Errorf("%w: %s uploads", ErrUnsupported, r.Method)
	}
	if err != nil {
		return Presigned{}, err
	}
	p.ExpiresAt = expires
	return p, nil
}

// filenameVariable, in a form field, is replaced by S3 with the name of the
// file part, which the client chooses. In the key of a form upload it
// makes a key that is not the one signed: MinIO checks the policy's exact
// key after the replacement, so every upload of such a form is refused
// (403), and a store that checked it before would take a key of the
// client's choosing, unchecked by ValidateKey.
const filenameVariable = "${filename}"

// presignPost returns a form upload of key that S3 itself holds to
// r.ContentType, to 1..r.Size bytes and to r.Metadata (each an exact
// condition of the policy, so that a form with another value, or without
// it, is refused), valid for r.TTL.
func (s *S3) presignPost(ctx context.Context, key string, r PresignRequest) (Presigned, error) {
	if strings.Contains(key, filenameVariable) {
		return Presigned{}, fmt.Errorf("%w %q: %s in a form upload's key is the uploaded file's name, which the client chooses",
			ErrInvalidKey, key, filenameVariable)
	}
	conditions := []any{
		[]any{"content-length-range", 1, r.Size},
		map[string]string{"Content-Type": r.ContentType},
	}
	for k, v := range r.Metadata {
		conditions = append(conditions, map[string]string{"x-amz-meta-" + k: v})
	}
	req, err := s.presign.PresignPostObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)},
		func(o *s3.PresignPostOptions) {
			o.Expires = r.TTL
			o.Conditions = conditions
		})
	if err != nil {
		return Presigned{}, fmt.Errorf("presign post %q: %w", key, translate(err))
	}
	fields := make(map[string]string, len(req.Values)+1+len(r.Metadata))
	for k, v := range req.Values {
		fields[k] = v
	}
	fields["Content-Type"] = r.ContentType
	for k, v := range r.Metadata {
		fields["x-amz-meta-"+k] = v
	}
	return Presigned{Method: http.MethodPost, URL: req.URL, Fields: fields}, nil
}

// presignPut returns a PUT of key with exactly r.Size bytes of
// r.ContentType and r.Metadata's x-amz-meta-* headers, all part of the
// signature, valid for r.TTL.
func (s *S3) presignPut(ctx context.Context, key string, r PresignRequest) (Presigned, error) {
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key),
		ContentType: aws.String(r.ContentType), ContentLength: aws.Int64(r.Size),
		// The SDK signs x-amz-meta-* as headers (it never moves them into
		// the query), so the client must send them as they are.
		Metadata: r.Metadata,
	}, s3.WithPresignExpires(r.TTL))
	if err != nil {
		return Presigned{}, fmt.Errorf("presign put %q: %w", key, translate(err))
	}
	headers := map[string]string{}
	for k, vs := range req.SignedHeader {
		if !strings.EqualFold(k, "Host") && len(vs) > 0 {
			headers[http.CanonicalHeaderKey(k)] = vs[0]
		}
	}
	return Presigned{Method: http.MethodPut, URL: req.URL, Headers: headers}, nil
}

// translate maps SDK errors to this package's. What it does not know keeps
// its text but is reported as unavailable only when it is a network or
// server failure.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %s", ErrNotFound, apiErr.ErrorCode())
		case "KeyTooLongError", "XMinioInvalidObjectName":
			// A key the server will not name (S3: over 1,024 bytes; MinIO
			// also a segment over 255): the caller's, as ValidateKey's
			// refusals are.
			return fmt.Errorf("%w: %s", ErrInvalidKey, apiErr.ErrorCode())
		case "NoSuchBucket": // the configuration's fault, not a missing object
			return fmt.Errorf("%w: %w", errNoBucket, err)
		case "PreconditionFailed",
			// A conditional write that met another write of the key
			// under way: the key is no longer as it was looked at.
			"ConditionalRequestConflict":
			return fmt.Errorf("%w: %s", ErrPreconditionFailed, apiErr.ErrorCode())
		case "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled":
			return fmt.Errorf("%w: %s", ErrAccessDenied, apiErr.ErrorCode())
		case "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
			"InternalError", "ServiceUnavailable", "XMinioServerNotInitialized":
			return fmt.Errorf("%w: %s", ErrUnavailable, apiErr.ErrorCode())
		}
	}
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		switch code := respErr.HTTPStatusCode(); {
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: HTTP 404", ErrNotFound)
		case code == http.StatusPreconditionFailed:
			return fmt.Errorf("%w: HTTP 412", ErrPreconditionFailed)
		case code == http.StatusForbidden:
			return fmt.Errorf("%w: HTTP 403", ErrAccessDenied)
		case code == http.StatusTooManyRequests || code >= 500:
			return fmt.Errorf("%w: HTTP %d", ErrUnavailable, code)
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}
