package cdn

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// invalidationBatch is CloudFront's request body, as its API reference
// gives it.
type invalidationBatch struct {
	CallerReference string
	Paths           struct {
		Quantity int
		Items    []string `xml:"Items>Path"`
	}
}

// cloudFront answers CreateInvalidation at the path CloudFront's API
// gives it, as CloudFront does: 201 and the invalidation, or an error
// document with the given code.
func cloudFront(t *testing.T, failWith string) (*httptest.Server, *[]invalidationBatch) {
	var mu sync.Mutex
	var got []invalidationBatch
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/2020-05-31/distribution/E2EXAMPLE/invalidation" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var b invalidationBatch
		if err := xml.Unmarshal(body, &b); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		if failWith != "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>no</Message></Error></ErrorResponse>`, failWith)
			return
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
		w.Header().Set("Location", "https://cloudfront.amazonaws.com/2020-05-31/distribution/E2EXAMPLE/invalidation/I1")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0"?><Invalidation><Id>I1</Id><Status>InProgress</Status><CreateTime>2026-12-01T00:00:00Z</CreateTime>`+
			`<InvalidationBatch><CallerReference>%s</CallerReference><Paths><Quantity>%d</Quantity></Paths></InvalidationBatch></Invalidation>`,
			b.CallerReference, b.Paths.Quantity)
	}))
	t.Cleanup(srv.Close)
	return srv, &got
}

func testConfig() aws.Config {
	return aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""), RetryMaxAttempts: 1}
}

// The paths reach CloudFront as they are, in batches it accepts, each
// with a reference of its own.
func TestInvalidateBatches(t *testing.T) {
	srv, got := cloudFront(t, "")
	c, err := NewCloudFront("E2EXAMPLE", testConfig(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 2500)
	for i := range paths {
		paths[i] = fmt.Sprintf("/img/%064d/format=webp&width=%d/uploads/a%%20b.jpg", i, i)
	}
	if err := c.Invalidate(t.Context(), paths); err != nil {
		t.Fatal(err)
	}
	var sent []string
	refs := map[string]bool{}
	for _, b := range *got {
		if b.Paths.Quantity != len(b.Paths.Items) || b.Paths.Quantity > batchSize || refs[b.CallerReference] {
			t.Errorf("batch of %d (quantity %d), reference %q", len(b.Paths.Items), b.Paths.Quantity, b.CallerReference)
		}
		refs[b.CallerReference] = true
		sent = append(sent, b.Paths.Items...)
	}
	if len(*got) != 3 || strings.Join(sent, "\n") != strings.Join(paths, "\n") {
		t.Fatalf("%d batches, %d paths; first %q", len(*got), len(sent), sent[:1])
	}
}

func TestInvalidateErrors(t *testing.T) {
	for code, want := range map[string]error{
		"TooManyInvalidationsInProgress": ErrUnavailable,
		"AccessDenied":                   ErrAccessDenied,
		"NoSuchDistribution":             ErrAccessDenied,
		"InvalidArgument":                ErrRefused,
	} {
		srv, _ := cloudFront(t, code)
		c, _ := NewCloudFront("E2EXAMPLE", testConfig(), srv.URL)
		if err := c.Invalidate(t.Context(), []string{"/img/x/width=1/k"}); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", code, err, want)
		}
	}
	c, _ := NewCloudFront("E2EXAMPLE", testConfig(), "http://127.0.0.1:1")
	if err := c.Invalidate(t.Context(), []string{"/img/x/width=1/k"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable: %v", err)
	}
}

// A request CloudFront may have taken though its answer was lost (a 503,
// a dropped connection) is retried with the same CallerReference, which
// CloudFront answers with the invalidation it made rather than a second.
func TestRetryKeepsTheReference(t *testing.T) {
	var mu sync.Mutex
	var refs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b invalidationBatch
		if err := xml.Unmarshal(body, &b); err != nil {
			t.Errorf("body %s: %v", body, err)
		}
		mu.Lock()
		refs = append(refs, b.CallerReference)
		first := len(refs) == 1
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0"?><ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>later</Message></Error></ErrorResponse>`)
			return
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0"?><Invalidation><Id>I1</Id><Status>InProgress</Status><CreateTime>2026-12-01T00:00:00Z</CreateTime>`+
			`<InvalidationBatch><CallerReference>%s</CallerReference><Paths><Quantity>1</Quantity></Paths></InvalidationBatch></Invalidation>`, b.CallerReference)
	}))
	t.Cleanup(srv.Close)
	cfg := testConfig()
	cfg.RetryMaxAttempts = 2
	c, _ := NewCloudFront("E2EXAMPLE", cfg, srv.URL)
	if err := c.Invalidate(t.Context(), []string{"/img/x/width=1/k"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Invalidate(t.Context(), []string{"/img/x/width=1/k"}); err != nil {
		t.Fatal(err)
	}
	if len(refs) != 3 || refs[0] != refs[1] || refs[1] == refs[2] || refs[0] == "" {
		t.Fatalf("references %q: want the retry's the same, the next call's another", refs)
	}
}
