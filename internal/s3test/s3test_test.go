package s3test

import (
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
)

// A MinIO whose port is taken exits, and is reported so (Start then tries
// another port), even when whatever holds the port answers ListBuckets as
// another MinIO would: only this MinIO's own data directory counts.
func TestStartOnATakenPort(t *testing.T) {
	if _, err := Binary(); err != nil {
		t.Skip(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.Write([]byte(`<ListAllMyBucketsResult><Buckets></Buckets></ListAllMyBucketsResult>`))
	}))
	s, err := start(ln.Addr().String(), nil)
	if s != nil {
		defer os.RemoveAll(s.dir)
	}
	if !errors.Is(err, errExited) {
		s.Stop()
		t.Fatalf("started on a taken port: %v", err)
	}
}
