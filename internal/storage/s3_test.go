package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/resizer/resizer/internal/s3test"
)

// postForm uploads data through a presigned POST, the way a browser form
// does, and returns the status.
func postForm(t *testing.T, p Presigned, contentType string, data []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range p.Fields {
		if k == "Content-Type" {
			v = contentType
		}
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "upload")
	fw.Write(data)
	mw.Close()
	resp, err := http.Post(p.URL, mw.FormDataContentType(), &body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestS3PresignedPost(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	jpeg := bytes.Repeat([]byte{0xFF}, 1000)
	p, err := s.presignPost(ctx, "uploads/post.jpg", PresignRequest{ContentType: "image/jpeg", Size: 2000, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "POST" || p.Fields["key"] != "uploads/post.jpg" || p.Fields["Content-Type"] != "image/jpeg" || p.Fields["policy"] == "" {
		t.Fatalf("presigned %+v", p)
	}
	if code, body := postForm(t, p, "image/jpeg", jpeg); code/100 != 2 {
		t.Fatalf("upload within the policy: %d %s", code, body)
	}
	h, err := s.Head(ctx, "uploads/post.jpg")
	if err != nil || h.Size != 1000 || h.ContentType != "image/jpeg" {
		t.Fatalf("uploaded object %+v %v", h, err)
	}
	// S3 itself refuses what the policy does not allow.
	p2, _ := s.presignPost(ctx, "uploads/post2.jpg", PresignRequest{ContentType: "image/jpeg", Size: 2000, TTL: time.Minute})
	if code, body := postForm(t, p2, "image/jpeg", bytes.Repeat([]byte{1}, 2001)); code != 400 || !strings.Contains(body, "EntityTooLarge") {
		t.Errorf("over the size limit: %d %s", code, body)
	}
	if code, body := postForm(t, p2, "text/html", jpeg); code != 403 {
		t.Errorf("wrong content type: %d %s", code, body)
	}
	if _, err := s.Head(ctx, "uploads/post2.jpg"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a refused upload left an object: %v", err)
	}
	expired, _ := s.presignPost(ctx, "uploads/post3.jpg", PresignRequest{ContentType: "image/jpeg", Size: 2000, TTL: time.Second})
	time.Sleep(2100 * time.Millisecond)
	if code, body := postForm(t, expired, "image/jpeg", jpeg); code != 403 {
		t.Errorf("expired policy: %d %s", code, body)
	}
}

func TestS3PresignedPut(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte{7}, 500)
	p, err := s.presignPut(ctx, "uploads/put.png", PresignRequest{ContentType: "image/png", Size: int64(len(data)), TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if p.Method != "PUT" || p.Headers["Content-Type"] != "image/png" || p.Headers["Content-Length"] != "500" {
		t.Fatalf("presigned %+v", p)
	}
	put := func(body []byte, ctype string) int {
		req, _ := http.NewRequest("PUT", p.URL, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(bytes.Repeat([]byte{7}, 600), "image/png"); code != 403 {
		t.Errorf("other length: %d, want 403", code)
	}
	if code := put(data, "text/html"); code != 403 {
		t.Errorf("other content type: %d, want 403", code)
	}
	if code := put(data, "image/png"); code != 200 {
		t.Fatalf("signed put: %d", code)
	}
	if h, err := s.Head(ctx, "uploads/put.png"); err != nil || h.Size != 500 || h.ContentType != "image/png" {
		t.Fatalf("object %+v %v", h, err)
	}
}

// The expires_at of a presign is a time the upload is still taken at: S3
// holds a PUT to X-Amz-Date (the signing time, in whole seconds) plus
// X-Amz-Expires, and a form to its policy's expiration (whole seconds
// too). A time taken after signing, with its fraction of a second, named
// up to a second past both, in which a client that trusted it was refused.
func TestS3PresignExpiresAt(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	const ttl = 90 * time.Second
	for i := 0; i < 3; i++ {
		put, err := s.Presign(ctx, "uploads/e.jpg", PresignRequest{Method: http.MethodPut, ContentType: "image/jpeg", Size: 10, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(put.URL)
		signed, err := time.Parse("20060102T150405Z", u.Query().Get("X-Amz-Date"))
		if err != nil {
			t.Fatal(err)
		}
		secs, _ := strconv.Atoi(u.Query().Get("X-Amz-Expires"))
		checkExpiresAt(t, "PUT", put.ExpiresAt, signed.Add(time.Duration(secs)*time.Second))

		post, err := s.Presign(ctx, "uploads/e.jpg", PresignRequest{ContentType: "image/jpeg", Size: 10, TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := base64.StdEncoding.DecodeString(post.Fields["policy"])
		var policy struct {
			Expiration time.Time `json:"expiration"`
		}
		if err := json.Unmarshal(b, &policy); err != nil {
			t.Fatalf("policy %s: %v", b, err)
		}
		checkExpiresAt(t, "POST", post.ExpiresAt, policy.Expiration)
		time.Sleep(300 * time.Millisecond) // another fraction of a second
	}
}

func checkExpiresAt(t *testing.T, method string, said, real time.Time) {
	t.Helper()
	if said.After(real) || real.Sub(said) >= time.Second {
		t.Errorf("%s: expires_at %s, S3 takes the upload until %s", method, said.Format(time.RFC3339Nano), real.Format(time.RFC3339Nano))
	}
}

// SDK errors come out as this package's.
func TestS3Errors(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	missing, _ := NewS3(S3Config{Bucket: "no-such-bucket", Endpoint: srv.Endpoint, PathStyle: true}, srv.AWSConfig())
	if err := missing.Check(ctx); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	if _, err := missing.Put(ctx, "k", []byte("x"), PutOptions{}); !RefusesEveryWrite(err) {
		t.Errorf("put to a missing bucket: %v, not a refusal of every write", err)
	}
	cfg := srv.AWSConfig()
	wrong := cfg.Copy()
	wrong.Credentials = nil
	bad, _ := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, wrong)
	if _, err := bad.Put(ctx, "k", []byte("x"), PutOptions{}); !errors.Is(err, ErrAccessDenied) || !RefusesEveryWrite(err) {
		t.Errorf("anonymous put: %v", err)
	}
	if _, _, err := newS3(t).Get(ctx, "nothing", GetOptions{}); RefusesEveryWrite(err) {
		t.Errorf("a missing key counts as a refusal of every write: %v", err)
	}
	// A key that ValidateKey takes and the server will not name (MinIO:
	// a segment over 255 bytes; S3: over 1,024 bytes) is an invalid key,
	// the caller's to fix, not an unexplained failure of the store. (A
	// HEAD's 400 has no body to say why, and stays the store's error.)
	good, _ := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, cfg)
	long := "uploads/" + strings.Repeat("a", 300) + ".png"
	if _, _, err := good.Get(ctx, long, GetOptions{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("get of a key the server refuses: %v", err)
	}
	down, _ := NewS3(S3Config{Bucket: "b", Endpoint: "http://127.0.0.1:1", PathStyle: true}, cfg)
	if _, err := down.Head(ctx, "k"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

// An upload presigned with metadata stores it, and S3 itself refuses an
// upload that changes or leaves out a value: the policy of a POST holds
// each field exactly, the signature of a PUT covers each header.
func TestS3PresignedMetadata(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte{7}, 500)
	meta := map[string]string{"focus": "0.3,0.25"}
	for _, method := range []string{"POST", "PUT"} {
		t.Run(method, func(t *testing.T) {
			key := "uploads/meta-" + strings.ToLower(method) + ".jpg"
			p, err := s.Presign(ctx, key, PresignRequest{Method: method, ContentType: "image/jpeg", Size: int64(len(data)),
				TTL: time.Minute, Metadata: meta})
			if err != nil {
				t.Fatal(err)
			}
			if method == "POST" && p.Fields["x-amz-meta-focus"] != "0.3,0.25" || method == "PUT" && p.Headers["X-Amz-Meta-Focus"] != "0.3,0.25" {
				t.Fatalf("presigned %+v", p)
			}
			// upload sends the presigned upload p with the metadata field
			// or header set to v, or without it when v is empty.
			upload := func(p Presigned, v string) (int, string) {
				t.Helper()
				var req *http.Request
				if method == "POST" {
					var body bytes.Buffer
					mw := multipart.NewWriter(&body)
					for k, f := range p.Fields {
						if k != "x-amz-meta-focus" {
							mw.WriteField(k, f)
						}
					}
					if v != "" {
						mw.WriteField("x-amz-meta-focus", v)
					}
					fw, _ := mw.CreateFormFile("file", "upload")
					fw.Write(data)
					mw.Close()
					req, _ = http.NewRequest("POST", p.URL, &body)
					req.Header.Set("Content-Type", mw.FormDataContentType())
				} else {
					req, _ = http.NewRequest("PUT", p.URL, bytes.NewReader(data))
					for k, h := range p.Headers {
						req.Header.Set(k, h)
					}
					req.Header.Del("X-Amz-Meta-Focus")
					if v != "" {
						req.Header.Set("X-Amz-Meta-Focus", v)
					}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			plain, err := s.Presign(ctx, key, PresignRequest{Method: method, ContentType: "image/jpeg", Size: int64(len(data)), TTL: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			for _, tt := range []struct {
				name  string
				p     Presigned
				value string
			}{
				{"another value", p, "0.9,0.9"},
				{"left out", p, ""},
				{"added to an upload signed without it", plain, "0.9,0.9"},
			} {
				// 403, or MinIO's 400 for a signed header left out.
				if code, body := upload(tt.p, tt.value); code != 403 && code != 400 {
					t.Errorf("%s: %d, want it refused: %s", tt.name, code, body)
				}
			}
			if _, err := s.Head(ctx, key); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a refused upload left an object: %v", err)
			}
			if code, body := upload(p, "0.3,0.25"); code/100 != 2 {
				t.Fatalf("upload as signed: %d %s", code, body)
			}
			if h, err := s.Head(ctx, key); err != nil || h.Metadata["focus"] != "0.3,0.25" {
				t.Fatalf("stored %+v %v", h, err)
			}
		})
	}
	// Metadata S3 would refuse or change is refused before signing.
	for _, m := range []map[string]string{{"Focus": "1,1"}, {"focus": "é"}, {"fo cus": "1"}, {"": "1"}} {
		if _, err := s.Presign(ctx, "uploads/bad.jpg", PresignRequest{ContentType: "image/jpeg", Size: 1, TTL: time.Minute, Metadata: m}); err == nil {
			t.Errorf("metadata %q was signed", m)
		}
	}
}

// An S3-compatible server that predates conditional writes (it answers
// them NotImplemented) still takes the writes: plain, from the first
// refusal on, which is asked once.
func TestS3WithoutConditionalWrites(t *testing.T) {
	srv := s3test.Start(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var refused atomic.Int32
	minio := httputil.NewSingleHostReverseProxy(target) // keeps the Host header, which the signature covers
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && (r.Header.Get("If-Match") != "" || r.Header.Get("If-None-Match") != "") {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusNotImplemented)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>`)
			return
		}
		minio.ServeHTTP(w, r)
	}))
	defer old.Close()
	s, err := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: old.URL, PathStyle: true}, srv.AWSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	first, err := s.Put(ctx, "resized/a.jpg", []byte("one"), PutOptions{IfAbsent: true})
	if err != nil {
		t.Fatalf("a conditional write the server cannot do: %v", err)
	}
	if _, err := s.Put(ctx, "resized/a.jpg", []byte("two"), PutOptions{IfMatch: first.ETag}); err != nil {
		t.Fatal(err)
	}
	if b, _, err := s.Get(ctx, "resized/a.jpg", GetOptions{}); err != nil || string(b) != "two" {
		t.Fatalf("stored %q %v", b, err)
	}
	if refused.Load() != 1 {
		t.Fatalf("%d conditional writes refused, want 1 (then plain writes)", refused.Load())
	}
}

// A form upload's key with ${filename}, which S3 replaces with the file
// part's name, is refused before it is signed (a bad key): MinIO refused
// every upload of the form it made (403), and S3 would take from it a key
// of the client's choosing. A PUT's key holds it as plain characters.
func TestS3PresignedPostFilenameVariable(t *testing.T) {
	s := newS3(t)
	ctx := t.Context()
	for _, key := range []string{"uploads/${filename}", "uploads/a${filename}.jpg"} {
		if p, err := s.Presign(ctx, key, PresignRequest{ContentType: "image/jpeg", Size: 2000, TTL: time.Minute}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: %+v %v, want ErrInvalidKey", key, p.Fields, err)
		}
	}
	p, err := s.Presign(ctx, "uploads/a${filename}.jpg", PresignRequest{Method: "PUT", ContentType: "image/jpeg", Size: 1000, TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "PUT", p.URL, bytes.NewReader(bytes.Repeat([]byte{0xFF}, 1000)))
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = 1000
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := s.Head(ctx, "uploads/a${filename}.jpg"); resp.StatusCode != 200 || err != nil {
		t.Errorf("PUT: %d, then %v", resp.StatusCode, err)
	}
}

// An object's URL names it, whatever its key holds: fetched (signed, the
// bucket being private), it gives the object's bytes. S3 reads a "+" in a
// path as a space, and refuses a signature of a path it spells otherwise.
func TestS3URLNamesTheObject(t *testing.T) {
	srv := s3test.Start(t)
	ctx := t.Context()
	cfg := srv.AWSConfig()
	s, err := NewS3(S3Config{Bucket: srv.Bucket(t), Endpoint: srv.Endpoint, PathStyle: true}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, key := range []string{"uploads/a+b.jpg", "uploads/a b.jpg", "uploads/ä/%+?#&=.jpg", "uploads/a%2Bb.jpg", "uploads/+"} {
		data := []byte(strings.Repeat("x", i+1))
		if _, err := s.Put(ctx, key, data, PutOptions{}); err != nil {
			t.Fatal(err)
		}
		u := s.URL(key)
		if strings.Contains(u[len(srv.Endpoint):], "+") {
			t.Errorf("%q: URL %s holds a +", key, u)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(ctx, creds, req, emptySHA256, "s3", cfg.Region, time.Now()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, data) {
			t.Errorf("%q: GET %s: %d %q, want %q", key, u, resp.StatusCode, b, data)
		}
	}
}

// emptySHA256 is the SHA-256 of an empty body, in hex, as SigV4 signs it.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
