package integration

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/workflows"
)

// dials records every address the worker's deliveries were about to dial
// and refuses all but loopback whatever the policy said: no test packet
// ever leaves the machine.
type dials struct {
	mu   sync.Mutex
	seen map[string]error
}

func (d *dials) guard(address string, verdict error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.seen[address] = verdict
	return webhooks.LoopbackOnly(address, verdict)
}

// allowed lists the dials the policy allowed.
func (d *dials) allowed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for a, v := range d.seen {
		if v == nil {
			out = append(out, a)
		}
	}
	return out
}

// TestWebhookURLPolicy runs the production policy (no loopback) over the
// running API and worker: internal targets are refused at creation with
// the reason; a name that later resolves inside (DNS rebinding) is refused
// when delivering, before connecting; an endpoint stored before the policy
// is disabled at its first delivery; the events API says why, nothing more.
func TestWebhookURLPolicy(t *testing.T) {
	dns := rig.NewStubResolver()
	d := &dials{seen: map[string]error{}}
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true, WebhookURLs: webhooks.URLPolicy{Resolver: dns, DialGuard: d.guard}})
	s.Activities.Webhooks = activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
		MaximumInterval: time.Second, GiveUpAfter: time.Minute, AttemptTimeout: 3 * time.Second}
	s.StartWorker(t)

	// The targets a merchant used to probe the internal network, and the rest of SPEC §12's list.
	dns.Set("metadata.example", "169.254.169.254")
	dns.Set("db.example", "203.0.113.10", "10.0.0.5")
	dns.Set("mapped.example", "::ffff:192.168.1.1")
	for _, tc := range []struct{ url, reason string }{
		{"http://169.254.169.254/latest/meta-data/", "must use https"},
		{"https://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"},
		{"http://10.0.0.1/", "must use https"},
		{"https://10.0.0.1/", "10.0.0.1 is a private address"},
		{"http://localhost:5433/", "must use https"},
		{"https://localhost:5433/", "resolves to a loopback address"},
		{"http://[::1]:8080/", "must use https"},
		{"https://[::1]:8080/", "::1 is a loopback address"},
		{"https://172.16.3.4/", "private"},
		{"https://192.168.0.10/", "private"},
		{"https://[fc00::1]/", "private"},
		{"https://[fe80::1]/", "link-local"},
		{"https://100.64.1.1/", "carrier-grade NAT"},
		{"https://0.0.0.0/", "unspecified"},
		{"https://[::]/", "unspecified"},
		{"https://224.0.0.1/", "multicast"},
		{"https://255.255.255.255/", "broadcast"},
		{"https://[::ffff:10.0.0.1]/", "private"},
		{"https://[::ffff:a9fe:a9fe]/", "link-local"},
		{"https://metadata.example/", "the host resolves to a link-local address"},
		{"https://db.example/", "the host resolves to a private address"},
		{"https://mapped.example/", "the host resolves to a private address"},
		{"https://nowhere.invalid/", "the host does not resolve"},
	} {
		p := rig.AssertProblem(t, s.Do(t, "POST", "/v1/webhook-endpoints", map[string]any{"url": tc.url}),
			http.StatusUnprocessableEntity, refund.CodeWebhookURLNotAllowed)
		if !strings.Contains(p.Detail, tc.reason) || len(p.Errors) != 1 || p.Errors[0].Field != "url" {
			t.Errorf("%s: %+v, want the reason %q", tc.url, p, tc.reason)
		}
		if strings.Contains(p.Detail, "10.0.0.5") || strings.Contains(p.Detail, "192.168.1.1") {
			t.Errorf("%s: the answer reveals what the name resolved to: %s", tc.url, p.Detail)
		}
	}
	var list struct {
		Data []server.WebhookEndpointObject
	}
	rig.Must(t, s.Do(t, "GET", "/v1/webhook-endpoints", nil), http.StatusOK).JSON(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("refused endpoints were stored: %+v", list.Data)
	}

	// Rebinding: public when created, the metadata service when delivered to.
	dns.Set("rebind.example", "203.0.113.10")
	var ep server.WebhookEndpointObject
	rig.Must(t, s.Do(t, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://rebind.example/hooks"}), http.StatusCreated).JSON(t, &ep)
	dns.Set("rebind.example", "169.254.169.254")
	// An endpoint stored before the policy existed, straight in the database.
	legacy := uuid.Must(uuid.NewV7())
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret)
		VALUES ($1, $2, 'http://10.0.0.1/hooks', $3, 'whsec_legacy')`, legacy, s.MerchantID, refund.EventTypes); err != nil {
		t.Fatal(err)
	}

	sessionID, _ := s.Transaction(t, nil)
	var created refund.Object
	rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 1000, "currency": "EUR"}}),
		http.StatusAccepted).JSON(t, &created)
	s.WaitRefund(t, created.TransactionID.String(), 30*time.Second, refund.StatusSucceeded)

	var events struct{ Data []server.EventObject }
	rig.Must(t, s.Do(t, "GET", "/v1/events?refundId="+created.TransactionID.String(), nil), http.StatusOK).JSON(t, &events)
	t.Cleanup(func() { stopDeliveries(s, events.Data, ep.ID, legacy) })
	// The first delivery to the legacy endpoint disables it; the other event's is skipped (or,
	// claimed before the endpoint was disabled, refused the same way: nothing is ever sent).
	var rebound, old []server.WebhookAttemptObject
	err := rig.Poll(context.Background(), 30*time.Second, "refused attempts to both endpoints", func(context.Context) (bool, error) {
		rebound, old = nil, nil
		for _, e := range events.Data {
			var detail server.EventDetail
			rig.Must(t, s.Do(t, "GET", "/v1/events/"+e.ID.String(), nil), http.StatusOK).JSON(t, &detail)
			rebound, old = append(rebound, rig.AttemptsTo(detail, ep.ID)...), append(old, rig.AttemptsTo(detail, legacy)...)
		}
		return len(rebound) >= 3 && len(old) >= 1, nil
	})
	if err != nil {
		t.Fatalf("%v: rebinding %+v, legacy %+v", err, rebound, old)
	}
	for _, a := range rebound {
		if a.StatusCode != nil || a.Error != "webhook URL not allowed: the host resolves to a link-local address" {
			t.Errorf("rebinding attempt = %+v", a)
		}
	}
	if len(old) > len(events.Data) {
		t.Errorf("%d attempts to the legacy endpoint for %d events: want one at most per event", len(old), len(events.Data))
	}
	for _, a := range old {
		if a.StatusCode != nil || !strings.Contains(a.Error, "must use https") {
			t.Errorf("legacy endpoint attempt = %+v", a)
		}
	}
	var disabled server.WebhookEndpointObject
	rig.Must(t, s.Do(t, "GET", "/v1/webhook-endpoints/"+legacy.String(), nil), http.StatusOK).JSON(t, &disabled)
	if disabled.Status != "DISABLED" || !strings.Contains(disabled.DisabledReason, "must use https") {
		t.Errorf("legacy endpoint = %+v, want disabled by the policy", disabled)
	}
	rig.Must(t, s.Do(t, "GET", "/v1/webhook-endpoints/"+ep.ID.String(), nil), http.StatusOK).JSON(t, &ep)
	if ep.Status == "DISABLED" { // FAILING after its refused attempts
		t.Errorf("rebinding endpoint = %+v, want it kept: its name may resolve outside again", ep)
	}

	// The worker was about to dial only the rebound address, and the policy refused it.
	if a := d.allowed(); len(a) != 0 {
		t.Errorf("the policy allowed dials to %v", a)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.seen["169.254.169.254:443"]; !ok || len(d.seen) != 1 {
		t.Errorf("dials = %v, want only 169.254.169.254:443, refused", d.seen)
	}
	for a := range d.seen {
		if netip.MustParseAddrPort(a).Addr().IsLoopback() {
			t.Errorf("dialed %s", a)
		}
	}
}

// stopDeliveries ends the delivery workflows of events to endpoints, which
// would otherwise retry on the shared Temporal after the test.
func stopDeliveries(s *rig.Stack, events []server.EventObject, endpoints ...uuid.UUID) {
	for _, e := range events {
		for _, ep := range endpoints {
			_ = s.Temporal.TerminateWorkflow(context.Background(), workflows.WebhookWorkflowID(e.ID, ep), "", "test cleanup")
		}
	}
}
