package webhooks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Resolver resolves host names; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// URLPolicy says which endpoint URLs Backflow delivers to: https to public
// addresses only, so a merchant cannot make Backflow call its own network
// (cloud metadata, databases, admin consoles). It is checked when an
// endpoint is created, and again for every connection a delivery makes, on
// the address about to be dialed: a name that resolves elsewhere later (DNS
// rebinding) is refused before any packet is sent.
type URLPolicy struct {
	// AllowLoopback also allows loopback addresses, and plain http to them
	// only (development and tests; BACKFLOW_WEBHOOK_ALLOW_LOOPBACK).
	AllowLoopback bool
	// Resolver resolves endpoint host names; nil is net.DefaultResolver.
	Resolver Resolver
	// DialGuard, when set, sees every address a delivery is about to dial
	// with the policy's verdict (nil: allowed) and returns the final one.
	// Tests record dials with it and refuse anything but loopback.
	DialGuard func(address string, verdict error) error
	// IdleConnsPerHost is how many idle connections Client keeps per
	// endpoint host for the next deliveries (0: 4).
	IdleConnsPerHost int
}

// NotAllowedError is a URL or address the policy refuses, and why.
type NotAllowedError struct {
	Reason string
	// Permanent: the URL itself is refused (its scheme, a literal
	// address), not what its host resolves to now.
	Permanent bool
}

func (e *NotAllowedError) Error() string { return "webhook URL not allowed: " + e.Reason }

// ErrHostNotFound is a host name that does not resolve.
var ErrHostNotFound = errors.New("webhooks: host does not resolve")

// resolveTimeout bounds the look-up of an endpoint's host at creation.
const resolveTimeout = 5 * time.Second

// CheckURL checks an endpoint URL: its scheme, and its host's addresses
// (a literal one, or every address its name resolves to). It returns a
// *NotAllowedError naming the reason, ErrHostNotFound, or the resolver's
// error when the name could not be resolved now. The reason names the kind
// of address, never an address a name resolved to: the answer must not
// reveal what names mean inside Backflow's network.
func (p URLPolicy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return &NotAllowedError{Reason: "not an absolute URL", Permanent: true}
	}
	plain, err := p.checkScheme(u.Scheme)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(ip, plain, true)
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	ips, err := p.resolver().LookupNetIP(ctx, "ip", host)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound, err == nil && len(ips) == 0:
		return fmt.Errorf("%w: %s", ErrHostNotFound, host)
	case err != nil:
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	for _, ip := range ips {
		if err := p.checkAddr(ip, plain, false); err != nil {
			return err
		}
	}
	return nil
}

func (p URLPolicy) resolver() Resolver {
	if p.Resolver == nil {
		return net.DefaultResolver
	}
	return p.Resolver
}

// checkScheme allows https, and http only where loopback is allowed; it
// reports whether the scheme is plain http.
func (p URLPolicy) checkScheme(scheme string) (bool, error) {
	switch {
	case scheme == "https":
		return false, nil
	case scheme == "http" && p.AllowLoopback:
		return true, nil
	case scheme == "http":
		return false, &NotAllowedError{Reason: "the URL must use https", Permanent: true}
	}
	return false, &NotAllowedError{Reason: "the URL must use https, not " + scheme, Permanent: true}
}

// checkAddr checks one address for a scheme. literal says the address is
// the URL's own, so the reason may name it.
func (p URLPolicy) checkAddr(ip netip.Addr, plainHTTP, literal bool) error {
	switch kind := Classify(ip); {
	case kind == KindLoopback && p.AllowLoopback, kind == "" && !plainHTTP:
		return nil
	case kind != "" && literal:
		return &NotAllowedError{Reason: fmt.Sprintf("%s is a %s address", ip.WithZone(""), kind), Permanent: true}
	case kind != "":
		return &NotAllowedError{Reason: "the host resolves to a " + kind + " address"}
	}
	return &NotAllowedError{Reason: "plain http is allowed to loopback addresses only: use https", Permanent: literal}
}

// Kinds of address the policy refuses (loopback unless AllowLoopback).
const (
	KindLoopback    = "loopback"
	KindPrivate     = "private"
	KindLinkLocal   = "link-local"
	KindSharedCGNAT = "carrier-grade NAT"
	KindUnspecified = "unspecified"
	KindMulticast   = "multicast"
	KindBroadcast   = "broadcast"
	KindReserved    = "reserved"
)

var (
	cgnat        = netip.MustParsePrefix("100.64.0.0/10")
	thisNetwork  = netip.MustParsePrefix("0.0.0.0/8")
	ietfProtocol = netip.MustParsePrefix("192.0.0.0/24")
	benchmarking = netip.MustParsePrefix("198.18.0.0/15")
	futureUse    = netip.MustParsePrefix("240.0.0.0/4")
	broadcast    = netip.MustParseAddr("255.255.255.255")
	siteLocal    = netip.MustParsePrefix("fec0::/10")
	// IPv6 forms that carry an IPv4 address: NAT64 and 6to4 reach it
	// through a gateway, IPv4-compatible addresses are read as it.
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	v4Compat   = netip.MustParsePrefix("::/96")
)

// Classify names the kind of a non-public address ("" for a public one).
// IPv6 forms of an IPv4 address (mapped, compatible, NAT64, 6to4) are
// classified as the IPv4 address they carry.
func Classify(ip netip.Addr) string {
	ip = ip.WithZone("")
	if v4, ok := embeddedV4(ip); ok {
		ip = v4
	}
	switch {
	case ip.IsUnspecified():
		return KindUnspecified
	case ip.IsLoopback():
		return KindLoopback
	case ip == broadcast:
		return KindBroadcast
	case ip.IsMulticast():
		return KindMulticast
	case ip.IsLinkLocalUnicast():
		return KindLinkLocal
	case ip.IsPrivate():
		return KindPrivate
	case cgnat.Contains(ip):
		return KindSharedCGNAT
	case thisNetwork.Contains(ip), ietfProtocol.Contains(ip), benchmarking.Contains(ip), futureUse.Contains(ip), siteLocal.Contains(ip):
		return KindReserved
	}
	return ""
}

// embeddedV4 is the IPv4 address an IPv6 address stands for, if any.
func embeddedV4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return ip, false
	}
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case nat64Local.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	case v4Compat.Contains(ip) && !ip.IsUnspecified() && !ip.IsLoopback():
		return netip.AddrFrom4([4]byte(b[12:16])), true
	}
	return ip, false
}

// Client is the HTTP client of deliveries under the policy: every
// connection is checked on the address about to be dialed (so a name that
// re-resolves to a refused address is refused then), redirects are never
// followed (a 3xx is the answer), and no proxy is used (the proxy's address
// would be the one checked, not the endpoint's). Requests carry their own
// deadlines.
func (p URLPolicy) Client() *http.Client {
	return &http.Client{
		Transport:     &guardedTransport{policy: p, https: p.transport(false), http: p.transport(true)},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// guardedTransport sends https and http requests on transports whose dialers
// apply the policy for their scheme.
type guardedTransport struct {
	policy      URLPolicy
	https, http *http.Transport
}

func (t *guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	plain, err := t.policy.checkScheme(req.URL.Scheme)
	if err != nil {
		return nil, err
	}
	if plain {
		return t.http.RoundTrip(req)
	}
	return t.https.RoundTrip(req)
}

func (p URLPolicy) transport(plainHTTP bool) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		// Called with the address about to be connected, before connect(2).
		Control: func(_, address string, _ syscall.RawConn) error { return p.checkDial(address, plainHTTP) }}
	return &http.Transport{
		Proxy: nil,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return p.dial(ctx, dialer, network, addr)
		},
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   cmp.Or(p.IdleConnsPerHost, 4),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// dial resolves addr's host with the policy's resolver and dials its
// addresses in turn; the dialer's Control checks each one.
func (p URLPolicy) dial(ctx context.Context, d *net.Dialer, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = p.resolver().LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	var errs []error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		var refused *NotAllowedError
		if errors.As(err, &refused) {
			return nil, refused // one refused address refuses the host, as at creation
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrHostNotFound, host)
	}
	return nil, errors.Join(errs...)
}

// checkDial is the policy on an address about to be dialed ("ip:port").
func (p URLPolicy) checkDial(address string, plainHTTP bool) error {
	var verdict error
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		verdict = &NotAllowedError{Reason: "unreadable address " + address}
	} else {
		verdict = p.checkAddr(ap.Addr(), plainHTTP, false)
	}
	if p.DialGuard != nil {
		return p.DialGuard(address, verdict)
	}
	return verdict
}

// ErrOutsideLoopback is what LoopbackOnly answers for any other address.
var ErrOutsideLoopback = errors.New("webhooks: test dial outside loopback refused")

// LoopbackOnly is a DialGuard for tests: it refuses every address but
// loopback, whatever the policy said, so no test connects elsewhere.
func LoopbackOnly(address string, verdict error) error {
	if ap, err := netip.ParseAddrPort(address); err != nil || !ap.Addr().Unmap().IsLoopback() {
		return errors.Join(verdict, ErrOutsideLoopback)
	}
	return verdict
}

// IsNotAllowed reports whether err is the policy refusing a URL or address.
func IsNotAllowed(err error) (*NotAllowedError, bool) {
	var na *NotAllowedError
	return na, errors.As(err, &na)
}
