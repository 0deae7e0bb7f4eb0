package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/resizer/resizer/imageurl"
	"github.com/resizer/resizer/internal/config"
	"github.com/resizer/resizer/internal/delivery"
	"github.com/resizer/resizer/internal/imageproc"
	"github.com/resizer/resizer/internal/pipeline"
	"github.com/resizer/resizer/internal/storage"
)

// signUsage is the help of `server sign`.
const signUsage = `usage: server sign [--expires DURATION] KEY OPTIONS

Prints the path (from its leading /) of the image URL that serves the
stored original KEY (the store's full key, such as uploads/cats/tom.jpg)
as OPTIONS ask, in the words of POST /resize ('width=800&format=webp'),
signed with the first of URL_SIGNING_KEYS (with local storage and none
set: the key kept in DATA_DIR). OPTIONS may also be preset=NAME (a
variant of VARIANTS) and v=ETAG (pins the original's version). KEY must
lie under DELIVERY_PREFIXES, and NAME be a variant, as the server has
them: a path the server would refuse is not printed.
`

// signSettings are the variables `server sign` reads: it serves nothing,
// so the rest of the configuration (API keys among it) is not asked for.
var signSettings = map[string]bool{"URL_SIGNING_KEYS": true, "DATA_DIR": true, "S3_BUCKET": true, "MAX_DIMENSION": true,
	"INPUT_PREFIX": true, "OUTPUT_PREFIX": true, "DELIVERY_PREFIXES": true, "VARIANTS": true}

// sign is `server sign`: it writes the signed path of one image URL to
// stdout. It fails on bad arguments or settings, and without a key to
// sign with.
func sign(getenv func(string) string, args []string, stdout io.Writer) error {
	cfg, err := config.Load(func(k string) string {
		switch {
		case signSettings[k]:
			return getenv(k)
		case k == "ALLOW_ANONYMOUS":
			return "true" // nothing is served
		}
		return ""
	})
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	expires := fs.Duration("expires", 0, "")
	switch err := fs.Parse(args); {
	case errors.Is(err, flag.ErrHelp):
		// Asked for, as reconcile's: the usage on stdout, and success.
		_, err = io.WriteString(stdout, signUsage)
		return err
	case err != nil:
		return fmt.Errorf("sign: %w\n%s", err, signUsage)
	case fs.NArg() != 2:
		return fmt.Errorf("sign: want KEY and OPTIONS, got %d arguments\n%s", fs.NArg(), signUsage)
	case *expires < 0:
		return fmt.Errorf("sign: --expires %s: must not be negative\n%s", *expires, signUsage)
	}
	q, err := url.ParseQuery(fs.Arg(1))
	if err != nil {
		return fmt.Errorf("options: %w", err)
	}
	for _, w := range []string{"preset", "v"} {
		// Get would take the first and drop the others, signing another
		// image than asked for; the options proper are refused so too.
		if n := len(q[w]); n > 1 {
			return fmt.Errorf("options: %s given %d times", w, n)
		}
	}
	r := imageurl.Request{Key: fs.Arg(0), Preset: q.Get("preset"), Version: q.Get("v")}
	if err := servable(cfg, r); err != nil {
		return err
	}
	q.Del("preset")
	q.Del("v")
	if len(q) > 0 {
		if err := checkOptions(q, cfg.MaxDimension); err != nil {
			return err
		}
		r.Options = q
	}
	if *expires > 0 {
		r.Expires = time.Now().Add(*expires)
	}
	key, err := signingKey(cfg)
	if err != nil {
		return err
	}
	p, err := imageurl.NewSigner(key).Path(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, p)
	return err
}

// servable refuses a request the server would answer 403 or 404 whatever
// is stored: a key outside DELIVERY_PREFIXES or among the derived images,
// a preset that VARIANTS does not define.
func servable(cfg config.Config, r imageurl.Request) error {
	if err := delivery.Served(r.Key, cfg.DeliveryPrefixes, cachePrefix(cfg)); err != nil {
		return fmt.Errorf("sign: %w: the server would refuse it (see DELIVERY_PREFIXES)", err)
	}
	if r.Preset == "" {
		return nil
	}
	variants, err := pipeline.ParseVariants(cfg.Variants, cfg.MaxDimension)
	if err != nil {
		return fmt.Errorf("VARIANTS: %w", err)
	}
	var names []string
	for _, v := range variants {
		if v.Name == r.Preset {
			return nil
		}
		names = append(names, v.Name)
	}
	return fmt.Errorf("sign: preset %q is not a variant of VARIANTS (%s)", r.Preset, strings.Join(names, ", "))
}

// checkOptions refuses options the server would answer with a 400, as
// POST /resize reads them (format=auto aside, which the server reads from
// Accept): a signed URL that can only fail is no use to anyone.
func checkOptions(q url.Values, maxDimension int) error {
	c := maps.Clone(q)
	if f := c["format"]; len(f) == 1 && f[0] == "auto" {
		delete(c, "format")
	}
	if _, err := imageproc.ParseOptions(c, maxDimension); err != nil {
		return fmt.Errorf("options: %w", err)
	}
	return nil
}

// signingKey is the key the server signs with: the first of
// URL_SIGNING_KEYS, or with local storage the one kept in DATA_DIR. A
// DATA_DIR that does not exist is refused rather than made: `server sign`
// run from another folder would make a ./data of its own there, with a
// key of its own, and every path it printed would be a 403.
func signingKey(s config.Config) (string, error) {
	if len(s.URLSigningKeys) > 0 {
		return s.URLSigningKeys[0], nil
	}
	if s.S3Mode() {
		return "", errNoSigningKey
	}
	if _, err := os.Stat(s.DataDir); errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("DATA_DIR %s does not exist: run server sign where the server runs, or set DATA_DIR (or URL_SIGNING_KEYS) as the server has it", s.DataDir)
	}
	d, err := storage.NewDir(s.DataDir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	return d.URLSigningKey()
}
