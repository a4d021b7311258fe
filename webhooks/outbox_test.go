package webhooks_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
)

// endpointsDisabled counts the endpoints the stack's dispatcher disabled,
// as the metric does (activities.Activities.EndpointDisabled).
var endpointsDisabled sync.Map // cause → *atomic.Int64

func countDisabled(cause string) {
	n, _ := endpointsDisabled.LoadOrStore(cause, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

func disabledCount(cause string) int64 {
	n, ok := endpointsDisabled.Load(cause)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

// deadURL is a loopback URL nobody listens on: connections are refused.
func deadURL(t *testing.T) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(rig.FreePort(t))) + "/hooks"
}

// attemptsTo counts the attempts logged to an endpoint.
func attemptsTo(t *testing.T, s *rig.Stack, endpointID uuid.UUID) int {
	t.Helper()
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1`, endpointID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func getEndpoint(t *testing.T, s *rig.Stack, key string, id uuid.UUID) server.WebhookEndpointObject {
	t.Helper()
	var ep server.WebhookEndpointObject
	rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/"+id.String(), nil), http.StatusOK).JSON(t, &ep)
	return ep
}

// testDeadEndpointHeldBack: an endpoint refusing connections is FAILING
// and probed one attempt at a time on its own backoff, not once per
// pending delivery, while the merchant's live endpoint gets everything.
func testDeadEndpointHeldBack(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	live := newReceiver(t)
	createEndpoint(t, s, key, live.url())
	dead := createEndpoint(t, s, key, deadURL(t))
	const refunds = 8
	for range refunds {
		rf := createRefund(t, s, key, 2500)
		waitRefund(t, s, key, rf, refund.StatusSucceeded)
	}
	live.waitFor(t, "every event at the live endpoint", func(ds []received) bool { return len(ds) >= 2*refunds })
	var ep server.WebhookEndpointObject
	poll(t, "the dead endpoint FAILING", func() bool {
		ep = getEndpoint(t, s, key, dead.ID)
		return ep.Status == "FAILING"
	})
	if ep.FailingSince == nil || ep.ConsecutiveFailures < 1 {
		t.Fatalf("failing endpoint = %+v", ep)
	}
	time.Sleep(time.Second) // a few backoff steps
	if n := attemptsTo(t, s, dead.ID); n >= 2*refunds {
		t.Fatalf("%d attempts to the dead endpoint for %d deliveries: it is not held back as a whole", n, 2*refunds)
	}
}

// testOrderedPerRefund: a refund's events reach an endpoint in sequence
// order: refund.succeeded is not even attempted before refund.created is
// delivered, however long the endpoint was down.
func testOrderedPerRefund(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	recv.setDown(true)
	createEndpoint(t, s, key, recv.url())
	rf := createRefund(t, s, key, 2500)
	waitRefund(t, s, key, rf, refund.StatusSucceeded)
	recv.waitFor(t, "two failed attempts", func(ds []received) bool { return len(ds) >= 2 })
	recv.setDown(false)
	all := recv.waitFor(t, "both events", func(ds []received) bool { return len(deliveredTypes(ds)) == 2 })
	createdAt := -1
	for i, d := range all {
		ev := d.event(t)
		if ev.Type == refund.EventRefundCreated && d.status/100 == 2 && createdAt < 0 {
			createdAt = i
		}
		if ev.Type == refund.EventRefundSucceeded && (createdAt < 0 || i < createdAt) {
			t.Fatalf("refund.succeeded attempted (request %d) before refund.created was delivered (%d)", i, createdAt)
		}
	}
}

// testSlowEndpointBounded: a slow endpoint never has more than the
// per-endpoint bound of attempts in flight, however many are due.
func testSlowEndpointBounded(t *testing.T, s *rig.Stack) {
	var inFlight, most atomic.Int64
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(300 * time.Millisecond)
		inFlight.Add(-1)
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	_, key := s.NewMerchantKey(t, nil)
	createEndpoint(t, s, key, srv.URL+"/slow")
	const refunds = 6
	for range refunds {
		createRefund(t, s, key, 2500)
	}
	poll(t, "every event at the slow endpoint", func() bool { return served.Load() >= 2*refunds })
	bound := int64(activities.DefaultDispatchOptions().PerEndpoint)
	if m := most.Load(); m > bound || m < 2 {
		t.Fatalf("at most %d attempts in flight at the slow endpoint, want 2..%d", m, bound)
	}
}

// testFailingTooLongDisabled: an endpoint whose every attempt failed for
// DisableAfter is disabled on its next failure: its pending deliveries are
// skipped, the merchant's other endpoints get webhook_endpoint.disabled,
// and the metric counts it.
func testFailingTooLongDisabled(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	other := newReceiver(t)
	otherEp := createEndpoint(t, s, key, other.url(), refund.EventEndpointDisabled)
	dead := createEndpoint(t, s, key, deadURL(t))
	rf := createRefund(t, s, key, 2500)
	waitRefund(t, s, key, rf, refund.StatusSucceeded)
	poll(t, "the dead endpoint FAILING", func() bool { return getEndpoint(t, s, key, dead.ID).Status == "FAILING" })
	before := disabledCount(activities.DisabledFailing)
	// It has been failing for longer than DisableAfter (72 h by default).
	if _, err := s.Pool.Exec(context.Background(), `UPDATE webhook_endpoints SET failing_since = now() - interval '4 days', retry_at = NULL
		WHERE id = $1`, dead.ID); err != nil {
		t.Fatal(err)
	}
	var ep server.WebhookEndpointObject
	poll(t, "the endpoint disabled", func() bool {
		ep = getEndpoint(t, s, key, dead.ID)
		return ep.Status == "DISABLED"
	})
	if !strings.Contains(ep.DisabledReason, "every attempt failed since") || ep.DisabledAt == nil {
		t.Fatalf("disabled endpoint = %+v", ep)
	}
	got := other.waitFor(t, "webhook_endpoint.disabled", func(ds []received) bool { return len(deliveredTypes(ds)) == 1 })
	ev := got[0].event(t)
	var data struct {
		Endpoint struct {
			ID     uuid.UUID `json:"id"`
			Status string    `json:"status"`
		} `json:"endpoint"`
	}
	if err := json.Unmarshal(ev.Data, &data); err != nil || ev.Type != refund.EventEndpointDisabled || data.Endpoint.ID != dead.ID ||
		data.Endpoint.Status != "DISABLED" {
		t.Fatalf("event %+v data %s (%v)", ev, ev.Data, err)
	}
	if err := webhooks.Verify(got[0].body, got[0].header.Get(webhooks.SignatureHeader), otherEp.Secret, 0, time.Now()); err != nil {
		t.Fatalf("webhook_endpoint.disabled does not verify: %v", err)
	}
	events := listEvents(t, s, key, "?type="+refund.EventEndpointDisabled)
	if len(events) != 1 || events[0].RefundID != nil {
		t.Fatalf("events = %+v", events)
	}
	for _, e := range listEvents(t, s, key, "?refundId="+rf) {
		statuses, err := s.Store.EventDeliveryStatuses(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st := statuses[dead.ID]; st != refund.DeliverySkipped {
			t.Fatalf("%s to the disabled endpoint is %s, want SKIPPED", e.Type, st)
		}
	}
	if disabledCount(activities.DisabledFailing) <= before {
		t.Fatal("the disabled endpoint was not counted")
	}
}

// testDeletedMidAttempt: an endpoint deleted while an attempt to it is in
// flight gets nothing more: the failed attempt is logged, the delivery
// stays skipped, never pending again.
func testDeletedMidAttempt(t *testing.T, s *rig.Stack) {
	inFlight, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		select {
		case inFlight <- struct{}{}:
		default:
		}
		<-release
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)
	_, key := s.NewMerchantKey(t, nil)
	ep := createEndpoint(t, s, key, srv.URL+"/hooks", refund.EventRefundCreated)
	rf := createRefund(t, s, key, 2500)
	<-inFlight
	rig.Must(t, s.DoWithKey(t, key, "DELETE", "/v1/webhook-endpoints/"+ep.ID.String(), nil), http.StatusNoContent)
	close(release)
	created := listEvents(t, s, key, "?refundId="+rf+"&type="+refund.EventRefundCreated)[0]
	poll(t, "the attempt logged", func() bool { return attemptsTo(t, s, ep.ID) == 1 })
	waitDeliveryStatus(t, s, created.ID, ep.ID, refund.DeliverySkipped)
	time.Sleep(300 * time.Millisecond) // past the retry the attempt asked for
	if n := attemptsTo(t, s, ep.ID); n != 1 {
		t.Fatalf("%d attempts to the deleted endpoint, want the one in flight", n)
	}
	waitDeliveryStatus(t, s, created.ID, ep.ID, refund.DeliverySkipped)
}
