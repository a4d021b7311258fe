package webhooks_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/webhooks"
)

// Every range of SPEC §12, in IPv4, IPv6 and IPv4-mapped/-compatible forms.
// These tests only parse, resolve through a stub and refuse: nothing here
// ever connects to any of these addresses.
var refused = []struct{ addr, kind string }{
	{"127.0.0.1", webhooks.KindLoopback},
	{"127.255.0.9", webhooks.KindLoopback},
	{"::1", webhooks.KindLoopback},
	{"::ffff:127.0.0.1", webhooks.KindLoopback},
	{"169.254.169.254", webhooks.KindLinkLocal}, // cloud metadata
	{"169.254.0.1", webhooks.KindLinkLocal},
	{"fe80::1", webhooks.KindLinkLocal},
	{"fe80::1%eth0", webhooks.KindLinkLocal},
	{"febf:ffff::1", webhooks.KindLinkLocal},
	{"::ffff:169.254.169.254", webhooks.KindLinkLocal},
	{"fd00:ec2::254", webhooks.KindPrivate}, // AWS metadata over IPv6
	{"10.0.0.1", webhooks.KindPrivate},
	{"10.255.255.255", webhooks.KindPrivate},
	{"172.16.0.1", webhooks.KindPrivate},
	{"172.31.255.254", webhooks.KindPrivate},
	{"192.168.1.1", webhooks.KindPrivate},
	{"fc00::1", webhooks.KindPrivate},
	{"fdff:ffff::1", webhooks.KindPrivate},
	{"::ffff:10.0.0.1", webhooks.KindPrivate},
	{"::ffff:192.168.0.1", webhooks.KindPrivate},
	{"::10.0.0.1", webhooks.KindPrivate},          // IPv4-compatible
	{"64:ff9b::a00:1", webhooks.KindPrivate},      // NAT64 of 10.0.0.1
	{"2002:a00:1::1", webhooks.KindPrivate},       // 6to4 of 10.0.0.1
	{"2002:a9fe:a9fe::1", webhooks.KindLinkLocal}, // 6to4 of 169.254.169.254
	{"100.64.0.1", webhooks.KindSharedCGNAT},
	{"100.127.255.254", webhooks.KindSharedCGNAT},
	{"::ffff:100.64.0.1", webhooks.KindSharedCGNAT},
	{"0.0.0.0", webhooks.KindUnspecified},
	{"::", webhooks.KindUnspecified},
	{"::ffff:0.0.0.0", webhooks.KindUnspecified},
	{"224.0.0.1", webhooks.KindMulticast},
	{"239.255.255.250", webhooks.KindMulticast},
	{"ff02::1", webhooks.KindMulticast},
	{"::ffff:224.0.0.251", webhooks.KindMulticast},
	{"255.255.255.255", webhooks.KindBroadcast},
	{"::ffff:255.255.255.255", webhooks.KindBroadcast},
	{"0.1.2.3", webhooks.KindReserved},
	{"240.0.0.1", webhooks.KindReserved},
	{"198.18.0.1", webhooks.KindReserved},
}

var public = []string{"8.8.8.8", "203.0.113.10", "100.63.255.255", "100.128.0.0", "172.15.255.255", "172.32.0.0",
	"2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1"}

func TestClassify(t *testing.T) {
	for _, tc := range refused {
		if got := webhooks.Classify(netip.MustParseAddr(tc.addr)); got != tc.kind {
			t.Errorf("Classify(%s) = %q, want %q", tc.addr, got, tc.kind)
		}
	}
	for _, a := range public {
		if got := webhooks.Classify(netip.MustParseAddr(a)); got != "" {
			t.Errorf("Classify(%s) = %q, want public", a, got)
		}
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	dns := rig.NewStubResolver()
	strict := webhooks.URLPolicy{Resolver: dns}
	dev := webhooks.URLPolicy{Resolver: dns, AllowLoopback: true}

	// A literal address of every refused range is refused, naming it.
	for _, tc := range refused {
		host := tc.addr
		if strings.Contains(host, ":") {
			host = "[" + strings.Replace(host, "%", "%25", 1) + "]"
		}
		err := strict.CheckURL(ctx, "https://"+host+"/hooks")
		na, ok := webhooks.IsNotAllowed(err)
		if !ok || !strings.Contains(na.Reason, tc.kind) || !na.Permanent {
			t.Errorf("https://%s: %v, want refused as %s", host, err, tc.kind)
		}
	}
	// A name resolving to any refused address is refused, without saying the address.
	for _, tc := range refused {
		dns.Set("internal.example", "203.0.113.10", strings.Split(tc.addr, "%")[0])
		err := strict.CheckURL(ctx, "https://internal.example/hooks")
		na, ok := webhooks.IsNotAllowed(err)
		if !ok || !strings.Contains(na.Reason, "resolves to a "+tc.kind) || strings.Contains(na.Reason, tc.addr) || na.Permanent {
			t.Errorf("internal.example → %s: %v, want refused as %s", tc.addr, err, tc.kind)
		}
	}
	for _, tc := range []struct {
		policy webhooks.URLPolicy
		url    string
		reason string // "" for allowed
	}{
		{strict, "https://hooks.example/x", ""},
		{strict, "https://203.0.113.10:8443/x", ""},
		{strict, "https://[2606:4700:4700::1111]/x", ""},
		{strict, "http://hooks.example/x", "must use https"},
		{strict, "ftp://hooks.example/x", "must use https"},
		{strict, "https://localhost/x", "resolves to a loopback address"},
		{strict, "http://127.0.0.1:8080/x", "must use https"},
		{dev, "http://127.0.0.1:8080/x", ""},
		{dev, "http://[::1]:8080/x", ""},
		{dev, "http://localhost:8080/x", ""},
		{dev, "https://localhost/x", ""},
		{dev, "http://hooks.example/x", "plain http is allowed to loopback addresses only"},
		{dev, "http://10.0.0.1/x", "10.0.0.1 is a private address"},
		{dev, "http://203.0.113.10/x", "plain http is allowed to loopback addresses only"},
		{dev, "https://10.0.0.1/x", "10.0.0.1 is a private address"},
		{dev, "https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"},
	} {
		err := tc.policy.CheckURL(ctx, tc.url)
		na, ok := webhooks.IsNotAllowed(err)
		switch {
		case tc.reason == "" && err != nil:
			t.Errorf("%s (loopback %v): %v, want allowed", tc.url, tc.policy.AllowLoopback, err)
		case tc.reason != "" && (!ok || !strings.Contains(na.Reason, tc.reason)):
			t.Errorf("%s (loopback %v): %v, want refused: %s", tc.url, tc.policy.AllowLoopback, err, tc.reason)
		}
	}
	if err := strict.CheckURL(ctx, "https://nowhere.invalid/x"); !errors.Is(err, webhooks.ErrHostNotFound) {
		t.Errorf("unknown host: %v", err)
	}
	broken := webhooks.URLPolicy{Resolver: failingResolver{}}
	if err := broken.CheckURL(ctx, "https://hooks.example/x"); err == nil || errors.Is(err, webhooks.ErrHostNotFound) {
		t.Errorf("resolver failure: %v, want the resolver's error", err)
	} else if _, ok := webhooks.IsNotAllowed(err); ok {
		t.Errorf("resolver failure taken for a refusal: %v", err)
	}
}

type failingResolver struct{}

func (failingResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "server misbehaving", IsTemporary: true}
}

// dialLog is a DialGuard that records every address a client was about to
// dial, and refuses all but loopback whatever the policy said.
type dialLog struct {
	mu    sync.Mutex
	dials []string
}

func (d *dialLog) guard(address string, verdict error) error {
	d.mu.Lock()
	d.dials = append(d.dials, address)
	d.mu.Unlock()
	return webhooks.LoopbackOnly(address, verdict)
}

func (d *dialLog) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dials...)
}

func post(c *http.Client, target string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(`{}`))
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// TestClientRefusesBeforeConnecting: the delivery client checks the address
// it is about to dial, after resolution and before connect(2): names that
// resolve to a refused address, and a resolution that changes between the
// endpoint's creation and a delivery (DNS rebinding), never get a packet.
func TestClientRefusesBeforeConnecting(t *testing.T) {
	ctx := context.Background()
	dns := rig.NewStubResolver()
	log := &dialLog{}
	policy := webhooks.URLPolicy{Resolver: dns, DialGuard: log.guard}
	client := policy.Client()

	for _, tc := range refused {
		ip := strings.Split(tc.addr, "%")[0]
		dns.Set("rebind.example", ip)
		_, err := post(client, "https://rebind.example/hooks")
		na, ok := webhooks.IsNotAllowed(err)
		if !ok || !strings.Contains(na.Reason, tc.kind) {
			t.Errorf("delivery to a name resolving to %s: %v, want refused as %s", ip, err, tc.kind)
		}
	}
	// Rebinding: public when the endpoint is created, internal when delivered to.
	dns.Set("flip.example", "203.0.113.10")
	if err := policy.CheckURL(ctx, "https://flip.example/hooks"); err != nil {
		t.Fatalf("creation check: %v", err)
	}
	dns.Set("flip.example", "169.254.169.254")
	if _, err := post(client, "https://flip.example/hooks"); !isRefusal(err, webhooks.KindLinkLocal) {
		t.Errorf("after rebinding: %v, want refused as link-local", err)
	}
	// Literal addresses in the URL, the metadata service among them.
	for _, target := range []string{"https://169.254.169.254/latest/meta-data/", "https://[::ffff:a9fe:a9fe]/", "https://10.0.0.1:5432/",
		"http://10.0.0.1/", "https://[fd00:ec2::254]/"} {
		if _, err := post(client, target); err == nil {
			t.Errorf("%s: delivered", target)
		} else if _, ok := webhooks.IsNotAllowed(err); !ok {
			t.Errorf("%s: %v, want a policy refusal", target, err)
		}
	}
	// Every address the client was about to dial was a refused one; none
	// was allowed by the policy (the guard would have refused it too).
	for _, a := range log.seen() {
		ap := netip.MustParseAddrPort(a)
		if webhooks.Classify(ap.Addr()) == "" {
			t.Errorf("the client was about to dial %s, a public address", a)
		}
	}
	if len(log.seen()) < len(refused) {
		t.Errorf("the guard saw %d dials, want one per refused resolution at least", len(log.seen()))
	}
}

func isRefusal(err error, kind string) bool {
	na, ok := webhooks.IsNotAllowed(err)
	return ok && strings.Contains(na.Reason, kind)
}

// TestClientOnLoopback: with loopback allowed (make dev, tests) deliveries
// reach a loopback receiver, by address or by a name resolving to it;
// without, they are refused before connecting. Redirects are answers, never
// followed; a proxy in the environment is never used.
func TestClientOnLoopback(t *testing.T) {
	var hits, redirected, proxied atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			redirected.Add(1)
		}
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/moved", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		proxied.Add(1)
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(proxy.Close)
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("HTTPS_PROXY", proxy.URL)

	u, _ := url.Parse(recv.URL)
	dns := rig.NewStubResolver()
	dns.Set("hooks.test", "127.0.0.1")
	log := &dialLog{}
	dev := webhooks.URLPolicy{AllowLoopback: true, Resolver: dns, DialGuard: log.guard}.Client()
	for _, target := range []string{recv.URL + "/ok", "http://hooks.test:" + u.Port() + "/ok"} {
		resp, err := post(dev, target)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s: %v %v", target, resp, err)
		}
	}
	resp, err := post(dev, recv.URL+"/redirect")
	if err != nil || resp.StatusCode != http.StatusFound || redirected.Load() != 0 {
		t.Fatalf("redirect: %v %v, followed %d times", resp, err, redirected.Load())
	}
	if proxied.Load() != 0 {
		t.Fatalf("the proxy got %d requests", proxied.Load())
	}

	strict := webhooks.URLPolicy{Resolver: dns, DialGuard: log.guard}.Client()
	before := hits.Load()
	for _, target := range []string{recv.URL + "/ok", "https://hooks.test:" + u.Port() + "/ok"} {
		if _, err := post(strict, target); err == nil || hits.Load() != before {
			t.Fatalf("%s without loopback allowed: %v, %d requests arrived", target, err, hits.Load()-before)
		}
	}
}
