package storage

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// A listing gives back every key stored, each once, in key order, across
// pages (MinIO's and S3's are a thousand keys), whatever characters the
// keys hold: those of a URL's syntax, non-ASCII, and those XML 1.0 cannot
// carry, which any S3 client may store under the input prefix and which
// must not make the whole listing (and so the whole reconcile) fail. The
// folders' listing keeps them too.
func TestS3ListKeysOfAnyCharacters(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	odd := []string{" ", "+", "%", "%2B", "&", "<", ">", "\"", "'", "#", "?", "=", ";", "é", "日本", "\x01", "\x1f", "\x7f", "\u0085", "\ufffe", "~", "!", "*"}
	var keys []string
	for i := range 1030 {
		// The odd characters spread over the whole listing, so that
		// some fall on either side of a page's end.
		keys = append(keys, fmt.Sprintf("uploads/%04d%s.jpg", i, odd[i%len(odd)]))
	}
	for i, c := range odd {
		keys = append(keys, fmt.Sprintf("resized/v%s%d/a.jpg", c, i))
	}
	var (
		wg   sync.WaitGroup
		work = make(chan string)
		mu   sync.Mutex
		errs []error
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				// The SDK's own client: Put refuses keys no original may
				// have, but someone else's client stores them.
				_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k), Body: strings.NewReader("x")})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("put %q: %w", k, err))
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		work <- k
	}
	close(work)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, prefix := range []string{"uploads/", "resized/", ""} {
		var want []string
		for _, k := range keys {
			if strings.HasPrefix(k, prefix) {
				want = append(want, k)
			}
		}
		slices.Sort(want)
		objs, err := s.List(ctx, prefix, 0)
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		got := make([]string, len(objs))
		for i, o := range objs {
			got[i] = o.Key
			if o.Size != 1 || o.ETag == "" {
				t.Errorf("listed %+v", o)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("list %q: %d keys, want %d; first apart: %q", prefix, len(got), len(want), firstApart(got, want))
		}
	}
	var want []string
	for i, c := range odd {
		want = append(want, fmt.Sprintf("resized/v%s%d/", c, i))
	}
	slices.Sort(want)
	got, err := s.Folders(ctx, "resized/")
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("folders: %q %v, want %q", got, err, want)
	}
}

// firstApart is the first place two listings differ.
func firstApart(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("at %d %q, want %q", i, g, w)
		}
	}
	return ""
}

// A server that ignores EncodingType (an S3-compatible one) lists keys as
// they are and says no encoding: they are taken as they are, not decoded
// ("a+b%2B.jpg" stays itself); one that honours it has them decoded.
func TestS3ListEncodingAnswered(t *testing.T) {
	const stored = "uploads/a+b%2B c.jpg"
	for _, honours := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, enc := stored, ""
			if honours && r.URL.Query().Get("encoding-type") == "url" {
				key, enc = url.QueryEscape(stored), "<EncodingType>url</EncodingType>"
			}
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`+
				`<Name>b</Name><Prefix>uploads/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>%s<IsTruncated>false</IsTruncated>`+
				`<Contents><Key>%s</Key><Size>1</Size><ETag>"e"</ETag></Contents></ListBucketResult>`, enc, key)
		}))
		s, err := NewS3(S3Config{Bucket: "b", Endpoint: srv.URL, PathStyle: true}, aws.Config{Region: "us-east-1",
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")})
		if err != nil {
			t.Fatal(err)
		}
		objs, err := s.List(t.Context(), "uploads/", 0)
		srv.Close()
		if err != nil || len(objs) != 1 || objs[0].Key != stored {
			t.Errorf("honours encoding %v: %+v %v, want %q", honours, objs, err, stored)
		}
	}
}
