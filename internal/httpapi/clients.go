package httpapi

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// perClient caps the requests in flight on the image routes per client
// address and per API key. Reading a body is cheap (see intake), but a
// client with many connections would still take every processing place,
// and every connection costs a goroutine, a socket and a first buffer: the
// cap keeps one client, or one key used from many addresses, to its share.
// A request counts against its address and, when it carries one, its key;
// it is refused with 429 when either is at the cap.
type perClient struct {
	max     int // 0: no cap
	trusted []netip.Prefix
	mu      sync.Mutex
	n       map[string]int // entries are removed at zero: the map holds only requests in flight
}

func newPerClient(max int, trusted []netip.Prefix) *perClient {
	return &perClient{max: max, trusted: trusted, n: map[string]int{}}
}

// enter counts r against its client, or returns errTooManyRequests when the
// client is at the cap. The caller must call leave exactly once.
func (c *perClient) enter(r *http.Request) (leave func(), err error) {
	if c.max <= 0 {
		return func() {}, nil
	}
	addr := clientAddr(r, c.trusted)
	ids := []string{"addr " + clientID(addr, r.RemoteAddr)}
	if key, ok := bearerToken(r); ok && key != "" {
		// The digest, not the key: the map is no place for secrets.
		d := sha256.Sum256([]byte(key))
		ids = append(ids, "key "+string(d[:]))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, id := range ids {
		if c.n[id] >= c.max {
			who := "this client address"
			if i > 0 {
				who = "this API key"
			} else if r.Header.Get("X-Forwarded-For") != "" && !isTrusted(peerAddr(r), c.trusted) {
				// Said in the log line of the 429: behind a load balancer
				// not in TRUSTED_PROXIES, every client is the balancer.
				who = fmt.Sprintf("%s (X-Forwarded-For is not believed from a peer outside TRUSTED_PROXIES)", addr)
			}
			return nil, fmt.Errorf("%w: %s has %d requests in flight, the most allowed", errTooManyRequests, who, c.max)
		}
	}
	for _, id := range ids {
		c.n[id]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, id := range ids {
				if c.n[id]--; c.n[id] <= 0 {
					delete(c.n, id)
				}
			}
		})
	}, nil
}

// clientAddr is the address r came from. It is the peer's, unless the
// peer is a trusted proxy (behind an ALB every peer is the load balancer):
// then it is the nearest address in X-Forwarded-For that is not a trusted
// proxy, read from the right, since each proxy appends the address it got
// the request from and only the entries that trusted proxies wrote can be
// believed; anything to their left is the client's to invent. An entry
// that is not an address stops the walk at the last trusted hop. The zero
// Addr means the peer address itself could not be read.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	addr := peerAddr(r)
	if !addr.IsValid() || !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(fieldList(r.Header, "X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseHop(hops[i])
		if !ok {
			return addr
		}
		addr = hop
		if !isTrusted(addr, trusted) {
			return addr
		}
	}
	return addr // every hop is a trusted proxy: the first one is the client
}

// peerAddr is the address of the connection's other end; the zero Addr
// when RemoteAddr is not an address and port.
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// parseHop reads one X-Forwarded-For entry: an address, possibly with a
// port (some proxies add one).
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientID is what the cap counts an address as: an IPv4 address, or the
// /64 network of an IPv6 address, since one IPv6 host is usually given a
// whole /64 and could otherwise take a fresh address per connection.
func clientID(a netip.Addr, remote string) string {
	switch {
	case !a.IsValid():
		return remote
	case a.Is6():
		p, _ := a.Prefix(64)
		return p.String()
	default:
		return a.String()
	}
}
