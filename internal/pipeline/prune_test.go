package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/resizer/resizer/internal/s3test"
	"github.com/resizer/resizer/internal/storage"
)

// withVariants is a pipeline of testConfig with the variants def, on st.
func withVariants(t *testing.T, st Store, def string) *Pipeline {
	t.Helper()
	cfg := testConfig(t)
	var err error
	if cfg.Variants, err = ParseVariants(def, 8192); err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, st, st, proc(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Reconcile prunes the outputs of retired variants, and only those: an
// object under the output prefix that sits where a retired variant's
// output of an existing original would, or that a manifest not written by
// the service lists, is not deleted unless its metadata says it is that
// original's output. Keys with a space, a "+", a "%" and non-ASCII
// letters are pruned as any other.
func TestPruneOnlyOwnOutputs(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			old := withVariants(t, st, "thumb:50x50:cover,gone:40x0:webp")
			originals := []string{"uploads/a.jpg", "uploads/b c+d%20é.jpg", "uploads/resized/gone/x.jpg", "uploads/c.jpg"}
			for _, k := range originals {
				if _, err := old.Upload(ctx, k, grey(t, 120, 80), nil); err != nil {
					t.Fatalf("%s: %v", k, err)
				}
			}
			// An original whose name is c.jpg's WebP output's: that
			// output, in a retired variant's folder, is c.jpg's.
			if _, err := st.Put(ctx, "uploads/c.jpg.webp", grey(t, 90, 90), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			// Someone else's objects: under folders of no configured
			// variant, named as outputs of existing originals, without
			// metadata or with another original's.
			foreign := map[string]map[string]string{
				"resized/backup/a.jpg":     nil,
				"resized/gone/a.jpg.bak":   nil,
				"resized/gone/a.jpg":       nil,
				"resized/backup/a.jpg.png": {MetaSourceKey: "uploads/other.jpg", MetaVariant: "backup"},
				"resized/notes/keep.txt":   nil,
			}
			for k, meta := range foreign {
				if _, err := st.Put(ctx, k, []byte("not an output"), storage.PutOptions{Metadata: meta}); err != nil {
					t.Fatal(err)
				}
			}
			// A manifest written by someone else for an original not yet
			// processed, listing an object that is not its output.
			if _, err := st.Put(ctx, "uploads/new.jpg", grey(t, 100, 100), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			fake, _ := json.Marshal(Manifest{Key: "uploads/new.jpg", Variants: []ManifestVariant{{Name: "gone", Key: "resized/notes/keep.txt"}}})
			if _, err := st.Put(ctx, "resized/_manifest/new.jpg.json", fake, storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}

			p := withVariants(t, st, "thumb:50x50:cover")
			ol := st.(OutputLister)
			plan, err := p.Plan(ctx, ol, ol, PlanOptions{Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			if plan.Delete != len(originals) || plan.Foreign != 4 {
				t.Errorf("plan: %d retired outputs to delete, want %d (one per original); %d foreign, want 4", plan.Delete, len(originals), plan.Foreign)
			}
			for _, task := range plan.Tasks {
				if want := "resized/gone/" + task.Key[len("uploads/"):] + ".webp"; slices.Contains(originals, task.Key) && !slices.Equal(task.Retired, []string{want}) {
					t.Errorf("%s: retired %v, want %s", task.Key, task.Retired, want)
				}
			}
			sum, err := p.Reconcile(ctx, plan, ReconcileOptions{Concurrency: 2})
			if err != nil {
				t.Fatalf("reconcile: %+v %v", sum, err)
			}
			if sum.Deleted != plan.Delete {
				t.Errorf("deleted %d, the plan said %d", sum.Deleted, plan.Delete)
			}
			for k := range foreign {
				if _, err := st.Head(ctx, k); err != nil {
					t.Errorf("%s, not the service's output: %v", k, err)
				}
			}
			for _, k := range originals {
				retired := "resized/gone/" + k[len("uploads/"):] + ".webp"
				if _, err := st.Head(ctx, retired); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("%s: %v, want deleted", retired, err)
				}
				if _, err := st.Head(ctx, k); err != nil {
					t.Errorf("original %s: %v", k, err)
				}
			}
		})
	}
}

// Remove, and a run that prunes what the previous manifest lists, delete
// only objects whose metadata names the original: an object without it
// at one of the original's output keys is someone else's.
func TestRemoveLeavesUnnamedObjects(t *testing.T) {
	st := dirStore(t)
	ctx := t.Context()
	p := withVariants(t, st, "thumb:50x50:cover,webp:60x0:webp")
	if _, err := p.Upload(ctx, "uploads/r.jpg", grey(t, 120, 80), nil); err != nil {
		t.Fatal(err)
	}
	// The PNG the thumb would be for an image with alpha: someone's.
	if _, err := st.Put(ctx, "resized/thumb/r.jpg.png", []byte("mine"), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "uploads/r.jpg"); err != nil {
		t.Fatal(err)
	}
	res, err := p.Remove(ctx, "uploads/r.jpg")
	if err != nil || res.Status != StatusDeleted {
		t.Fatalf("remove: %+v %v", res, err)
	}
	slices.Sort(res.Stale)
	if want := []string{"resized/thumb/r.jpg", "resized/webp/r.jpg.webp"}; !slices.Equal(res.Stale, want) {
		t.Errorf("deleted %v, want %v", res.Stale, want)
	}
	if _, err := st.Head(ctx, "resized/thumb/r.jpg.png"); err != nil {
		t.Errorf("an object without metadata deleted: %v", err)
	}
}

// A bucket holds keys no store of the service accepts (the console's
// folder markers, a Finder's .DS_Store) and keys whose outputs' keys
// would be too long: the plan leaves them out, counted, rather than
// failing on them or planning them run after run, and does the others.
func TestPlanSkipsKeysNoStoreTakes(t *testing.T) {
	srv := s3test.Start(t)
	st, err := storage.NewS3(storage.S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// 1,020 bytes, in segments a file system takes.
	long := "uploads/" + strings.Repeat(strings.Repeat("x", 200)+"/", 4) + strings.Repeat("y", 200) + ".jpg"
	for _, k := range []string{"uploads/2026/", "uploads/.DS_Store", "uploads/2026/.hidden/a.jpg", long} {
		_, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(k), Body: bytes.NewReader(grey(t, 40, 40))})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if _, err := st.Put(ctx, "uploads/2026/ok.jpg", grey(t, 40, 40), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	p := withVariants(t, st, "thumb:20x20:cover")
	plan, err := p.Plan(ctx, st, st, PlanOptions{Concurrency: 2})
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(plan.Tasks) != 1 || plan.Create != 1 || plan.Skipped != 4 {
		t.Errorf("plan: %d originals, %d to create, want 1; %d skipped, want 4", len(plan.Tasks), plan.Create, plan.Skipped)
	}
	sum, err := p.Reconcile(ctx, plan, ReconcileOptions{Concurrency: 2})
	if err != nil || sum.Processed != 1 {
		t.Errorf("reconcile: %+v %v, want ok.jpg processed", sum, err)
	}
}
