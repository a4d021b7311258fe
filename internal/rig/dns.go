package rig

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"

	"github.com/backflow/backflow/webhooks"
)

// TestPublicAddr is what the stub resolver answers for the names reserved
// for examples and tests (RFC 2606): a documentation address (TEST-NET-3),
// public in form, that tests never reach (their DialGuard refuses anything
// but loopback).
var TestPublicAddr = netip.MustParseAddr("203.0.113.10")

// StubResolver answers host look-ups from a table a test controls, so no
// test sends a DNS query: "localhost" is loopback, the names reserved for
// examples and tests (.example, .test, example.com, .net and .org) are
// TestPublicAddr unless set otherwise, anything else does not exist.
type StubResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	lookups map[string]int
}

// NewStubResolver returns a resolver with the default answers.
func NewStubResolver() *StubResolver {
	return &StubResolver{answers: map[string][]netip.Addr{}, lookups: map[string]int{}}
}

// Set makes host resolve to addrs from now on (none: it does not exist).
func (r *StubResolver) Set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	r.answers[strings.ToLower(host)] = out
}

// Lookups is how many times host was resolved.
func (r *StubResolver) Lookups(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[strings.ToLower(host)]
}

// LookupNetIP implements webhooks.Resolver.
func (r *StubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	r.lookups[host]++
	addrs, ok := r.answers[host]
	switch {
	case ok:
	case host == "localhost":
		addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
	case reservedForExamples(host):
		addrs = []netip.Addr{TestPublicAddr}
	}
	if len(addrs) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func reservedForExamples(host string) bool {
	for _, d := range []string{"example", "test", "example.com", "example.net", "example.org"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// TestURLPolicy is the webhook URL policy of test stacks, as `make test`
// runs them (BACKFLOW_WEBHOOK_ALLOW_LOOPBACK=true): loopback allowed, names
// resolved by resolver (a fresh StubResolver when nil), and no connection
// but to loopback, whatever the policy says.
func TestURLPolicy(resolver webhooks.Resolver) webhooks.URLPolicy {
	if resolver == nil {
		resolver = NewStubResolver()
	}
	return webhooks.URLPolicy{AllowLoopback: true, Resolver: resolver, DialGuard: webhooks.LoopbackOnly}
}
