package config

import (
	"errors"
	"flag"
	"net/netip"
	"os"
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
		MaxBodyBytes: 32 << 20, MaxPixels: 50_000_000, MaxDimension: 8192, MaxOutputPixels: 50_000_000, MaxJPEGScans: 64, MaxFrames: 500, MaxAnimationPixels: 50_000_000,
		JPEGQuality: 80, WebPQuality: 80, AVIFQuality: 60,
		Concurrency: n, QueueSize: 8 * n, QueueTimeout: 5 * time.Second,
		ProcessTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, ShutdownTimeout: 25 * time.Second, DrainDelay: 0,
		LogLevel: "info", LogFormat: "json",
		DataDir: "./data", InputPrefix: "uploads/", OutputPrefix: "resized/",
		Variants: "thumb:200x200:cover,medium:800x0,large:1600x0", CacheControl: "public, max-age=86400",
		PresignExpiry: 15 * time.Minute, WebhookMaxBytes: 1 << 20, WebhookMaxRecords: 100, UI: true,
		BodyMemory: int64(9*n+1) * 32 << 20, MinBodyRate: 4 << 10, MinBodyRateGrace: 10 * time.Second,
		MaxPerClient:     9 * n,
		DeliveryPrefixes: []string{"uploads/"}, DeliveryCacheControl: "public, max-age=300", DeliveryETagTTL: 10 * time.Second, FailureTTL: 10 * time.Minute,
		WatermarkPrefix: "watermarks/", WatermarkMaxBytes: 1 << 20, WatermarkCacheBytes: 16 << 20,
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got  %+v\nwant %+v", c, want)
	}
}

func TestValues(t *testing.T) {
	c, err := Load(env(map[string]string{
		"ADDR": ":9000", "API_KEYS": " a , b,,", "MAX_BODY_BYTES": "8MiB", "MAX_PIXELS": "1_000_000",
		"CONCURRENCY": "3", "QUEUE_TIMEOUT": "250ms", "INPUT_FORMATS": "jpeg,svg,jxl", "LOG_FORMAT": "console",
		"JPEG_QUALITY": "1", "WEBP_QUALITY": "100", "AVIF_QUALITY": "45",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":9000" || strings.Join(c.APIKeys, "|") != "a|b" || c.MaxBodyBytes != 8<<20 ||
		c.MaxPixels != 1_000_000 || c.Concurrency != 3 || c.QueueSize != 24 || c.QueueTimeout != 250*time.Millisecond ||
		strings.Join(c.InputFormats, ",") != "jpeg,svg,jxl" || c.LogFormat != "console" ||
		c.JPEGQuality != 1 || c.WebPQuality != 100 || c.AVIFQuality != 45 {
		t.Fatalf("got %+v", c)
	}
	if c, _ := Load(env(map[string]string{"QUEUE_SIZE": "0"})); c.QueueSize != 0 {
		t.Fatalf("QUEUE_SIZE=0 gave %d", c.QueueSize)
	}
}

// Every bad variable is reported at once, by name.
func TestErrorsNameEveryVariable(t *testing.T) {
	bad := map[string]string{
		"ADDR": "", "ALLOW_ANONYMOUS": "maybe", "INPUT_FORMATS": " , ", "MAX_BODY_BYTES": "lots",
		"MAX_PIXELS": "-1", "MAX_DIMENSION": "0", "CONCURRENCY": "257", "QUEUE_SIZE": "1000001",
		"QUEUE_TIMEOUT": "5", "PROCESS_TIMEOUT": "-1s", "READ_TIMEOUT": "soon", "SHUTDOWN_TIMEOUT": "0s",
		"LOG_LEVEL": "loud", "LOG_FORMAT": "xml",
		"BODY_MEMORY": "all", "MIN_BODY_RATE": "-1", "MIN_BODY_RATE_GRACE": "0s", "MAX_PER_CLIENT": "-2",
		"URL_SIGNING_KEYS": "0123456789abcdef0123456789abcdef,short", "DELIVERY_ETAG_TTL": "-1s", "DELIVERY_UNSIGNED_PRESETS": "yes",
		"TRUSTED_PROXIES": "10.0.0.0/16,alb", "JPEG_QUALITY": "0", "WEBP_QUALITY": "101", "AVIF_QUALITY": "high",
		"WATERMARK_MAX_BYTES": "big", "WATERMARK_CACHE_BYTES": "0", "FAILURE_TTL": "-1m",
		"DELIVERY_ALLOW_ORIGIN": "https://www.example.com/path", "CLOUDFRONT_INVALIDATE_VARIANTS": "true",
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

// The settings of reading bodies: values, computed defaults, and the
// bound that lets a body of the largest size be read.
func TestBodySettings(t *testing.T) {
	c, err := Load(env(map[string]string{
		"CONCURRENCY": "2", "QUEUE_SIZE": "4", "MAX_BODY_BYTES": "1MiB", "MIN_BODY_RATE": "0", "MIN_BODY_RATE_GRACE": "2s",
		"TRUSTED_PROXIES": " 10.0.0.0/16, 192.0.2.7 ,2001:db8::/32,10.1.2.3/8",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.BodyMemory != 7<<20 || c.MaxPerClient != 6 || c.MinBodyRate != 0 || c.MinBodyRateGrace != 2*time.Second {
		t.Fatalf("got %+v", c)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")}
	if !reflect.DeepEqual(c.TrustedProxies, want) {
		t.Fatalf("TRUSTED_PROXIES: %v, want %v", c.TrustedProxies, want)
	}
	c, err = Load(env(map[string]string{"BODY_MEMORY": "64MiB", "MAX_PER_CLIENT": "0", "MIN_BODY_RATE": "1KiB"}))
	if err != nil || c.BodyMemory != 64<<20 || c.MaxPerClient != 0 || c.MinBodyRate != 1024 {
		t.Fatalf("%+v %v", c, err)
	}
	// The computed budget of huge values saturates rather than wrapping
	// negative, which left the server to refuse to start without a name.
	c, err = Load(env(map[string]string{"QUEUE_SIZE": "1000000", "MAX_BODY_BYTES": "1152921504606846976"}))
	if err != nil || c.BodyMemory <= 0 {
		t.Fatalf("huge QUEUE_SIZE: BODY_MEMORY %d, %v", c.BodyMemory, err)
	}
	for _, bad := range []map[string]string{
		{"BODY_MEMORY": "32MiB"}, // under 2 x MAX_BODY_BYTES
		{"BODY_MEMORY": "4GiB", "MAX_BODY_BYTES": "4611686018427387904"}, // 2 x MAX_BODY_BYTES wraps
		{"BODY_MEMORY": "10MiB", "MAX_BODY_BYTES": "8MiB"},
	} {
		if _, err := Load(env(bad)); err == nil || !strings.Contains(err.Error(), "BODY_MEMORY") {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

// ADDR is checked as the listener reads it, with the other variables.
func TestAddr(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:8080", ":8080", "0.0.0.0:0", "[::]:8080", "localhost:http"} {
		if _, err := Load(env(map[string]string{"ADDR": ok})); err != nil {
			t.Errorf("ADDR=%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"8080", "127.0.0.1", "127.0.0.1:", ":80800", ":-1", "::1:8080", "localhost:nosuchservice"} {
		if _, err := Load(env(map[string]string{"ADDR": bad, "MAX_PIXELS": "lots"})); err == nil ||
			!strings.Contains(err.Error(), "ADDR=") || !strings.Contains(err.Error(), "MAX_PIXELS=") {
			t.Errorf("ADDR=%s: %v", bad, err)
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

func TestS3Mode(t *testing.T) {
	c, err := Load(env(map[string]string{"S3_BUCKET": "photos", "API_KEYS": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.S3Mode() || c.OutputBucket != "photos" || c.AllowAnonymous || c.UI {
		t.Fatalf("%+v", c)
	}
	// Without keys, S3 mode refuses to start unless anonymous access is
	// asked for by name.
	if _, err := Load(env(map[string]string{"S3_BUCKET": "photos"})); err == nil || !strings.Contains(err.Error(), "API_KEYS") {
		t.Fatalf("S3 without keys: %v", err)
	}
	if c, err := Load(env(map[string]string{"S3_BUCKET": "photos", "ALLOW_ANONYMOUS": "true"})); err != nil || !c.AllowAnonymous {
		t.Fatalf("explicitly anonymous: %v", err)
	}
	c, err = Load(env(map[string]string{"S3_BUCKET": "in", "OUTPUT_BUCKET": "out", "INPUT_PREFIX": "/", "API_KEYS": "k",
		"S3_ENDPOINT": "http://127.0.0.1:9000", "S3_FORCE_PATH_STYLE": "true"}))
	if err != nil || c.OutputBucket != "out" || c.InputPrefix != "" || !c.S3PathStyle || c.S3Endpoint != "http://127.0.0.1:9000" {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []map[string]string{
		{"OUTPUT_BUCKET": "out"},
		{"S3_BUCKET": "b", "API_KEYS": "k", "S3_ENDPOINT": "minio:9000"},
		{"S3_BUCKET": "b", "API_KEYS": "k", "AWS_ACCESS_KEY_ID": "id"},
		{"PUBLIC_URL": "ftp://x"},
		{"PRESIGN_EXPIRY": "forever"},
		{"UI": "maybe"},
	} {
		if _, err := Load(env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// S3 refuses presigned URLs valid for over a week: such a PRESIGN_EXPIRY
// is refused as the server starts, not by S3 at each upload. The local
// store's own URLs have no such limit.
func TestPresignExpiry(t *testing.T) {
	s3 := map[string]string{"S3_BUCKET": "photos", "API_KEYS": "k", "PRESIGN_EXPIRY": "168h"}
	if _, err := Load(env(s3)); err != nil {
		t.Fatalf("a week: %v", err)
	}
	s3["PRESIGN_EXPIRY"] = "720h"
	if _, err := Load(env(s3)); err == nil || !strings.Contains(err.Error(), "PRESIGN_EXPIRY") {
		t.Fatalf("30 days with S3: %v", err)
	}
	if c, err := Load(env(map[string]string{"PRESIGN_EXPIRY": "720h"})); err != nil || c.PresignExpiry != 720*time.Hour {
		t.Fatalf("30 days, local: %v", err)
	}
}

func TestLoadForwarder(t *testing.T) {
	f, err := LoadForwarder(env(map[string]string{"RESIZER_URL": "https://resizer.internal/", "WEBHOOK_SECRET": "s"}))
	if err != nil || f.URL != "https://resizer.internal" || f.InputPrefix != "uploads/" || f.OutputPrefix != "resized/" ||
		f.RequestTimeout != 80*time.Second || f.LogLevel != "info" || f.OutputBucket != "" {
		t.Fatalf("%+v %v", f, err)
	}
	if f, _ := LoadForwarder(env(map[string]string{"RESIZER_URL": "https://r.internal", "WEBHOOK_SECRET": "s", "OUTPUT_BUCKET": "out"})); f.OutputBucket != "out" {
		t.Fatalf("OUTPUT_BUCKET: %q", f.OutputBucket)
	}
	_, err = LoadForwarder(env(map[string]string{"WEBHOOK_SECRET": "s", "WEBHOOK_SECRET_ARN": "arn:x", "REQUEST_TIMEOUT": "soon",
		"RESIZER_CONNECT_TO": "internal-lb.example"}))
	for _, want := range []string{"RESIZER_URL", "exactly one", "REQUEST_TIMEOUT", "RESIZER_CONNECT_TO"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite docs/configuration.md's table from the code's")

// The configuration table of docs/configuration.md is the code's own
// (Markdown): the documented variables, defaults and meanings cannot drift
// from what Load reads. go test ./internal/config -run TestDocumentedTable
// -update rewrites it.
func TestDocumentedTable(t *testing.T) {
	const path = "../../docs/configuration.md"
	const begin, end = "<!-- table: internal/config -->\n", "<!-- end of table -->\n"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q markers", path, begin, end)
	}
	want := s[:i+len(begin)] + markdown() + s[j:]
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if s != want {
		t.Fatalf("%s's table differs from the code's: go test ./internal/config -run TestDocumentedTable -update", path)
	}
}

// The settings of delivery by URL, and their computed defaults.
func TestDeliverySettings(t *testing.T) {
	key := strings.Repeat("k", 32)
	for _, c := range []struct {
		env            map[string]string
		prefixes       []string
		cacheControl   string
		keys           int
		unsignedPreset bool
	}{
		{map[string]string{"INPUT_PREFIX": "originals/"}, []string{"originals/"}, "public, max-age=300", 0, false},
		{map[string]string{"CLOUDFRONT_DISTRIBUTION_ID": "E2QWRUHAPOMQZL"}, []string{"uploads/"}, "public, max-age=300, s-maxage=86400", 0, false},
		{map[string]string{"DELIVERY_PREFIXES": "uploads/, /public/", "DELIVERY_CACHE_CONTROL": "no-cache",
			"URL_SIGNING_KEYS": key + "," + key + "2", "DELIVERY_UNSIGNED_PRESETS": "true"},
			[]string{"uploads/", "public/"}, "no-cache", 2, true},
		{map[string]string{"DELIVERY_PREFIXES": "/"}, []string{""}, "public, max-age=300", 0, false},
	} {
		cfg, err := Load(env(c.env))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.DeliveryPrefixes, c.prefixes) || cfg.DeliveryCacheControl != c.cacheControl ||
			len(cfg.URLSigningKeys) != c.keys || cfg.DeliveryUnsignedPresets != c.unsignedPreset {
			t.Errorf("%v: %+v", c.env, cfg)
		}
	}
}

// Watermarks: a prefix apart by default, none when the originals are the
// whole bucket unless asked for, off on request; the cache holds at least
// one watermark of the largest size.
func TestWatermarkSettings(t *testing.T) {
	for _, tt := range []struct {
		env    map[string]string
		prefix string
	}{
		{map[string]string{}, "watermarks/"},
		{map[string]string{"WATERMARK_PREFIX": "brand/marks/"}, "brand/marks/"},
		{map[string]string{"WATERMARK_PREFIX": "/marks/"}, "marks/"},
		{map[string]string{"WATERMARK_PREFIX": "off"}, ""},
		{map[string]string{"INPUT_PREFIX": "/"}, ""},
		{map[string]string{"INPUT_PREFIX": "/", "WATERMARK_PREFIX": "marks/"}, "marks/"}, // refused later: it overlaps
	} {
		c, err := Load(env(tt.env))
		if err != nil || c.WatermarkPrefix != tt.prefix {
			t.Errorf("%v: prefix %q (%v), want %q", tt.env, c.WatermarkPrefix, err, tt.prefix)
		}
	}
	c, err := Load(env(map[string]string{}))
	if err != nil || c.WatermarkMaxBytes != 1<<20 || c.WatermarkCacheBytes != 16<<20 {
		t.Fatalf("defaults: %d, %d, %v", c.WatermarkMaxBytes, c.WatermarkCacheBytes, err)
	}
	if _, err := Load(env(map[string]string{"WATERMARK_MAX_BYTES": "2MiB", "WATERMARK_CACHE_BYTES": "1MiB"})); err == nil ||
		!strings.Contains(err.Error(), "WATERMARK_CACHE_BYTES") {
		t.Errorf("a cache smaller than a watermark: %v", err)
	}
}

// The ready callback is signed with WEBHOOK_SECRETS unless it has secrets
// of its own, and it needs one or the other.
func TestReadyCallbackSecrets(t *testing.T) {
	const url = "https://app.example.com/resizer-ready"
	for _, tt := range []struct {
		env     map[string]string
		secrets string
	}{
		{map[string]string{"READY_CALLBACK_URL": url, "WEBHOOK_SECRETS": "new,old"}, "new|old"},
		{map[string]string{"READY_CALLBACK_URL": url, "WEBHOOK_SECRETS": "w", "READY_CALLBACK_SECRETS": " cb-new, cb-old "}, "cb-new|cb-old"},
		{map[string]string{"READY_CALLBACK_URL": url, "READY_CALLBACK_SECRETS": "cb"}, "cb"},
		{map[string]string{"WEBHOOK_SECRETS": "w"}, "w"},
	} {
		c, err := Load(env(tt.env))
		if err != nil || strings.Join(c.ReadyCallbackSecrets, "|") != tt.secrets {
			t.Errorf("%v: secrets %q (%v), want %q", tt.env, c.ReadyCallbackSecrets, err, tt.secrets)
		}
	}
	if _, err := Load(env(map[string]string{"READY_CALLBACK_URL": url})); err == nil || !strings.Contains(err.Error(), "READY_CALLBACK_SECRETS") {
		t.Errorf("a callback with no secret: %v", err)
	}
}

func TestWithout(t *testing.T) {
	env := map[string]string{"S3_BUCKET": "b", "MAX_PIXELS": "x"}
	_, err := Load(func(k string) string { return env[k] })
	if !errors.Is(err, ErrNoAPIKeys) {
		t.Fatalf("load: %v", err)
	}
	rest := Without(err, ErrNoAPIKeys)
	if rest == nil || errors.Is(rest, ErrNoAPIKeys) || !strings.Contains(rest.Error(), "MAX_PIXELS") {
		t.Errorf("without: %v", rest)
	}
	delete(env, "MAX_PIXELS")
	_, err = Load(func(k string) string { return env[k] })
	if rest := Without(err, ErrNoAPIKeys); rest != nil {
		t.Errorf("only the keys: %v", rest)
	}
}

// DELIVERY_ALLOW_ORIGIN is *, one origin, or nothing.
func TestAllowOrigin(t *testing.T) {
	for v, ok := range map[string]bool{
		"": true, "*": true, "https://www.example.com": true, "http://localhost:3000": true,
		"https://www.example.com/": false, "www.example.com": false, "ftp://example.com": false,
		"https://a.example, https://b.example": false, "https://u:p@example.com": false, "https://example.com?x": false,
		"https://example.com?": false, "https://example.com#": false, "https://Example.com": false, "https://example.com:": false,
		"https://example.com:8443": true,
	} {
		c, err := Load(env(map[string]string{"DELIVERY_ALLOW_ORIGIN": v}))
		if (err == nil) != ok || ok && c.DeliveryAllowOrigin != v {
			t.Errorf("%q: %v", v, err)
		}
	}
}

// A fault in a secret names the variable and never quotes its value, nor
// a URL's password: the error is printed, and kept in the log group.
func TestErrorsKeepSecrets(t *testing.T) {
	_, err := Load(env(map[string]string{
		"URL_SIGNING_KEYS":   "0123456789abcdef0123456789abcdef-SIGNING-SECRET,short",
		"READY_CALLBACK_URL": "ftp://hook:CALLBACK-SECRET@hooks.example.com/ready",
		"S3_ENDPOINT":        "https://AKIDEXAMPLE:ENDPOINT-SECRET@minio:9000/%zz",
		"VARIANTS_BASE_URL":  "cdn.example.com",
		"WEBHOOK_SECRETS":    "w",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, secret := range []string{"SIGNING-SECRET", "CALLBACK-SECRET", "ENDPOINT-SECRET"} {
		if strings.Contains(msg, secret) {
			t.Errorf("error quotes %s: %v", secret, msg)
		}
	}
	for _, name := range []string{"URL_SIGNING_KEYS=", "READY_CALLBACK_URL=", "S3_ENDPOINT=", `VARIANTS_BASE_URL="cdn.example.com"`} {
		if !strings.Contains(msg, name) {
			t.Errorf("error does not name %s: %v", name, msg)
		}
	}
}

// A READY_CALLBACK_URL that is refused is quoted up to its host only: a
// receiver's token in its path, query or fragment stays out of the error,
// whichever way the URL is wrong.
func TestCallbackURLErrorsKeepTokens(t *testing.T) {
	const token = "T0KEN-b7e1"
	for _, v := range []string{
		"hooks.example.com/services/T0/B0/" + token,
		"hooks.example.com?token=" + token,
		"ftp://hooks.example.com/ready/" + token,
		"ftp://hooks.example.com?token=" + token,
		"mailto:" + token + "@example.com",
		"https://hooks.example.com/%zz/" + token,
		"https:///" + token,
		"ftp://hook:" + token + "@hooks.example.com/ready",
		"https://hooks example.com/" + token,
		"https://hooks.example.com:port?token=" + token,
	} {
		_, err := Load(env(map[string]string{"READY_CALLBACK_URL": v, "WEBHOOK_SECRETS": "w"}))
		if err == nil {
			t.Errorf("%q taken", v)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, token) || !strings.Contains(msg, "READY_CALLBACK_URL=") {
			t.Errorf("%q: %v", v, msg)
		}
	}
}
