package delivery

import (
	"strconv"
	"strings"
	"time"
)

// pinnedCacheControl is the Cache-Control of an answer that never changes
// (the URL pins its original's version): a year, as long as caches are
// asked to keep anything, and immutable, so that a browser's reload does
// not even ask again.
const pinnedCacheControl = "public, max-age=31536000, immutable"

// cacheControl is the Cache-Control of the answer to r: pinned, or the
// configured one; for an expiring URL, no cache may keep it past its
// expiry. A preset's answer is never pinned: the URL pins the original's
// version, not the preset's definition, which VARIANTS may change (the
// CDN is then told, by Purge; a browser told immutable never would be).
func cacheControl(unpinned string, r Request, now time.Time) string {
	cc := unpinned
	if r.Version != "" && r.Preset == "" {
		cc = pinnedCacheControl
	}
	if r.Expires.IsZero() {
		return cc
	}
	return capAges(cc, max(int64(r.Expires.Sub(now)/time.Second), 0))
}

// capAges lowers max-age and s-maxage to at most n seconds, adds
// max-age=n where there was none (a cache would otherwise guess one), and
// drops stale-while-revalidate and stale-if-error, which would let a cache
// serve the answer past n.
func capAges(cc string, n int64) string {
	var out []string
	hasMaxAge := false
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		name, v, ok := strings.Cut(d, "=")
		switch name = strings.ToLower(name); {
		case name == "stale-while-revalidate" || name == "stale-if-error":
			continue
		case ok && (name == "max-age" || name == "s-maxage"):
			hasMaxAge = hasMaxAge || name == "max-age"
			if age, err := strconv.ParseInt(v, 10, 64); err != nil || age > n {
				d = name + "=" + strconv.FormatInt(n, 10)
			}
		}
		out = append(out, d)
	}
	if !hasMaxAge {
		out = append(out, "max-age="+strconv.FormatInt(n, 10))
	}
	return strings.Join(out, ", ")
}
