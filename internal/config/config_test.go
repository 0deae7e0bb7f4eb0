package config

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	n := runtime.GOMAXPROCS(0)
	want := Config{
		Addr: "127.0.0.1:8080", AllowAnonymous: true,
		InputFormats: []string{"jpeg", "png", "webp", "gif", "avif", "heif"},
		MaxBodyBytes: 32 << 20, MaxPixels: 50_000_000, MaxDimension: 8192,
		Concurrency: n, QueueSize: 8 * n, QueueTimeout: 5 * time.Second,
		ProcessTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, ShutdownTimeout: 25 * time.Second,
		LogLevel: "info", LogFormat: "json",
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestValues(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ADDR": ":9000", "API_KEYS": " a , b,,", "MAX_BODY_BYTES": "8MiB", "MAX_PIXELS": "1_000_000",
		"CONCURRENCY": "3", "QUEUE_TIMEOUT": "250ms", "INPUT_FORMATS": "jpeg,svg", "LOG_FORMAT": "console",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" || strings.Join(c.APIKeys, "|") != "a|b" || c.MaxBodyBytes != 8<<20 ||
		c.MaxPixels != 1_000_000 || c.Concurrency != 3 || c.QueueSize != 24 || c.QueueTimeout != 250*time.Millisecond ||
		strings.Join(c.InputFormats, ",") != "jpeg,svg" || c.LogFormat != "console" {
		t.Fatalf("got %+v", c)
	}
	if c, _ := Load(env(map[string]string{"QUEUE_SIZE": "0"})); c.QueueSize != 0 {
		t.Fatalf("QUEUE_SIZE=0 gave %d", c.QueueSize)
	}
}

// Every bad variable is reported at once, by name.
func TestErrorsNameEveryVariable(t *testing.T) {
	bad := map[string]string{
		"ADDR": "", "ALLOW_ANONYMOUS": "maybe", "INPUT_FORMATS": "jpeg,bmp", "MAX_BODY_BYTES": "lots",
		"MAX_PIXELS": "-1", "MAX_DIMENSION": "0", "CONCURRENCY": "two", "QUEUE_SIZE": "-3",
		"QUEUE_TIMEOUT": "5", "PROCESS_TIMEOUT": "-1s", "READ_TIMEOUT": "soon", "SHUTDOWN_TIMEOUT": "0s",
		"LOG_LEVEL": "loud", "LOG_FORMAT": "xml",
	}
	_, err := Load(env(bad))
	if err == nil {
		t.Fatal("no error")
	}
	for k := range bad {
		if k == "ADDR" {
			continue // empty means default
		}
		if !strings.Contains(err.Error(), k+"=") {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "1024": 1024, "2KiB": 2048, "32MiB": 32 << 20, "1 GiB": 1 << 30, "5MB": 5 << 20} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5MiB", "MiB", "99999999999GiB", "12TB"} {
		if _, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) accepted", in)
		}
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	u := Usage()
	for _, v := range vars {
		if !strings.Contains(u, v.name) {
			t.Errorf("usage lacks %s", v.name)
		}
	}
}
