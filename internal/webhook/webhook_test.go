package webhook

import (
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		file       string
		name, key  string
		kind       Kind
		etag       string
		source     string
		bucket     string
		eventYear  int
		numRecords int
	}{
		{"aws-put.json", "ObjectCreated:Put", "uploads/holiday/beach day été 1+1.jpg", Created, `"d41d8cd98f00b204e9800998ecf8427e"`, "aws:s3", "photos", 2026, 1},
		{"minio-put.json", "ObjectCreated:Put", "uploads/a b.jpg", Created, `"32268be4325293ad107c6f595607e7ba"`, "minio:s3", "photos", 2026, 1},
		{"aws-delete.json", "ObjectRemoved:Delete", "uploads/old.png", Removed, "", "aws:s3", "photos", 2026, 1},
		{"aws-test-event.json", "", "", Other, "", "", "", 0, 0},
	}
	for _, tt := range tests {
		e, err := Parse(read(t, tt.file))
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if len(e.Records) != tt.numRecords {
			t.Fatalf("%s: %d records", tt.file, len(e.Records))
		}
		if tt.numRecords == 0 {
			continue
		}
		r := e.Records[0]
		if r.Name() != tt.name || r.Key() != tt.key || r.Kind() != tt.kind || r.ETag() != tt.etag ||
			r.EventSource != tt.source || r.S3.Bucket.Name != tt.bucket || r.EventTime.Year() != tt.eventYear {
			t.Errorf("%s: name %q key %q kind %v etag %s source %s bucket %s time %v", tt.file, r.Name(), r.Key(), r.Kind(),
				r.ETag(), r.EventSource, r.S3.Bucket.Name, r.EventTime)
		}
	}
	for _, bad := range []string{"", "{", `{"Records":{}}`, `{"Records":[{"eventTime":"yesterday"}]}`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// Every event name S3 or MinIO sends has the kind that its effect on the
// object's content calls for.
func TestKind(t *testing.T) {
	for name, want := range map[string]Kind{
		"ObjectCreated:Put":                       Created,
		"ObjectCreated:Post":                      Created,
		"ObjectCreated:Copy":                      Created,
		"ObjectCreated:CompleteMultipartUpload":   Created,
		"s3:ObjectCreated:PutTagging":             Created, // MinIO: found up to date
		"ObjectRemoved:Delete":                    Removed,
		"ObjectRemoved:DeleteMarkerCreated":       Removed,
		"s3:ObjectRemoved:DeleteAllVersions":      Removed,
		"LifecycleExpiration:Delete":              Removed,
		"LifecycleExpiration:DeleteMarkerCreated": Removed,
		"s3:ObjectAccessed:Get":                   Other,
		"ObjectRestore:Post":                      Other,
		"ObjectRestore:Completed":                 Other,
		"ObjectRestore:Delete":                    Other, // a restored copy expires; the object stays
		"LifecycleTransition":                     Other,
		"Replication:OperationFailedReplication":  Other,
		"ObjectTagging:Put":                       Other,
		"ObjectAcl:Put":                           Other,
		"IntelligentTiering":                      Other,
		"s3:TestEvent":                            Other,
		"":                                        Other,
	} {
		if k := (Record{EventName: name}).Kind(); k != want {
			t.Errorf("%q is %v, want %v", name, k, want)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	for in, want := range map[string]string{
		"plain/key.jpg":                  "plain/key.jpg",
		"with+space.jpg":                 "with space.jpg",
		"literal%2Bplus.jpg":             "literal+plus.jpg",
		"uploads%2Fminio%2Fslashes.jpg":  "uploads/minio/slashes.jpg",
		"%C3%BCml%C3%A4ut.png":           "ümläut.png",
		"%E5%86%99%E7%9C%9F.jpg":         "写真.jpg",
		"100%25.jpg":                     "100%.jpg",
		"bad%zzescape%2":                 "bad%zzescape%2",
		"trailing%":                      "trailing%",
		"mixed+%2b+%2F+%41":              "mixed + / A",
		"":                               "",
		"a%2F..%2F..%2Fetc%2Fpasswd.jpg": "a/../../etc/passwd.jpg", // decoded faithfully; the store refuses it
	} {
		if got := decodeKey(in); got != want {
			t.Errorf("decodeKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignVerify(t *testing.T) {
	body := read(t, "aws-put.json")
	now := time.Unix(1795600000, 0)
	old, cur := []byte("old-secret"), []byte("current-secret")
	sig := Sign(cur, body, now)
	if !strings.HasPrefix(sig, "t=1795600000,v1=") || len(sig) != len("t=1795600000,v1=")+64 {
		t.Fatalf("signature %q", sig)
	}
	tests := []struct {
		name    string
		header  string
		body    []byte
		secrets [][]byte
		at      time.Time
		want    error
	}{
		{"valid", sig, body, [][]byte{cur}, now, nil},
		{"rotation: either secret", sig, body, [][]byte{old, cur}, now, nil},
		{"signed with the old one", Sign(old, body, now), body, [][]byte{cur, old}, now, nil},
		{"signed with both during a rotation", SignAll([][]byte{cur, old}, body, now), body, [][]byte{old}, now, nil},
		{"several v1 values", "t=1795600000,v1=" + strings.Repeat("0", 64) + "," + sig[len("t=1795600000,"):], body, [][]byte{cur}, now, nil},
		{"within tolerance", sig, body, [][]byte{cur}, now.Add(4 * time.Minute), nil},
		{"missing", "", body, [][]byte{cur}, now, ErrNoSignature},
		{"wrong secret", sig, body, [][]byte{old}, now, ErrBadSignature},
		{"tampered body", sig, append([]byte(" "), body...), [][]byte{cur}, now, ErrBadSignature},
		{"tampered time", strings.Replace(sig, "t=1795600000", "t=1795600100", 1), body, [][]byte{cur}, now, ErrBadSignature},
		{"replayed late", sig, body, [][]byte{cur}, now.Add(6 * time.Minute), ErrStale},
		{"from the future", Sign(cur, body, now.Add(10*time.Minute)), body, [][]byte{cur}, now, ErrStale},
		{"garbage", "v1=zz", body, [][]byte{cur}, now, ErrBadSignature},
		{"no secrets", sig, body, nil, now, ErrBadSignature},
	}
	for _, tt := range tests {
		err := Verify(tt.header, tt.body, tt.secrets, tt.at)
		if (tt.want == nil) != (err == nil) || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, n := range []string{"aws-put.json", "minio-put.json", "aws-delete.json", "aws-test-event.json"} {
		b, _ := os.ReadFile("testdata/" + n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Parse(b)
		if err != nil {
			return
		}
		for _, r := range e.Records {
			_ = r.Key()
			_ = r.Kind()
			if r.ETag() != "" && (!strings.HasPrefix(r.ETag(), `"`) || !strings.HasSuffix(r.ETag(), `"`)) {
				t.Fatalf("etag %q", r.ETag())
			}
		}
	})
}

func FuzzDecodeKey(f *testing.F) {
	for _, s := range []string{"a+b", "%2F", "%zz", "%", "%C3%BC", "x%2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := decodeKey(s)
		if len(got) > len(s) {
			t.Fatalf("decoding grew %q to %q", s, got)
		}
		if !strings.ContainsAny(s, "+%") && got != s {
			t.Fatalf("%q changed to %q without + or %%", s, got)
		}
		// Where every "%" starts an escape, the decoding is the standard
		// one of a query value.
		if want, err := url.QueryUnescape(s); err == nil && got != want {
			t.Fatalf("%q decoded as %q, want %q", s, got, want)
		}
	})
}

func FuzzVerify(f *testing.F) {
	secret := []byte("s")
	now := time.Unix(1795600000, 0)
	f.Add(Sign(secret, []byte("{}"), now), []byte("{}"))
	f.Add("t=1,v1=00", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := Verify(header, body, [][]byte{secret}, now)
		if err == nil && Verify(header, append(body, 'x'), [][]byte{secret}, now) == nil {
			t.Fatalf("a signature verified for two bodies: %q", header)
		}
		// Whatever the body, its own signature verifies, by either secret
		// of a rotation, and no other body's or secret's does.
		signed := SignAll([][]byte{[]byte("new"), secret}, body, now)
		if err := Verify(signed, body, [][]byte{secret}, now); err != nil {
			t.Fatalf("%q does not verify its own body: %v", signed, err)
		}
		if err := Verify(signed, body, [][]byte{[]byte("other")}, now); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("%q verified with a secret that did not sign it: %v", signed, err)
		}
		if err := Verify(Sign(secret, body, now), append(slices.Clone(body), 'x'), [][]byte{secret}, now); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("a signature verified another body: %v", err)
		}
	})
}
