package pipeline

import (
	"strings"
	"testing"

	"github.com/resizer/resizer/internal/storage"
)

// An upload of a new version lands while reconcile is writing the
// variants of the version it planned: whatever the order of their
// writes, the outputs and manifest that stand are the new version's.
func TestReconcileBesideAnUpload(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			h := &writeMeddling{Store: st, prefix: "resized/thumb/"}
			p := withVariants(t, h, "thumb:50x50:cover,medium:80x0")
			v1, err := st.Put(ctx, "uploads/x.jpg", grey(t, 120, 80), storage.PutOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var v2 Result
			h.meddle = func() {
				var err error
				if v2, err = p.Upload(ctx, "uploads/x.jpg", grey(t, 90, 160), nil); err != nil {
					t.Errorf("upload: %v", err)
				}
			}
			ol := st.(OutputLister)
			plan, err := p.Plan(ctx, ol, ol, PlanOptions{Concurrency: 1})
			if err != nil || plan.Create != 1 || plan.Tasks[0].ETag != v1.ETag {
				t.Fatalf("plan %+v %v", plan, err)
			}
			sum, err := p.Reconcile(ctx, plan, ReconcileOptions{Concurrency: 1})
			if err != nil || sum.Superseded != 1 {
				t.Fatalf("reconcile: %+v %v, want superseded", sum, err)
			}
			want := strings.Trim(v2.ETag, `"`)
			for _, k := range []string{"resized/thumb/x.jpg", "resized/medium/x.jpg", "resized/_manifest/x.jpg.json"} {
				obj, err := st.Head(ctx, k)
				if err != nil || obj.Metadata[MetaSourceETag] != want {
					t.Errorf("%s: %v, made from %q, want the upload's %q", k, err, obj.Metadata[MetaSourceETag], want)
				}
			}
			if m, ok, err := p.readManifest(ctx, "uploads/x.jpg"); err != nil || !ok || m.Width != 90 || m.Height != 160 {
				t.Errorf("manifest %+v %v %v", m, ok, err)
			}
			if again, err := p.Plan(ctx, ol, ol, PlanOptions{Concurrency: 1}); err != nil || again.Current != 1 {
				t.Errorf("plan after: %+v %v", again, err)
			}
		})
	}
}
