package webhooks_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/google/uuid"
)

// testRedelivery: a redelivery queues the event again and delivers the same
// event again; endpoints not subscribed to the type get nothing.
func testRedelivery(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	ep := createEndpoint(t, s, key, recv.url())
	canceledOnly := newReceiver(t)
	createEndpoint(t, s, key, canceledOnly.url(), refund.EventRefundCanceled)
	rf := createRefund(t, s, key, 2500)
	waitRefund(t, s, key, rf, refund.StatusSucceeded)
	recv.waitFor(t, "both events", func(ds []received) bool { return len(deliveredTypes(ds)) == 2 })
	events := listEvents(t, s, key, "?refundId="+rf)
	created := events[1]
	waitAttempts(t, s, key, created.ID, func(as []server.WebhookAttemptObject) bool { return len(as) == 1 })

	var res server.RedeliveryResult
	r := s.DoWithKey(t, key, "POST", "/v1/events/"+created.ID.String()+"/redeliver", nil, "Idempotency-Key", "redeliver-"+created.ID.String())
	rig.Must(t, r, http.StatusAccepted).JSON(t, &res)
	if res.EventID != created.ID || len(res.Deliveries) != 1 || res.Deliveries[0].EndpointID != ep.ID ||
		res.Deliveries[0].Status != refund.DeliveryPending {
		t.Fatalf("redelivery = %+v", res)
	}
	all := recv.waitFor(t, "the redelivered event", func(ds []received) bool { return countEvent(t, ds, created.ID) == 2 })
	var bodies [][]byte
	for _, d := range all {
		if d.event(t).ID == created.ID {
			bodies = append(bodies, d.body)
		}
	}
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Fatalf("redelivered body differs:\n%s\n%s", bodies[0], bodies[1])
	}
	detail := waitAttempts(t, s, key, created.ID, func(as []server.WebhookAttemptObject) bool { return len(as) == 2 })
	if detail.Attempts[1].Attempt != 2 || !detail.Attempts[1].Succeeded {
		t.Fatalf("attempts after redelivery = %+v", detail.Attempts)
	}
	waitDeliveryStatus(t, s, created.ID, ep.ID, refund.DeliveryDelivered)

	// Replaying the request does not redeliver again; a new request does.
	r = s.DoWithKey(t, key, "POST", "/v1/events/"+created.ID.String()+"/redeliver", nil, "Idempotency-Key", "redeliver-"+created.ID.String())
	if rig.Must(t, r, http.StatusAccepted); r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("same Idempotency-Key was not replayed")
	}
	var again server.RedeliveryResult
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/events/"+created.ID.String()+"/redeliver", map[string]any{"endpointId": ep.ID}), http.StatusAccepted).JSON(t, &again)
	if len(again.Deliveries) != 1 || again.Deliveries[0].EndpointID != ep.ID {
		t.Fatalf("second redelivery = %+v", again)
	}
	recv.waitFor(t, "the second redelivery", func(ds []received) bool { return countEvent(t, ds, created.ID) == 3 })
	waitDeliveryStatus(t, s, created.ID, ep.ID, refund.DeliveryDelivered)
	if n := len(canceledOnly.all()); n != 0 {
		t.Fatalf("an endpoint subscribed to rf.canceled only got %d requests", n)
	}
	if n := countEvent(t, recv.all(), created.ID); n != 3 {
		t.Fatalf("event delivered %d times, want 3 (first, redelivery, second redelivery)", n)
	}
}

// testGoneDisablesEndpoint: a 410 disables the endpoint and ends its deliveries.
func testGoneDisablesEndpoint(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	recv.setStatus(http.StatusGone)
	ep := createEndpoint(t, s, key, recv.url())
	rf := createRefund(t, s, key, 2500)
	waitRefund(t, s, key, rf, refund.StatusSucceeded)

	var got server.WebhookEndpointObject
	poll(t, "endpoint disabled", func() bool {
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/"+ep.ID.String(), nil), http.StatusOK).JSON(t, &got)
		return got.Status == "DISABLED"
	})
	if got.DisabledAt == nil || !strings.Contains(got.DisabledReason, "410") || got.Secret != "" {
		t.Fatalf("disabled endpoint = %+v", got)
	}
	events := listEvents(t, s, key, "?refundId="+rf)
	if len(events) != 2 {
		t.Fatalf("events = %+v", events)
	}
	// Both deliveries end skipped, without retrying: the one answered 410,
	// and the other one with it (pending, or queued after the endpoint was
	// disabled: then not queued at all).
	for _, e := range events {
		statuses, err := s.Store.EventDeliveryStatuses(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st, ok := statuses[ep.ID]; ok {
			waitDeliveryStatus(t, s, e.ID, ep.ID, refund.DeliverySkipped)
		} else if e.Type == refund.EventRefundCreated {
			t.Fatalf("refund.created was not queued for the endpoint (%q)", st)
		}
	}
	n := len(recv.all())
	if n < 1 || n > 2 {
		t.Fatalf("endpoint answering 410 got %d requests, want 1 or 2 (one per event at most)", n)
	}
	var detail server.EventDetail
	rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events/"+events[1].ID.String(), nil), http.StatusOK).JSON(t, &detail)
	for _, a := range detail.Attempts {
		if a.Succeeded || a.StatusCode == nil || *a.StatusCode != http.StatusGone {
			t.Fatalf("attempt %+v, want a failed 410", a)
		}
	}
	// A disabled endpoint receives no redelivery.
	r := s.DoWithKey(t, key, "POST", "/v1/events/"+events[0].ID.String()+"/redeliver", map[string]any{"endpointId": ep.ID})
	rig.AssertProblem(t, r, http.StatusConflict, refund.CodeWebhookEndpointDisabled)
	var res server.RedeliveryResult
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/events/"+events[0].ID.String()+"/redeliver", nil), http.StatusAccepted).JSON(t, &res)
	if len(res.Deliveries) != 0 {
		t.Fatalf("redelivery went to a disabled endpoint: %+v", res)
	}
	if len(recv.all()) != n {
		t.Fatal("the disabled endpoint received another request")
	}
}

// testReconcilerRedispatch: an event left undispatched (written by the
// previous release, whose workflow crashed before starting its
// deliveries) is queued by the reconciler and delivered, once.
func testReconcilerRedispatch(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	rf := createRefund(t, s, key, 2500)
	waitRefund(t, s, key, rf, refund.StatusSucceeded)
	events := listEvents(t, s, key, "?refundId="+rf)
	lost := events[0]

	// The endpoint appears after the event; then the event looks lost, as
	// one written by the previous release whose workflow died before it
	// started the deliveries (events are queued as they are written now).
	recv := newReceiver(t)
	ep := createEndpoint(t, s, key, recv.url())
	ctx := context.Background()
	if _, err := s.Pool.Exec(ctx, `UPDATE refund_events SET dispatched_at = NULL, created_at = now() - interval '2 minutes'
		WHERE id = $1`, lost.ID); err != nil {
		t.Fatal(err)
	}
	report := rig.Reconcile(t, s.Rig)
	if report.EventsRedispatched < 1 || report.DeliveriesQueued < 1 {
		t.Fatalf("report = %+v", report)
	}
	ds := recv.waitFor(t, "the re-dispatched event", func(ds []received) bool { return countEvent(t, ds, lost.ID) == 1 })
	if err := webhooks.Verify(ds[0].body, ds[0].header.Get(webhooks.SignatureHeader), ep.Secret, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	var dispatched *time.Time
	if err := s.Pool.QueryRow(ctx, `SELECT dispatched_at FROM refund_events WHERE id = $1`, lost.ID).Scan(&dispatched); err != nil || dispatched == nil {
		t.Fatalf("event not marked dispatched (%v)", err)
	}
	waitDeliveryStatus(t, s, lost.ID, ep.ID, refund.DeliveryDelivered)
	// A second pass finds nothing to do for it and queues no duplicate.
	rig.Reconcile(t, s.Rig)
	time.Sleep(300 * time.Millisecond) // several dispatcher polls
	if n := countEvent(t, recv.all(), lost.ID); n != 1 {
		t.Fatalf("event delivered %d times after two passes", n)
	}
}

// testQueuedWithTheirEvents: an event's deliveries are queued in the
// transaction that writes it, so they need no workflow at all: a refund
// whose local activities run twice each (a worker died before the workflow
// recorded their result) and no workflow ever dispatches anything still
// has each event delivered, once.
func testQueuedWithTheirEvents(t *testing.T, s *rig.Stack) {
	ctx := context.Background()
	merchantID, key := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	ep := createEndpoint(t, s, key, recv.url())
	// The refund is written as the API would, but no workflow runs it: the
	// test plays the workflow's local activities itself.
	r, err := s.Store.CreateRefund(ctx, refund.NewRefund{MerchantID: merchantID, TransactionID: uuid.MustParse(createTransaction(t, s, key)),
		Amount: 2500, Currency: "EUR", Route: func(refund.Transaction, string) (refund.Method, error) { return refund.MethodProviderRefund, nil }})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if plan, err := s.Activities.BeginRefund(ctx, r.ID); err != nil || len(plan.Deliveries) != 0 {
			t.Fatalf("BeginRefund: deliveries %v, error %v; want none (they are queued)", plan.Deliveries, err)
		}
	}
	if err := s.Activities.MarkProcessing(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := s.Activities.FinalizeRefund(ctx, activities.FinalizeInput{RefundID: r.ID,
			Outcome: refund.Outcome{Status: refund.StatusSucceeded, ProviderReference: "re_" + uuid.NewString()[:8], Attempts: 1}})
		if err != nil || res.Status != refund.StatusSucceeded || len(res.Deliveries) != 0 {
			t.Fatalf("finalize: %+v, %v", res, err)
		}
	}
	events := listEvents(t, s, key, "?refundId="+r.ID.String())
	if len(events) != 2 {
		t.Fatalf("%d events, want refund.created and refund.succeeded", len(events))
	}
	recv.waitFor(t, "both events", func(ds []received) bool { return len(deliveredTypes(ds)) == 2 })
	for _, e := range events {
		waitDeliveryStatus(t, s, e.ID, ep.ID, refund.DeliveryDelivered)
	}
	if n := len(recv.all()); n != 2 {
		t.Fatalf("%d deliveries, want each event once", n)
	}
	var undispatched int
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FROM refund_events WHERE refund_id = $1 AND dispatched_at IS NULL`, r.ID).Scan(&undispatched); err != nil || undispatched != 0 {
		t.Fatalf("%d events undispatched (%v)", undispatched, err)
	}
}
