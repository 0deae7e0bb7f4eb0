package delivery

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/resizer/resizer/internal/cdn"
	"github.com/resizer/resizer/internal/storage"
)

// cloudFrontStandIn answers CreateInvalidation as CloudFront does, with
// its limit on paths in progress: a request that would take more than
// 3,000 of them is refused whole (TooManyInvalidationsInProgress), and an
// accepted one holds its paths until done is called (the minutes
// CloudFront takes).
type cloudFrontStandIn struct {
	mu         sync.Mutex
	inProgress int
	accepted   map[string]int // path -> times invalidated
	refused    int
	// invalid are paths CloudFront refuses for good: a request holding
	// one is refused whole (InvalidArgument).
	invalid map[string]bool
}

const standInLimit = 3000

func newCloudFrontStandIn(t *testing.T) (*cloudFrontStandIn, *cdn.CloudFront) {
	cf := &cloudFrontStandIn{accepted: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/2020-05-31/distribution/E2EXAMPLE/invalidation" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		var b struct {
			CallerReference string
			Items           []string `xml:"Paths>Items>Path"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := xml.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cf.mu.Lock()
		defer cf.mu.Unlock()
		for _, p := range b.Items {
			if cf.invalid[p] {
				cf.refused++
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type>`+
					`<Code>InvalidArgument</Code><Message>Your request contains one or more invalid invalidation paths.</Message></Error></ErrorResponse>`)
				return
			}
		}
		if cf.inProgress+len(b.Items) > standInLimit {
			cf.refused++
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type>`+
				`<Code>TooManyInvalidationsInProgress</Code><Message>too many</Message></Error></ErrorResponse>`)
			return
		}
		cf.inProgress += len(b.Items)
		for _, p := range b.Items {
			cf.accepted[p]++
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0"?><Invalidation><Id>I%d</Id><Status>InProgress</Status>`+
			`<CreateTime>2026-12-01T00:00:00Z</CreateTime><InvalidationBatch><CallerReference>%s</CallerReference>`+
			`<Paths><Quantity>%d</Quantity></Paths></InvalidationBatch></Invalidation>`, len(cf.accepted), b.CallerReference, len(b.Items))
	}))
	t.Cleanup(srv.Close)
	c, err := cdn.NewCloudFront("E2EXAMPLE", aws.Config{Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("k", "s", "")}, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return cf, c
}

// done is CloudFront finishing every invalidation in progress.
func (cf *cloudFrontStandIn) done() {
	cf.mu.Lock()
	defer cf.mu.Unlock()
	cf.inProgress = 0
}

// An original served under more paths than CloudFront takes in progress
// at once is purged over several attempts, each taking up where the last
// stopped: the paths CloudFront accepted are not sent again (which would
// be paid for again, and take the room the rest needs: the purge would
// never end), and those it refused are, until every one is invalidated.
func TestPurgeOfMorePathsThanCloudFrontTakesAtOnce(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	cf, c := newCloudFrontStandIn(t)
	f.svc.d.Invalidator = c
	ctx := t.Context()
	const key, n = "uploads/popular.jpg", standInLimit + 500
	v1 := f.put(t, key, testJPEG(t, 64, 48))
	if _, err := f.svc.Serve(ctx, req(t, key, "width=20", "/img/s/width=20/uploads/popular.jpg")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	// The same image served under n-1 more paths (each a signature, an
	// expiry, a spelling): their markers, as record writes them.
	e := f.svc.entry(key, v1, req(t, key, "width=20", "").Options)
	err := each(n-1, func(i int) error {
		p := fmt.Sprintf("/img/s%d/width=20/uploads/popular.jpg", i)
		_, err := f.store.Put(ctx, marker(e.key, p, ""), []byte(p), storage.PutOptions{ContentType: "text/plain"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v2 := f.put(t, key, testJPEG(t, 32, 24))

	attempts := 0
	for ; attempts < 4; attempts++ {
		_, err := f.svc.Purge(ctx, key, v2)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "TooManyInvalidationsInProgress") {
			t.Fatalf("attempt %d: %v", attempts+1, err)
		}
		cf.done() // the minutes before the retry
	}
	if attempts != 1 {
		t.Errorf("purged at attempt %d, want the second (%d paths, %d in progress at most)", attempts+1, n, standInLimit)
	}
	twice := 0
	for _, times := range cf.accepted {
		if times > 1 {
			twice++
		}
	}
	if len(cf.accepted) != n || twice != 0 {
		t.Fatalf("%d paths of %d invalidated, %d of them more than once; %d requests refused", len(cf.accepted), n, twice, cf.refused)
	}
	if left, _ := f.store.List(ctx, f.svc.folder(key)+etagSegment(v1)+"/", 0); len(left) != 0 {
		t.Fatalf("%d objects of the replaced version left, first %s", len(left), left[0].Key)
	}
}

// A hit on a replaced version's image whose path is recorded after the
// purge listed that version's folder, and before it deleted it, is either
// invalidated by that purge or answered so that no CDN keeps it: else the
// CDN serves the old picture under the path for as long as s-maxage
// allows, with nothing left to purge it until the original changes again.
func TestPathRecordedWhileItsVersionIsPurged(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	ctx := t.Context()
	const key = "uploads/race.jpg"
	f.put(t, key, testJPEG(t, 64, 48))
	if _, err := f.svc.Serve(ctx, req(t, key, "width=20", "/img/a/width=20/uploads/race.jpg")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	v2 := f.put(t, key, testJPEG(t, 32, 24)) // still remembered as the first
	late := req(t, key, "width=20", "/img/b/width=20/uploads/race.jpg")
	var img Image
	var serveErr error
	f.svc.purgeListed = func() { img, serveErr = f.svc.Serve(ctx, late) }
	if _, err := f.svc.Purge(ctx, key, v2); err != nil {
		t.Fatal(err)
	}
	if serveErr != nil || img.Outcome != Hit {
		t.Fatalf("the request during the purge: %v, %q, want a hit of the old version", serveErr, img.Outcome)
	}
	invalidated := f.cdn.take()
	if !slices.Contains(invalidated, late.Path) && !strings.Contains(img.CacheControl, "no-store") {
		t.Errorf("%s answered %q and not invalidated (invalidated: %q)", late.Path, img.CacheControl, invalidated)
	}
}

// A path CloudFront refuses for good (InvalidArgument) does not keep the
// others from being invalidated: the batch holding it is split until it
// is found, its marker is dropped, and the purge ends at its first
// attempt, every other path invalidated once.
func TestPurgeWithAPathCloudFrontRefuses(t *testing.T) {
	f := newFixture(t, dirStore(t), 2, 4)
	cf, c := newCloudFrontStandIn(t)
	f.svc.d.Invalidator = c
	ctx := t.Context()
	const key, n = "uploads/refused.jpg", 2500
	v1 := f.put(t, key, testJPEG(t, 64, 48))
	if _, err := f.svc.Serve(ctx, req(t, key, "width=20", "/img/s/width=20/uploads/refused.jpg")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	e := f.svc.entry(key, v1, req(t, key, "width=20", "").Options)
	bad := "/img/a-bad/width=20/uploads/refused.jpg" // first of the paths, in order
	cf.invalid = map[string]bool{bad: true}
	err := each(n, func(i int) error {
		p := fmt.Sprintf("/img/s%d/width=20/uploads/refused.jpg", i)
		if i == 0 {
			p = bad
		}
		_, err := f.store.Put(ctx, marker(e.key, p, ""), []byte(p), storage.PutOptions{ContentType: "text/plain"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	v2 := f.put(t, key, testJPEG(t, 32, 24))
	out, err := f.svc.Purge(ctx, key, v2)
	if err != nil {
		t.Fatalf("purge: %v (%d paths invalidated)", err, len(cf.accepted))
	}
	twice := 0
	for _, times := range cf.accepted {
		if times > 1 {
			twice++
		}
	}
	if len(cf.accepted) != n || twice != 0 || cf.accepted[bad] != 0 || len(out.Paths) != n {
		t.Fatalf("%d paths of %d invalidated (%d said), %d more than once, the refused one %d times",
			len(cf.accepted), n, len(out.Paths), twice, cf.accepted[bad])
	}
	if left, _ := f.store.List(ctx, f.svc.folder(key)+etagSegment(v1)+"/", 0); len(left) != 0 {
		t.Fatalf("%d objects of the replaced version left, first %s", len(left), left[0].Key)
	}
	// Transient refusals still leave the paths for the retry.
	if _, err := f.svc.Serve(ctx, req(t, key, "width=20", "/img/t/width=20/uploads/refused.jpg")); err != nil {
		t.Fatal(err)
	}
	f.svc.Wait()
	cf.mu.Lock()
	cf.inProgress = standInLimit
	cf.mu.Unlock()
	v3 := f.put(t, key, testJPEG(t, 40, 30))
	if _, err := f.svc.Purge(ctx, key, v3); err == nil || !strings.Contains(err.Error(), "TooManyInvalidationsInProgress") {
		t.Fatalf("purge while CloudFront is full: %v", err)
	}
	cf.done()
	if out, err := f.svc.Purge(ctx, key, v3); err != nil || !slices.Equal(out.Paths, []string{"/img/t/width=20/uploads/refused.jpg"}) {
		t.Fatalf("retry: %v, %q", err, out.Paths)
	}
}
