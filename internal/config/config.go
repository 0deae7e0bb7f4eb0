// Package config reads the service's configuration from environment
// variables, once, into a typed Config. Every variable has a default that
// works on a laptop; every bad value is reported, all at once, naming the
// variable.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of cmd/server.
type Config struct {
	Addr               string
	APIKeys            []string
	AllowAnonymous     bool
	InputFormats       []string
	MaxBodyBytes       int64
	MaxPixels          int64
	MaxDimension       int
	MaxOutputPixels    int64
	MaxJPEGScans       int
	MaxFrames          int
	MaxAnimationPixels int64
	// The qualities written when a request or variant asks for none.
	JPEGQuality, WebPQuality, AVIFQuality int
	Concurrency                           int
	QueueSize                             int
	QueueTimeout                          time.Duration
	ProcessTimeout                        time.Duration
	FailureTTL                            time.Duration
	ReadTimeout                           time.Duration
	ShutdownTimeout                       time.Duration
	DrainDelay                            time.Duration
	// How image bodies are read (see internal/httpapi's intake).
	BodyMemory       int64
	MinBodyRate      int64 // bytes per second; 0: none
	MinBodyRateGrace time.Duration
	MaxPerClient     int // 0: no cap
	TrustedProxies   []netip.Prefix
	LogLevel         string
	LogFormat        string

	// Storage: a local directory, or S3 when S3Bucket is set.
	DataDir       string
	S3Bucket      string
	OutputBucket  string // = S3Bucket when not set
	S3Endpoint    string
	S3PathStyle   bool
	InputPrefix   string
	OutputPrefix  string
	Variants      string
	CacheControl  string
	PresignExpiry time.Duration
	PublicURL     string
	// The S3-triggered webhook.
	WebhookSecrets    []string
	WebhookMaxBytes   int64
	WebhookMaxRecords int
	RejectedPrefix    string
	// Delivery by URL (GET /img/...; see docs/delivery.md).
	URLSigningKeys          []string
	DeliveryPrefixes        []string
	DeliveryCacheControl    string
	DeliveryETagTTL         time.Duration
	DeliveryUnsignedPresets bool
	DeliveryAllowOrigin     string
	CloudFrontDistribution  string
	CloudFrontVariants      bool
	// Variants as published: the base URL of the outputs in manifests,
	// the callback told when an original's variants are written, and the
	// queue of the event path that reconcile --enqueue sends to.
	VariantsBaseURL  string
	ReadyCallbackURL string
	// ReadyCallbackSecrets sign the callback, every one of them; they are
	// WebhookSecrets unless set apart.
	ReadyCallbackSecrets []string
	ReadyEventBus        string
	EventQueueURL        string
	// Watermarks: where they are kept in the originals' store ("": none),
	// the largest file, and the memory that holds them.
	WatermarkPrefix     string
	WatermarkMaxBytes   int64
	WatermarkCacheBytes int64
	// UI serves the pages at / and /docs.
	UI bool
	// EMFNamespace, when set, is the CloudWatch namespace of the metrics
	// written to the log in embedded metric format.
	EMFNamespace string
	// The AWS SDK's own variables, read here too so that tests can give
	// them; unset ones leave the SDK's default chain (on ECS, the task
	// role) in charge.
	AWSRegion, AWSAccessKeyID, AWSSecretAccessKey, AWSSessionToken string
}

// S3Mode reports whether objects live in S3 rather than in DataDir.
func (c Config) S3Mode() bool { return c.S3Bucket != "" }

// A variable is one environment variable: its name, default, meaning, and
// how it is read into Config.
type variable struct {
	name, def, help string
	set             func(c *Config, v string) error
}

// vars lists every variable, in the order --help prints them. Defaults that
// depend on other values are computed in Load and described in help.
var vars = []variable{
	{"ADDR", "127.0.0.1:8080", "listen address (the container image sets 0.0.0.0:8080)",
		func(c *Config, v string) error { c.Addr = v; return checkAddr(v) }},
	{"API_KEYS", "", "comma-separated keys accepted as 'Authorization: Bearer <key>' on /resize, /info, /uploads, /uploads/presign and /objects; several allow rotation; empty: no keys",
		func(c *Config, v string) error { c.APIKeys = splitList(v); return nil }},
	{"ALLOW_ANONYMOUS", "", "serve without API keys when API_KEYS is empty (default: true with local storage, false with S3)",
		func(c *Config, v string) (err error) { c.AllowAnonymous, err = strconv.ParseBool(v); return err }},
	{"INPUT_FORMATS", "jpeg,png,webp,gif,avif,heif", "accepted input formats; tiff, svg, pdf and jxl may be added. jxl (JPEG XL) also enables format=jxl output; its decoder, libjxl 0.7 in Debian 12, is one libvips itself marks untrusted: enable it only if that risk is acceptable. An svg original is stored as uploaded, and an SVG may hold script: never serve the originals' prefix to browsers (only the variants, always raster)",
		func(c *Config, v string) error { c.InputFormats = splitList(v); return checkFormats(c.InputFormats) }},
	{"MAX_BODY_BYTES", "32MiB", "largest request body (bytes; KiB, MiB, GiB suffixes)",
		func(c *Config, v string) (err error) { c.MaxBodyBytes, err = parseBytes(v); return err }},
	{"MAX_PIXELS", "50000000", "largest input, width x height, read from the header before decoding",
		func(c *Config, v string) (err error) { c.MaxPixels, err = positiveInt64(v); return err }},
	{"MAX_DIMENSION", "8192", "largest width or height that may be asked for",
		func(c *Config, v string) (err error) { c.MaxDimension, err = positiveInt(v); return err }},
	{"MAX_OUTPUT_PIXELS", "", "largest output, width x height, padding, enlarging and dpr included; over it, 413 (default: MAX_PIXELS)",
		func(c *Config, v string) (err error) { c.MaxOutputPixels, err = positiveInt64(v); return err }},
	{"MAX_JPEG_SCANS", "64", "most scans in a progressive JPEG, counted before decoding (real encoders write about 10)",
		func(c *Config, v string) (err error) { c.MaxJPEGScans, err = positiveInt(v); return err }},
	// An animation stays one by default; a long one costs a decode and an
	// encode of every frame.
	{"MAX_FRAMES", "500", "most frames of an animated GIF or WebP that stays animated, counted before decoding; over it, 413 (animated=false takes the first frame); an animated WebP over 10,000 frames (or MAX_FRAMES, if higher) is a 413 whatever the output (libvips reads its every frame in the header)",
		func(c *Config, v string) (err error) { c.MaxFrames, err = positiveInt(v); return err }},
	{"MAX_ANIMATION_PIXELS", "", "most pixels, frames x width x height, of an animation that stays animated, in and out (default: MAX_PIXELS)",
		func(c *Config, v string) (err error) { c.MaxAnimationPixels, err = positiveInt64(v); return err }},
	{"JPEG_QUALITY", "80", "JPEG quality (1..100) when a request or variant gives none; also the highest a max_bytes search tries",
		func(c *Config, v string) (err error) { c.JPEGQuality, err = quality(v); return err }},
	{"WEBP_QUALITY", "80", "WebP quality (1..100) when a request or variant gives none; also the highest a max_bytes search tries",
		func(c *Config, v string) (err error) { c.WebPQuality, err = quality(v); return err }},
	// AVIF reaches the look of JPEG at 80 with a lower number.
	{"AVIF_QUALITY", "60", "AVIF quality (1..100) when a request or variant gives none; also the highest a max_bytes search tries",
		func(c *Config, v string) (err error) { c.AVIFQuality, err = quality(v); return err }},
	// Each slot is a worker process started with the server, so a slip of
	// the keyboard (100000) would fork until the task ran out of memory.
	{"CONCURRENCY", "", "images processed at once, 1 to 256, each in a worker process started with the server (default: the CPUs available, GOMAXPROCS)",
		func(c *Config, v string) (err error) { c.Concurrency, err = intIn(v, 1, maxConcurrency); return err }},
	{"QUEUE_SIZE", "", "further requests that may wait for a slot before 503, 0 to 1000000 (default: 8 x CONCURRENCY)",
		func(c *Config, v string) (err error) { c.QueueSize, err = intIn(v, 0, maxQueueSize); return err }},
	{"QUEUE_TIMEOUT", "5s", "longest wait for a slot before 503",
		func(c *Config, v string) (err error) { c.QueueTimeout, err = positiveDuration(v); return err }},
	{"PROCESS_TIMEOUT", "30s", "longest processing of one image before 503; its worker process is then killed, so the slot is free at once whatever the codec is doing",
		func(c *Config, v string) (err error) { c.ProcessTimeout, err = positiveDuration(v); return err }},
	{"FAILURE_TTL", "10m", "how long a failure for an original's sake is remembered: delivery by URL answers a render that failed (not an image, undecodable, too large, impossible as asked, or over PROCESS_TIMEOUT a second time, then 422) again without rendering, and the S3 flow rejects an original whose processing runs into PROCESS_TIMEOUT a second time within it instead of retrying it into the dead-letter queue (0: remember none)",
		func(c *Config, v string) (err error) { c.FailureTTL, err = nonNegativeDuration(v); return err }},
	{"READ_TIMEOUT", "30s", "longest time to read a whole request, headers and body (an image body: from the end of its headers; 408)",
		func(c *Config, v string) (err error) { c.ReadTimeout, err = positiveDuration(v); return err }},
	// Bodies are read before they take a processing place, so that slow
	// senders hold none; these bound what reading costs instead. The
	// default budget is what full processing places and one more body of
	// the largest size hold, the bound admission used to give.
	{"BODY_MEMORY", "", "memory for image bodies in flight, counted in bytes buffered; a body that would go over is refused with 503 (default: (CONCURRENCY + QUEUE_SIZE + 1) x MAX_BODY_BYTES; at least 2 x MAX_BODY_BYTES)",
		func(c *Config, v string) (err error) { c.BodyMemory, err = parseBytes(v); return err }},
	// Far below a phone's uplink (EDGE sends some 20 KB/s), far above a
	// trickle; READ_TIMEOUT already asks more of any body over 120 KiB.
	{"MIN_BODY_RATE", "4KiB", "slowest pace of an image body, bytes per second; a body that falls MIN_BODY_RATE_GRACE behind is cut with 408 (0: no minimum)",
		func(c *Config, v string) (err error) { c.MinBodyRate, err = parseRate(v); return err }},
	// Longer than TCP's retransmission back-off over a few lost segments,
	// so that a lossy link is not taken for a stalled one.
	{"MIN_BODY_RATE_GRACE", "10s", "slack of MIN_BODY_RATE: the time a body has to start, and the longest it may stall or lag",
		func(c *Config, v string) (err error) { c.MinBodyRateGrace, err = positiveDuration(v); return err }},
	// One client may fill the processing places, which a single backend
	// with one key needs to use the whole server, but no more.
	{"MAX_PER_CLIENT", "", "image requests in flight per client address (IPv6: per /64) and per API key; beyond, 429 (default: CONCURRENCY + QUEUE_SIZE; 0: no cap)",
		func(c *Config, v string) (err error) { c.MaxPerClient, err = nonNegativeInt(v); return err }},
	// Behind a load balancer every peer is the balancer; only proxies
	// named here are believed about the client's address.
	{"TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For names the client (behind an ALB: the VPC's CIDR); empty: the peer is the client",
		func(c *Config, v string) (err error) { c.TrustedProxies, err = parsePrefixes(v); return err }},
	{"SHUTDOWN_TIMEOUT", "25s", "time given to in-flight requests after SIGTERM (ECS waits 30s); then their image work is killed and the server exits",
		func(c *Config, v string) (err error) { c.ShutdownTimeout, err = positiveDuration(v); return err }},
	{"DRAIN_DELAY", "0s", "after SIGTERM, time to go on serving while /readyz answers 503, before the drain; for platforms that stop routing on readiness (ECS deregisters a task from its load balancer before SIGTERM: 0 there)",
		func(c *Config, v string) (err error) { c.DrainDelay, err = time.ParseDuration(v); return err }},
	{"LOG_LEVEL", "info", "debug, info, warn or error",
		func(c *Config, v string) error { c.LogLevel = v; return oneOf(v, "debug", "info", "warn", "error") }},
	{"LOG_FORMAT", "json", "json, or console for humans",
		func(c *Config, v string) error { c.LogFormat = v; return oneOf(v, "json", "console") }},
	{"DATA_DIR", "./data", "local-directory store, used when S3_BUCKET is empty; one server's: a second one started on it is refused",
		func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"S3_BUCKET", "", "S3 bucket of the originals (and of the outputs); S3 mode when set",
		func(c *Config, v string) error { c.S3Bucket = v; return nil }},
	{"OUTPUT_BUCKET", "", "S3 bucket of the outputs (default: S3_BUCKET)",
		func(c *Config, v string) error { c.OutputBucket = v; return nil }},
	{"S3_ENDPOINT", "", "S3 endpoint URL for MinIO and other S3-compatible stores (default: AWS)",
		func(c *Config, v string) error { c.S3Endpoint = v; return checkURL(v) }},
	{"S3_FORCE_PATH_STYLE", "false", "address buckets in the path, as MinIO needs",
		func(c *Config, v string) (err error) { c.S3PathStyle, err = strconv.ParseBool(v); return err }},
	{"INPUT_PREFIX", "uploads/", "key prefix of originals; only keys under it are processed ('/' for the whole bucket)",
		func(c *Config, v string) error { c.InputPrefix = strings.TrimPrefix(v, "/"); return nil }},
	{"OUTPUT_PREFIX", "resized/", "key prefix of the variants; never inside INPUT_PREFIX in one bucket",
		func(c *Config, v string) error { c.OutputPrefix = v; return nonEmpty(v) }},
	{"VARIANTS", "thumb:200x200:cover,medium:800x0,large:1600x0", "variants of every original: name:WIDTHxHEIGHT[:fit][:format][?options], 0 leaving a side free, options being those of POST /resize in query form; comma-separated, or semicolon-separated (option values hold commas) as soon as the list has a '?' or a ';': thumb:200x200:cover?sharpen=1&quality=70;large:1600x0:webp",
		func(c *Config, v string) error { c.Variants = v; return nil }},
	{"CACHE_CONTROL", "public, max-age=86400", "Cache-Control written on every variant",
		func(c *Config, v string) error { c.CacheControl = v; return nil }},
	{"PRESIGN_EXPIRY", "15m", "how long a presigned upload URL stays valid; with S3 at most 168h (7 days), S3's own limit",
		func(c *Config, v string) (err error) { c.PresignExpiry, err = positiveDuration(v); return err }},
	{"PUBLIC_URL", "", "base URL of this server in its own upload URLs, with local storage; never taken from a request's Host header (default: http:// and the listen address, loopback for 0.0.0.0)",
		func(c *Config, v string) error { c.PublicURL = strings.TrimSuffix(v, "/"); return checkURL(v) }},
	{"WEBHOOK_SECRETS", "", "comma-separated secrets of POST /webhooks/s3 (signature or bearer token); empty: it answers 503",
		func(c *Config, v string) error { c.WebhookSecrets = splitList(v); return nil }},
	{"WEBHOOK_MAX_BYTES", "1MiB", "largest webhook request body",
		func(c *Config, v string) (err error) { c.WebhookMaxBytes, err = parseBytes(v); return err }},
	{"WEBHOOK_MAX_RECORDS", "100", "most records in one webhook request",
		func(c *Config, v string) (err error) { c.WebhookMaxRecords, err = positiveInt(v); return err }},
	{"REJECTED_PREFIX", "", "where originals that can never be processed are moved (default: left in place)",
		func(c *Config, v string) error { c.RejectedPrefix = v; return nil }},
	{"URL_SIGNING_KEYS", "", "comma-separated keys of the image URLs of GET /img/ (HMAC-SHA256), each at least 32 characters; the first signs (server sign), all verify, for rotation (default: with local storage, a key kept in DATA_DIR; with S3, none: only unsigned presets are served)",
		func(c *Config, v string) error {
			c.URLSigningKeys = splitList(v)
			return checkSigningKeys(c.URLSigningKeys)
		}},
	{"DELIVERY_PREFIXES", "", "comma-separated key prefixes that GET /img/ may read originals from, matched as S3 matches prefixes, character by character ('public' also admits 'public-drafts/...'; 'public/' is the folder); '/' for every key (default: INPUT_PREFIX)",
		func(c *Config, v string) error { c.DeliveryPrefixes = splitPrefixes(v); return nil }},
	// Browsers cannot be told that an image changed; a CDN that the
	// service invalidates can keep an answer as long as it likes.
	{"DELIVERY_CACHE_CONTROL", "", "Cache-Control of an image URL that does not pin its original's version (a pinned one is immutable for a year; an expiring one is kept no longer than it works) (default: 'public, max-age=300', and s-maxage=86400 for the CDN when CLOUDFRONT_DISTRIBUTION_ID is set)",
		func(c *Config, v string) error { c.DeliveryCacheControl = v; return nil }},
	{"DELIVERY_ETAG_TTL", "10s", "how long an original's current ETag is remembered, for image URLs that do not pin it; a replaced original may be served for so long from memory (0: ask the store on every request)",
		func(c *Config, v string) (err error) { c.DeliveryETagTTL, err = nonNegativeDuration(v); return err }},
	{"DELIVERY_UNSIGNED_PRESETS", "false", "serve the variants of VARIANTS by URL without a signature (/img/_/preset=NAME/KEY): their set is bounded, where arbitrary sizes are not",
		func(c *Config, v string) (err error) {
			c.DeliveryUnsignedPresets, err = strconv.ParseBool(v)
			return err
		}},
	{"DELIVERY_ALLOW_ORIGIN", "", "the Access-Control-Allow-Origin of GET /img/ answers, for pages that read the images from scripts (fetch, a canvas, WebGL): * or one origin such as https://www.example.com (default: none, which <img> does not need)",
		func(c *Config, v string) error { c.DeliveryAllowOrigin = v; return checkOrigin(v) }},
	{"CLOUDFRONT_DISTRIBUTION_ID", "", "the CloudFront distribution in front of GET /img/: when an original changes or goes, exactly the paths of its derived images are invalidated there",
		func(c *Config, v string) error { c.CloudFrontDistribution = v; return nil }},
	{"CLOUDFRONT_INVALIDATE_VARIANTS", "false", "the distribution also serves the outputs at the paths of their VARIANTS_BASE_URL URLs (the stack's does; both must be set): when a replaced or deleted original's variant is written over or deleted, its path is invalidated there too",
		func(c *Config, v string) (err error) { c.CloudFrontVariants, err = strconv.ParseBool(v); return err }},
	// The bucket is private: pages reach the variants through a CDN or
	// another public origin, whose URLs the manifests carry.
	{"VARIANTS_BASE_URL", "", "public base URL of the outputs (a CDN in front of the output bucket), for the URLs and srcset of the manifests (OUTPUT_PREFIX + _manifest/) (default: the server's own /objects/ URLs with local storage, the output keys, relative, with S3)",
		func(c *Config, v string) error { c.VariantsBaseURL = v; return checkURL(v) }},
	{"READY_CALLBACK_URL", "", "URL told, by a POST signed like the webhook (Resizer-Signature, with each of READY_CALLBACK_SECRETS), each time an original's variants and manifest are written (default: none)",
		func(c *Config, v string) error {
			// Kept only when valid: the server would otherwise report it
			// again, as its callback fails to parse it.
			if err := checkURL(v); err != nil {
				return err
			}
			c.ReadyCallbackURL = v
			return nil
		}},
	// A receiver that knows the webhook's secret could sign S3 events of
	// its own to POST /webhooks/s3: a secret of its own keeps it to
	// verifying signals.
	{"READY_CALLBACK_SECRETS", "", "comma-separated secrets that sign the POSTs to READY_CALLBACK_URL, each adding its own v1 value, so that a receiver verifies with whichever it knows (new,old during a rotation); set them apart from WEBHOOK_SECRETS so that the receiver cannot sign events to POST /webhooks/s3 (default: WEBHOOK_SECRETS)",
		func(c *Config, v string) error { c.ReadyCallbackSecrets = splitList(v); return nil }},
	{"READY_EVENT_BUS", "", "name or ARN of an Amazon EventBridge bus that gets an event (source resizer, detail-type Variants Ready, the callback's body as detail) each time an original's variants and manifest are written (default: none)",
		func(c *Config, v string) error { c.ReadyEventBus = v; return nil }},
	{"EVENT_QUEUE_URL", "", "URL of the SQS queue of the S3 event path, to which server reconcile --enqueue sends one event per original (default: none)",
		func(c *Config, v string) error { c.EventQueueURL = v; return checkURL(v) }},
	// Watermarks live beside the originals, under a prefix of their own,
	// so that no watermark name reaches an original and no upload becomes
	// a watermark.
	{"WATERMARK_PREFIX", "", "key prefix of the images the watermark option names, in S3_BUCKET or DATA_DIR; never overlapping INPUT_PREFIX, REJECTED_PREFIX or OUTPUT_PREFIX in one bucket; off: no watermarks (default: watermarks/, off when INPUT_PREFIX is the whole bucket)",
		func(c *Config, v string) error {
			if c.WatermarkPrefix = strings.TrimPrefix(v, "/"); v == "off" {
				c.WatermarkPrefix = ""
			}
			return nil
		}},
	{"WATERMARK_MAX_BYTES", "1MiB", "largest watermark file; a larger one is refused (400)",
		func(c *Config, v string) (err error) { c.WatermarkMaxBytes, err = parseBytes(v); return err }},
	// Watermarks are read once and held: a few logos are a few hundred
	// KiB, and each server holds its own.
	{"WATERMARK_CACHE_BYTES", "16MiB", "memory that holds watermarks once read, the least recently used let go first; at least WATERMARK_MAX_BYTES",
		func(c *Config, v string) (err error) { c.WatermarkCacheBytes, err = parseBytes(v); return err }},
	{"UI", "", "serve the pages at / and /docs: on or off (default: on with local storage, off with S3)",
		func(c *Config, v string) (err error) { c.UI, err = parseOnOff(v); return err }},
	{"EMF_NAMESPACE", "", "CloudWatch namespace of the metrics written to the log once a minute in embedded metric format, for CloudWatch Logs to extract: events by outcome, images shed, time from upload to variants, processing time, images in work (default: none written)",
		func(c *Config, v string) error { c.EMFNamespace = v; return nil }},
	{"AWS_REGION", "", "AWS region (default: the SDK's chain)",
		func(c *Config, v string) error { c.AWSRegion = v; return nil }},
	{"AWS_ACCESS_KEY_ID", "", "static credentials (default: the SDK's chain, e.g. the ECS task role)",
		func(c *Config, v string) error { c.AWSAccessKeyID = v; return nil }},
	{"AWS_SECRET_ACCESS_KEY", "", "with AWS_ACCESS_KEY_ID",
		func(c *Config, v string) error { c.AWSSecretAccessKey = v; return nil }},
	{"AWS_SESSION_TOKEN", "", "with AWS_ACCESS_KEY_ID, for temporary credentials",
		func(c *Config, v string) error { c.AWSSessionToken = v; return nil }},
}

// maxS3PresignExpiry is the longest validity S3 accepts in a presigned
// URL: seven days.
const maxS3PresignExpiry = 7 * 24 * time.Hour

// ErrNoAPIKeys is the fault of a configuration that would serve without
// API keys when it must not: a fault for serving only, which the server's
// other commands (reconcile) drop with Without.
var ErrNoAPIKeys = errors.New("no API keys")

// Without returns the error of Load without its faults that are target
// (errors.Is), or nil when none is left.
func Without(err, target error) error {
	joined, ok := errors.Unwrap(err).(interface{ Unwrap() []error })
	if !ok {
		return err
	}
	var kept []error
	for _, e := range joined.Unwrap() {
		if !errors.Is(e, target) {
			kept = append(kept, e)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(kept...))
}

// Load reads the configuration through getenv. The error lists every
// variable that is wrong.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	var errs []error
	for _, v := range vars {
		val := strings.TrimSpace(getenv(v.name))
		if val == "" {
			val = v.def
		}
		if val == "" {
			continue // a computed default, below
		}
		if err := v.set(&c, val); err != nil {
			errs = append(errs, fmt.Errorf("%s=%s: %w", v.name, shown(v.name, val), err))
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = min(runtime.GOMAXPROCS(0), maxConcurrency) // follows the container's CPU quota
	}
	if c.DrainDelay < 0 {
		errs = append(errs, fmt.Errorf("DRAIN_DELAY=%s: must not be negative", c.DrainDelay))
	}
	if c.MaxOutputPixels == 0 {
		c.MaxOutputPixels = c.MaxPixels
	}
	if c.MaxAnimationPixels == 0 {
		c.MaxAnimationPixels = c.MaxPixels
	}
	if strings.TrimSpace(getenv("QUEUE_SIZE")) == "" {
		c.QueueSize = 8 * c.Concurrency
	}
	if strings.TrimSpace(getenv("BODY_MEMORY")) == "" {
		c.BodyMemory = int64(c.Concurrency+c.QueueSize+1) * c.MaxBodyBytes
		if n := int64(c.Concurrency + c.QueueSize + 1); c.MaxBodyBytes > math.MaxInt64/n {
			// A huge QUEUE_SIZE or MAX_BODY_BYTES: the product would wrap
			// negative, and the server refuse to start without a name.
			c.BodyMemory = math.MaxInt64
		}
	}
	if c.BodyMemory > 0 && c.BodyMemory/2 < c.MaxBodyBytes { // 2 x MAX_BODY_BYTES may wrap
		errs = append(errs, fmt.Errorf("BODY_MEMORY=%d: must be at least 2 x MAX_BODY_BYTES (%d), for a body of the largest size to be read", c.BodyMemory, 2*c.MaxBodyBytes))
	}
	if strings.TrimSpace(getenv("MAX_PER_CLIENT")) == "" {
		c.MaxPerClient = c.Concurrency + c.QueueSize
	}
	if strings.TrimSpace(getenv("ALLOW_ANONYMOUS")) == "" {
		c.AllowAnonymous = !c.S3Mode()
	}
	if c.OutputBucket == "" {
		c.OutputBucket = c.S3Bucket
	}
	if strings.TrimSpace(getenv("DELIVERY_PREFIXES")) == "" {
		c.DeliveryPrefixes = []string{c.InputPrefix}
	}
	if strings.TrimSpace(getenv("DELIVERY_CACHE_CONTROL")) == "" {
		c.DeliveryCacheControl = "public, max-age=300"
		if c.CloudFrontDistribution != "" {
			c.DeliveryCacheControl += ", s-maxage=86400"
		}
	}
	if strings.TrimSpace(getenv("UI")) == "" {
		c.UI = !c.S3Mode()
	}
	if strings.TrimSpace(getenv("WATERMARK_PREFIX")) == "" && c.InputPrefix != "" {
		c.WatermarkPrefix = "watermarks/" // with the whole bucket as originals, there is no place apart for them
	}
	if c.WatermarkCacheBytes < c.WatermarkMaxBytes {
		errs = append(errs, fmt.Errorf("WATERMARK_CACHE_BYTES=%d: must be at least WATERMARK_MAX_BYTES (%d)", c.WatermarkCacheBytes, c.WatermarkMaxBytes))
	}
	if c.S3Mode() && c.PresignExpiry > maxS3PresignExpiry {
		// SigV4 refuses a presigned URL (X-Amz-Expires) valid for longer:
		// every upload URL handed out would fail at S3, not here.
		errs = append(errs, fmt.Errorf("PRESIGN_EXPIRY=%s: S3 takes presigned URLs of at most %s", c.PresignExpiry, maxS3PresignExpiry))
	}
	if c.OutputBucket != c.S3Bucket && !c.S3Mode() {
		errs = append(errs, errors.New("OUTPUT_BUCKET needs S3_BUCKET"))
	}
	if c.CloudFrontVariants && (c.CloudFrontDistribution == "" || c.VariantsBaseURL == "") {
		// The paths invalidated are those of the variants' public URLs.
		errs = append(errs, errors.New("CLOUDFRONT_INVALIDATE_VARIANTS=true needs CLOUDFRONT_DISTRIBUTION_ID and VARIANTS_BASE_URL"))
	}
	if strings.TrimSpace(getenv("READY_CALLBACK_SECRETS")) == "" {
		c.ReadyCallbackSecrets = c.WebhookSecrets
	}
	if c.ReadyCallbackURL != "" && len(c.ReadyCallbackSecrets) == 0 {
		errs = append(errs, errors.New("READY_CALLBACK_URL needs READY_CALLBACK_SECRETS or WEBHOOK_SECRETS, to sign its calls"))
	}
	if (c.AWSAccessKeyID == "") != (c.AWSSecretAccessKey == "") {
		errs = append(errs, errors.New("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY go together"))
	}
	if !c.AllowAnonymous && len(c.APIKeys) == 0 {
		if c.S3Mode() {
			errs = append(errs, fmt.Errorf("%w: S3 mode needs API_KEYS, or ALLOW_ANONYMOUS=true to serve without keys on purpose", ErrNoAPIKeys))
		} else {
			errs = append(errs, fmt.Errorf("%w: ALLOW_ANONYMOUS=false: API_KEYS must then hold at least one key", ErrNoAPIKeys))
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

// secrets are the variables whose values are credentials. A fault in one
// is reported by name only: the error reaches stderr, and on ECS the log
// group, where a key would stay readable by whoever reads the logs.
var secrets = map[string]bool{
	"API_KEYS": true, "WEBHOOK_SECRETS": true, "URL_SIGNING_KEYS": true, "READY_CALLBACK_SECRETS": true,
	"AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true,
}

// tokenURLs are the variables whose URLs may hold a credential past
// their host: a receiver of callbacks often takes its token in the path
// or the query (hooks.example.com/T0/B0/XXXX, ?token=).
var tokenURLs = map[string]bool{"READY_CALLBACK_URL": true}

// shown is a variable's value as an error quotes it: hidden for a secret,
// a URL's password (https://user:password@host) masked, and a token URL
// cut after its host.
func shown(name, val string) string {
	if secrets[name] {
		return "(hidden)"
	}
	if tokenURLs[name] {
		val = beforePath(val)
	}
	if i := strings.LastIndex(val, "@"); i >= 0 {
		if u, err := url.Parse(val); err == nil && u.User != nil {
			return strconv.Quote(u.Redacted())
		}
		// Not a URL that parses, yet it may hold one's credentials.
		if j := strings.Index(val, "://"); j >= 0 && j < i {
			return strconv.Quote(val[:j+3] + "(hidden)" + val[i:])
		}
	}
	return strconv.Quote(val)
}

// beforePath is v up to the end of its host, with "…" for what follows
// (a path, a query, a fragment), whether or not v parses as a URL; without
// a scheme's "://", what comes before an "@" is hidden too (a password
// after the "://" is shown's to mask).
func beforePath(v string) string {
	start := 0
	if i := strings.Index(v, "://"); i >= 0 {
		start = i + 3
	}
	if i := strings.IndexAny(v[start:], "/?#"); i >= 0 {
		v = v[:start+i] + "…"
	}
	if i := strings.LastIndex(v, "@"); i >= 0 && start == 0 {
		v = "(hidden)" + v[i:]
	}
	return v
}

// Usage returns the help text: every variable with its default.
func Usage() string {
	var b strings.Builder
	b.WriteString("resizer: an image resizing service.\n\nUsage: server [-h|--help]\n       server healthcheck\n       server reconcile [--dry-run] [--json] [--enqueue] [-h for its flags]\n       server sign [--expires DURATION] KEY OPTIONS   (the path of a signed image URL; see docs/delivery.md)\n\nConfiguration comes from environment variables:\n\n")
	// Columns as wide as the longest name; a default wider than its
	// column puts the meaning on a line of its own, aligned with the rest.
	nameW, defW := 0, 29
	for _, v := range vars {
		nameW = max(nameW, len(v.name))
	}
	for _, v := range vars {
		def := v.def
		if def == "" {
			def = "-"
		}
		if len(def) > defW {
			fmt.Fprintf(&b, "  %-*s %s\n  %-*s %-*s %s\n", nameW, v.name, def, nameW, "", defW, "", v.help)
			continue
		}
		fmt.Fprintf(&b, "  %-*s %-*s %s\n", nameW, v.name, defW, def, v.help)
	}
	return b.String()
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// checkFormats checks that there is a format. Their names, aliases
// included ("jpg", "heic", "tif"), are the format table's: imageproc reads
// them, and the server's settle reports one it does not know as this
// variable's fault.
func checkFormats(fs []string) error {
	if len(fs) == 0 {
		return errors.New("at least one format is needed")
	}
	return nil
}

func parseOnOff(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		return false, nil
	}
	return false, errors.New("must be on or off")
}

// minSigningKey is the shortest URL signing key: 32 characters, 128 bits
// in hex, beyond any search.
const minSigningKey = 32

func checkSigningKeys(keys []string) error {
	for i, k := range keys {
		if len(k) < minSigningKey {
			return fmt.Errorf("key %d is %d characters, under %d (openssl rand -hex 32 makes one)", i+1, len(k), minSigningKey)
		}
	}
	return nil
}

// splitPrefixes reads a list of key prefixes; "/" alone is every key.
func splitPrefixes(v string) []string {
	ps := splitList(v)
	for i, p := range ps {
		ps[i] = strings.TrimPrefix(p, "/")
	}
	return ps
}

func checkURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an http or https URL")
	}
	return nil
}

// checkAddr checks a listen address as net.Listen will read it, so that
// a bare port ("8080") or a port out of range is reported with the other
// faults, by name, rather than by the listener once the stores are open.
func checkAddr(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil || port == "" {
		return errors.New("must be host:port, such as 127.0.0.1:8080 or :8080")
	}
	return nil
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func oneOf(v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
}

func positiveInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, errors.New("must be a positive integer")
	}
	return n, nil
}

// The bounds of CONCURRENCY and QUEUE_SIZE.
const (
	maxConcurrency = 256
	maxQueueSize   = 1_000_000
)

// intIn reads an integer from lo to hi.
func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("must be an integer from %d to %d", lo, hi)
	}
	return n, nil
}

func nonNegativeInt(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errors.New("must be a non-negative integer")
	}
	return n, nil
}

func quality(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, errors.New("must be an integer from 1 to 100")
	}
	return n, nil
}

func positiveInt64(v string) (int64, error) {
	n, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("must be a positive integer")
	}
	return n, nil
}

func nonNegativeDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, errors.New("must be a duration such as 10s, or 0")
	}
	return d, nil
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration such as 5s or 250ms")
	}
	return d, nil
}

// parseRate reads a rate in bytes per second: 0, or a size (parseBytes).
func parseRate(v string) (int64, error) {
	if v == "0" {
		return 0, nil
	}
	n, err := parseBytes(v)
	if err != nil {
		return 0, errors.New("must be 0 or a size per second such as 4096 or 4KiB")
	}
	return n, nil
}

// parsePrefixes reads a comma-separated list of CIDR prefixes; a bare
// address is a prefix of its own.
func parsePrefixes(v string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range splitList(v) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%q: must be a CIDR such as 10.0.0.0/16 or an address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ps = append(ps, p.Masked())
	}
	return ps, nil
}

// parseBytes reads a byte count: a plain number, or one with a KiB, MiB or
// GiB suffix (KB, MB and GB are taken as the same powers of 1024).
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("must be a positive size such as 33554432 or 32MiB")
	}
	return n * mult, nil
}

// markdown returns every variable as a Markdown table (variable, default,
// meaning): the table of docs/configuration.md, which a test keeps equal
// to this one.
func markdown() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range vars {
		def, help := "`"+v.def+"`", v.help
		if computed, rest, ok := cutDefault(help); ok {
			def, help = computed, rest
		} else if v.def == "" {
			def = "empty"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, def, help)
	}
	return b.String()
}

// cutDefault takes a help text's "(default: ...)" out, parentheses inside
// it included, and returns the default and the rest.
func cutDefault(help string) (def, rest string, ok bool) {
	i := strings.Index(help, "(default: ")
	if i < 0 {
		return "", help, false
	}
	depth := 0
	for j := i; j < len(help); j++ {
		switch help[j] {
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				def = help[i+len("(default: ") : j]
				rest = strings.TrimSpace(strings.TrimSpace(help[:i]) + " " + strings.TrimSpace(help[j+1:]))
				return def, strings.TrimSuffix(rest, " ;"), true
			}
		}
	}
	return "", help, false
}

// checkOrigin accepts "", "*" or one origin written as a browser sends it
// in Origin (which the header's value must equal byte for byte): http or
// https, a host in lower case, a port or not, and nothing after it.
func checkOrigin(v string) error {
	if v == "" || v == "*" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.HasSuffix(u.Host, ":") ||
		(&url.URL{Scheme: u.Scheme, Host: u.Host}).String() != v || strings.ToLower(v) != v {
		return fmt.Errorf("%q is not * or an origin as browsers send it, such as https://www.example.com", v)
	}
	return nil
}
