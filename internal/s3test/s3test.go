// Package s3test runs a real MinIO server on 127.0.0.1 for the tests of
// every package that talks S3. It is imported by tests only; MinIO itself
// is a separate binary (scripts/tools.sh builds it), never linked into
// resizer.
package s3test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Version is the MinIO module version scripts/tools.sh builds.
const Version = "v0.0.0-20260212201848-7aac2a2c5b7c"

// The credentials and region of every test server.
const (
	AccessKey = "resizer-test"
	SecretKey = "resizer-test-secret"
	Region    = "us-east-1"
)

// Server is a running MinIO.
type Server struct {
	Endpoint  string // http://127.0.0.1:port
	AccessKey string
	SecretKey string
	Region    string
	addr      string
	env       []string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when cmd has exited
	dir       string
	logs      *os.File
}

// errExited: the MinIO started has exited before it was ready (most
// often: its port was taken meanwhile, by a test package running beside).
var errExited = errors.New("MinIO exited before it was ready")

var (
	mu      sync.Mutex
	running *Server
)

// Binary returns the MinIO binary: $MINIO_BIN, else the one
// scripts/tools.sh builds into the cache, else "minio" on PATH.
func Binary() (string, error) {
	if p := os.Getenv("MINIO_BIN"); p != "" {
		return p, nil
	}
	cache := os.Getenv("RESIZER_CACHE")
	if cache == "" {
		base, err := os.UserCacheDir()
		if err == nil {
			cache = filepath.Join(base, "resizer")
		}
	}
	if p := filepath.Join(cache, "minio-"+Version, "minio"); cache != "" {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no MinIO binary: run scripts/tools.sh (make test does) or set MINIO_BIN")
}

// Start returns the test process's MinIO, starting it on first use with
// extra environment (MinIO's MINIO_* settings) when given. A missing binary
// fails the test: S3 code is never tested against less than a real server.
// Stop it from TestMain with Stop.
func Start(t testing.TB, env ...string) *Server {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		return running
	}
	// The port FreeAddr found free may be taken before MinIO binds it
	// (packages' tests run at once): a MinIO that exits is started
	// again on another.
	for try := 1; ; try++ {
		addr, err := FreeAddr()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		s, err := start(addr, env)
		if errors.Is(err, errExited) && try < 3 {
			os.RemoveAll(s.dir)
			continue
		}
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		running = s
		return s
	}
}

// New starts a MinIO of the test's own on addr (see FreeAddr), with extra
// environment, and stops it when the test ends. Its data outlive Stop, so
// that Restart brings back the same server.
func New(t testing.TB, addr string, env ...string) *Server {
	t.Helper()
	s, err := start(addr, env)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		os.RemoveAll(s.dir)
	})
	return s
}

// Stop stops this server, keeping its data.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	s.logs.Close()
	s.cmd = nil
}

// Restart starts a stopped server again, on the same address and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if err := s.run(); err != nil {
		t.Fatalf("s3test: restart: %v", err)
	}
}

// Stop stops the MinIO started by Start, if any, and removes its data.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if running == nil {
		return
	}
	running.Stop()
	os.RemoveAll(running.dir)
	running = nil
}

func start(addr string, env []string) (*Server, error) {
	dir, err := os.MkdirTemp("", "s3test-")
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: "http://" + addr, AccessKey: AccessKey, SecretKey: SecretKey,
		Region: Region, addr: addr, env: env, dir: dir}
	return s, s.run()
}

func (s *Server) run() error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	console, err := FreeAddr()
	if err != nil {
		return err
	}
	s.logs, err = os.OpenFile(filepath.Join(s.dir, "minio.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(bin, "server", filepath.Join(s.dir, "data"), "--address", s.addr, "--console-address", console, "--quiet")
	s.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_UPDATE=off", "MINIO_BROWSER=off", "MINIO_REGION="+s.Region, "MINIO_CI_CD=1")
	s.cmd.Env = append(s.cmd.Env, s.env...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if runtime.GOOS == "linux" {
		// Dies with the test process, even when that crashes.
		s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	s.exited = exited
	go func() { s.cmd.Wait(); close(exited) }()
	// Wait for what the tests need, a bucket operation that succeeds: MinIO
	// answers its readiness probe before it takes requests
	// (XMinioServerNotInitialized), which made tests fail one run in five.
	deadline := time.Now().Add(30 * time.Second)
	client := s.Client()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		select {
		case <-exited:
			// Whatever answered at the address, it was not this MinIO.
			return fmt.Errorf("%w: %s", errExited, s.Logs())
		default:
		}
		// This MinIO's own answer: it has set up its data directory
		// (another server at the address would have answered too).
		if _, serr := os.Stat(filepath.Join(s.dir, "data", ".minio.sys", "format.json")); err == nil && serr == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.cmd.Process.Kill()
			return fmt.Errorf("MinIO not ready within 30s (%v): %s", err, s.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dir is where the server keeps its data and log, for tests that need a
// place of their own beside it.
func (s *Server) Dir() string { return s.dir }

// FreeAddr returns a 127.0.0.1 address with a port free at the time.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// AWSConfig returns SDK configuration with the server's credentials.
func (s *Server) AWSConfig() aws.Config {
	return aws.Config{
		Region:      s.Region,
		Credentials: credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	}
}

// Client returns an S3 client for the server.
func (s *Server) Client() *s3.Client {
	return s3.NewFromConfig(s.AWSConfig(), func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.Endpoint)
		o.UsePathStyle = true
	})
}

// Bucket creates a bucket with a fresh name for one test.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := strings.ToLower(fmt.Sprintf("test-%x", b))
	_, err := s.Client().CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)})
	if err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// Logs returns what MinIO has printed so far.
func (s *Server) Logs() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "minio.log"))
	return string(b)
}
