package httpapi

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestClientAddr(t *testing.T) {
	alb := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")}
	chain := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16"), netip.MustParsePrefix("192.0.2.0/24")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"no proxy trusted: the peer", "198.51.100.7:5000", []string{"203.0.113.9"}, nil, "198.51.100.7"},
		{"an untrusted peer's header is not believed", "198.51.100.7:5000", []string{"203.0.113.9"}, alb, "198.51.100.7"},
		{"behind the ALB: the address it appended", "10.0.3.4:5000", []string{"203.0.113.9"}, alb, "203.0.113.9"},
		{"what the client wrote is ignored", "10.0.3.4:5000", []string{"1.1.1.1, 2.2.2.2, 203.0.113.9"}, alb, "203.0.113.9"},
		{"through two trusted proxies", "10.0.3.4:5000", []string{"1.1.1.1, 203.0.113.9, 192.0.2.5"}, chain, "203.0.113.9"},
		{"several headers read as one list", "10.0.3.4:5000", []string{"1.1.1.1", "203.0.113.9, 192.0.2.5"}, chain, "203.0.113.9"},
		{"with a port", "10.0.3.4:5000", []string{"203.0.113.9:4321"}, alb, "203.0.113.9"},
		{"IPv6 with a port", "10.0.3.4:5000", []string{"[2001:db8::1]:4321"}, alb, "2001:db8::1"},
		{"a trusted proxy with no header: itself", "10.0.3.4:5000", nil, alb, "10.0.3.4"},
		{"every hop trusted: the first", "10.0.3.4:5000", []string{"10.0.9.9, 10.0.3.3"}, alb, "10.0.9.9"},
		{"garbage stops at the last trusted hop", "10.0.3.4:5000", []string{"203.0.113.9, bogus, 192.0.2.5"}, chain, "192.0.2.5"},
		{"IPv4 in IPv6 is IPv4", "[::ffff:198.51.100.7]:5000", nil, nil, "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{"X-Forwarded-For": tt.xff}}
			if got := clientAddr(r, tt.trusted); got.String() != tt.want {
				t.Fatalf("clientAddr = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestClientID(t *testing.T) {
	for addr, want := range map[string]string{
		"198.51.100.7":         "198.51.100.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64", // a host's /64 is one client
		"2001:db8:1:2::9":      "2001:db8:1:2::/64",
	} {
		if got := clientID(netip.MustParseAddr(addr), ""); got != want {
			t.Errorf("clientID(%s) = %s, want %s", addr, got, want)
		}
	}
	if got := clientID(netip.Addr{}, "@unix"); got != "@unix" {
		t.Errorf("an unreadable peer counts as its RemoteAddr, got %q", got)
	}
}

// A request counts against its address and its key; either at the cap
// refuses it, and leaving frees both, once.
func TestPerClient(t *testing.T) {
	c := newPerClient(2, nil)
	req := func(addr, key string) *http.Request {
		r := &http.Request{RemoteAddr: addr + ":1000", Header: http.Header{}}
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		return r
	}
	enter := func(r *http.Request) func() {
		t.Helper()
		leave, err := c.enter(r)
		if err != nil {
			t.Fatalf("%s %s: %v", r.RemoteAddr, r.Header.Get("Authorization"), err)
		}
		return leave
	}
	refused := func(r *http.Request, want string) {
		t.Helper()
		if _, err := c.enter(r); !errors.Is(err, errTooManyRequests) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s %s: err = %v, want errTooManyRequests naming %s", r.RemoteAddr, r.Header.Get("Authorization"), err, want)
		}
	}
	a1 := enter(req("192.0.2.1", "k"))
	enter(req("192.0.2.2", "k"))
	refused(req("192.0.2.3", "k"), "API key") // k is at the cap from two addresses
	enter(req("192.0.2.1", ""))
	refused(req("192.0.2.1", "other"), "address") // 192.0.2.1 is at the cap
	a1()
	a1() // twice frees once
	enter(req("192.0.2.3", "k"))
	refused(req("192.0.2.4", "k"), "API key")
	// Behind a balancer left out of TRUSTED_PROXIES every client is the
	// balancer: the refusal says why.
	lb := req("10.0.0.5", "")
	lb.Header.Set("X-Forwarded-For", "203.0.113.9")
	enter(lb)
	enter(lb)
	refused(lb, "not believed from a peer outside TRUSTED_PROXIES")
	c.trusted = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	enter(lb) // now 203.0.113.9, with nothing in flight
	enter(lb)
	refused(lb, "this client address has 2")

	open := newPerClient(0, nil) // MAX_PER_CLIENT=0: no cap
	for i := 0; i < 100; i++ {
		if _, err := open.enter(req("192.0.2.1", "k")); err != nil {
			t.Fatalf("no cap: %v", err)
		}
	}
	// The map holds nothing for clients with nothing in flight.
	c2 := newPerClient(1, nil)
	leave, _ := c2.enter(req("192.0.2.1", "k"))
	leave()
	if len(c2.n) != 0 {
		t.Fatalf("entries left: %v", c2.n)
	}
}
