package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
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

// fastWebhooks keeps retries within seconds: 200 ms doubling to 1 s apart.
var fastWebhooks = activities.WebhookPolicy{
	InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second,
	GiveUpAfter: 2 * time.Minute, AttemptTimeout: 3 * time.Second,
}

const waitLimit = 30 * time.Second

// TestWebhooks runs every webhook integration test on one stack: one API,
// one sandbox PSP and one worker on the package's task queue (workers of
// several stacks would share that queue and take each other's tasks).
func TestWebhooks(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	s.Activities.Webhooks = fastWebhooks
	s.StartWorker(t)

	t.Run("RetriedUntilDeliveredWhileOthersFlow", func(t *testing.T) { t.Parallel(); testRetriedUntilDelivered(t, s) })
	t.Run("GoneDisablesEndpoint", func(t *testing.T) { t.Parallel(); testGoneDisablesEndpoint(t, s) })
	t.Run("MerchantIsolation", func(t *testing.T) { t.Parallel(); testMerchantIsolation(t, s) })
	t.Run("Redelivery", func(t *testing.T) { t.Parallel(); testRedelivery(t, s) })
	t.Run("SecretRotation", func(t *testing.T) { t.Parallel(); testSecretRotation(t, s) })
	t.Run("EndpointAPI", func(t *testing.T) { t.Parallel(); testEndpointAPI(t, s) })
	t.Run("EventsAPI", func(t *testing.T) { t.Parallel(); testEventsAPI(t, s) })
	t.Run("CanceledEvent", func(t *testing.T) { t.Parallel(); testCanceledEvent(t, s) })
	t.Run("ReconcilerRedispatchesLostEvents", func(t *testing.T) { t.Parallel(); testReconcilerRedispatch(t, s) })
	t.Run("QueuedWithTheirEvents", func(t *testing.T) { t.Parallel(); testQueuedWithTheirEvents(t, s) })
}

// testRetriedUntilDelivered: an endpoint that answers 500 gets every event
// at least once after retries, with stable ids and valid signatures, and
// every attempt is logged; meanwhile another merchant's refund and webhooks
// are not delayed, and the refund itself never waits for its webhooks.
func testRetriedUntilDelivered(t *testing.T, s *rig.Stack) {
	_, keyA := s.NewMerchantKey(t, nil)
	recvA := newReceiver(t)
	recvA.setDown(true)
	epA := createEndpoint(t, s, keyA, recvA.url())
	refundA := createRefund(t, s, keyA, 2500)

	// The refund completes while its endpoint is down.
	waitRefund(t, s, keyA, refundA, refund.StatusSucceeded)
	failures := recvA.waitFor(t, "three failed attempts", func(ds []received) bool { return len(ds) >= 3 })

	// Another merchant with a healthy endpoint is served at once.
	_, keyB := s.NewMerchantKey(t, nil)
	recvB := newReceiver(t)
	createEndpoint(t, s, keyB, recvB.url())
	refundB := createRefund(t, s, keyB, 3000)
	waitRefund(t, s, keyB, refundB, refund.StatusSucceeded)
	completedB := time.Now()
	recvB.waitForWithin(t, 5*time.Second, "refund B's two events", func(ds []received) bool {
		return deliveredTypes(ds)[refund.EventRefundCreated] && deliveredTypes(ds)[refund.EventRefundSucceeded]
	})
	if lag := time.Since(completedB); lag > 5*time.Second {
		t.Fatalf("refund B's webhooks arrived %s after it completed", lag)
	}
	for _, d := range recvB.all() {
		if !strings.Contains(string(d.body), refundB) || strings.Contains(string(d.body), refundA) {
			t.Fatalf("merchant B received an event not about its refund: %s", d.body)
		}
	}
	if still := recvA.all(); len(deliveredTypes(still)) != 0 {
		t.Fatalf("endpoint A was down but something was delivered: %d requests", len(still))
	}

	// Endpoint A comes back: both events arrive.
	recvA.setDown(false)
	all := recvA.waitFor(t, "both events of refund A delivered", func(ds []received) bool {
		return deliveredTypes(ds)[refund.EventRefundCreated] && deliveredTypes(ds)[refund.EventRefundSucceeded]
	})
	if len(all) <= len(failures) {
		t.Fatalf("no retry after the endpoint came back")
	}

	events := listEvents(t, s, keyA, "?refundId="+refundA)
	if len(events) != 2 || events[0].Type != refund.EventRefundSucceeded || events[0].Sequence != 2 ||
		events[1].Type != refund.EventRefundCreated || events[1].Sequence != 1 {
		t.Fatalf("events of refund A (newest first) = %+v", events)
	}
	byID := map[uuid.UUID]server.EventObject{}
	for _, e := range events {
		byID[e.ID] = e
	}
	bodies := map[uuid.UUID][]byte{}
	for i, d := range all {
		ev := d.event(t)
		known, ok := byID[ev.ID]
		if !ok {
			t.Fatalf("request %d carries unknown event id %s", i, ev.ID)
		}
		if got := d.header.Get(webhooks.EventIDHeader); got != ev.ID.String() {
			t.Fatalf("request %d: %s = %q, body id %s", i, webhooks.EventIDHeader, got, ev.ID)
		}
		if ev.Type != known.Type || ev.Sequence != known.Sequence || !ev.CreatedAt.Equal(known.CreatedAt) {
			t.Fatalf("request %d: body %+v does not match the event %+v", i, ev, known)
		}
		if first, seen := bodies[ev.ID]; seen && !bytes.Equal(first, d.body) {
			t.Fatalf("event %s changed between attempts:\n%s\n%s", ev.ID, first, d.body)
		}
		bodies[ev.ID] = d.body
		if ct := d.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("request %d: Content-Type %q", i, ct)
		}
		if err := webhooks.Verify(d.body, d.header.Get(webhooks.SignatureHeader), epA.Secret, webhooks.DefaultTolerance, time.Now()); err != nil {
			t.Fatalf("request %d does not verify with the endpoint secret: %v", i, err)
		}
		var data struct{ Refund refund.Object }
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.Refund.TransactionID.String() != refundA {
			t.Fatalf("request %d: data.refund = %+v (%v)", i, data.Refund, err)
		}
		if ev.Type == refund.EventRefundSucceeded && data.Refund.Status != refund.StatusSucceeded {
			t.Fatalf("refund.succeeded carries status %s", data.Refund.Status)
		}
	}

	// Every attempt is logged with its status code, in order.
	for id := range byID {
		sent := 0
		for _, d := range all {
			if d.event(t).ID == id {
				sent++
			}
		}
		detail := waitAttempts(t, s, keyA, id, func(as []server.WebhookAttemptObject) bool {
			return len(as) >= sent && slices.ContainsFunc(as, func(a server.WebhookAttemptObject) bool { return a.Succeeded })
		})
		var failed, ok int
		for i, a := range detail.Attempts {
			if a.Attempt != i+1 || a.EndpointID != epA.ID {
				t.Fatalf("event %s attempt %d = %+v", id, i+1, a)
			}
			switch {
			case a.Succeeded && a.StatusCode != nil && *a.StatusCode == http.StatusOK && a.Error == "":
				ok++
			case !a.Succeeded && a.StatusCode != nil && *a.StatusCode == http.StatusInternalServerError && strings.Contains(a.Error, "500"):
				failed++
			default:
				t.Fatalf("event %s: unexpected attempt %+v", id, a)
			}
		}
		if ok != 1 || failed+ok != sent {
			t.Fatalf("event %s: %d failed + %d ok attempts logged, receiver saw %d", id, failed, ok, sent)
		}
		if failed == 0 && detail.Type == refund.EventRefundCreated {
			t.Fatalf("refund.created was never retried: %+v", detail.Attempts)
		}
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

// testMerchantIsolation: another merchant's endpoints and events are 404
// and never listed.
func testMerchantIsolation(t *testing.T, s *rig.Stack) {
	_, keyA := s.NewMerchantKey(t, nil)
	_, keyB := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	epA := createEndpoint(t, s, keyA, recv.url())
	refundA := createRefund(t, s, keyA, 2500)
	events := listEvents(t, s, keyA, "?refundId="+refundA)
	if len(events) == 0 {
		t.Fatal("merchant A has no event")
	}
	ev := events[0].ID.String()
	epPath := "/v1/webhook-endpoints/" + epA.ID.String()

	rig.AssertProblem(t, s.DoWithKey(t, keyB, "GET", epPath, nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, keyB, "DELETE", epPath, nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, keyB, "POST", epPath+"/rotate-secret", nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, keyB, "GET", "/v1/events/"+ev, nil), http.StatusNotFound, refund.CodeEventNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, keyB, "POST", "/v1/events/"+ev+"/redeliver", nil), http.StatusNotFound, refund.CodeEventNotFound)

	var list struct {
		Data []server.WebhookEndpointObject
	}
	rig.Must(t, s.DoWithKey(t, keyB, "GET", "/v1/webhook-endpoints", nil), http.StatusOK).JSON(t, &list)
	if len(list.Data) != 0 {
		t.Fatalf("merchant B lists endpoints %+v", list.Data)
	}
	if got := listEvents(t, s, keyB, ""); len(got) != 0 {
		t.Fatalf("merchant B lists events %+v", got)
	}
	if got := listEvents(t, s, keyB, "?refundId="+refundA); len(got) != 0 {
		t.Fatalf("merchant B lists merchant A's refund events %+v", got)
	}

	// B cannot aim a redelivery of its own event at A's endpoint.
	refundB := createRefund(t, s, keyB, 2500)
	evB := listEvents(t, s, keyB, "?refundId="+refundB)[0].ID.String()
	r := s.DoWithKey(t, keyB, "POST", "/v1/events/"+evB+"/redeliver", map[string]any{"endpointId": epA.ID})
	rig.AssertProblem(t, r, http.StatusNotFound, refund.CodeWebhookEndpointNotFound)

	// A still owns everything.
	rig.Must(t, s.DoWithKey(t, keyA, "GET", epPath, nil), http.StatusOK)
	rig.Must(t, s.DoWithKey(t, keyA, "GET", "/v1/events/"+ev, nil), http.StatusOK)
	waitRefund(t, s, keyA, refundA, refund.StatusSucceeded)
	waitRefund(t, s, keyB, refundB, refund.StatusSucceeded)
	got := recv.waitFor(t, "merchant A's two events", func(ds []received) bool { return len(deliveredTypes(ds)) == 2 })
	if len(got) != 2 {
		t.Fatalf("merchant A's healthy endpoint got %d requests, want 2", len(got))
	}
	for _, d := range got {
		if strings.Contains(string(d.body), refundB) {
			t.Fatalf("merchant A's endpoint received merchant B's event: %s", d.body)
		}
	}
}

// testRedelivery: a redelivery starts a fresh workflow and delivers the same
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

// testSecretRotation: during the grace period deliveries carry both
// signatures and verify with either secret; after it, only the new one.
func testSecretRotation(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	recv := newReceiver(t)
	ep := createEndpoint(t, s, key, recv.url())
	path := "/v1/webhook-endpoints/" + ep.ID.String() + "/rotate-secret"

	var rotated server.WebhookEndpointObject
	rig.Must(t, s.DoWithKey(t, key, "POST", path, nil), http.StatusOK).JSON(t, &rotated)
	if rotated.Secret == "" || rotated.Secret == ep.Secret || !strings.HasPrefix(rotated.Secret, webhooks.SecretPrefix) {
		t.Fatalf("rotated secret %q (old %q)", rotated.Secret, ep.Secret)
	}
	if rotated.PreviousSecretExpiresAt == nil || time.Until(*rotated.PreviousSecretExpiresAt) < 23*time.Hour ||
		time.Until(*rotated.PreviousSecretExpiresAt) > 25*time.Hour {
		t.Fatalf("previous secret expires at %v, want in 24 h", rotated.PreviousSecretExpiresAt)
	}
	rf := createRefund(t, s, key, 2500)
	ds := recv.waitFor(t, "both events", func(ds []received) bool { return len(deliveredTypes(ds)) == 2 })
	for _, d := range ds {
		h := d.header.Get(webhooks.SignatureHeader)
		if strings.Count(h, "v1=") != 2 {
			t.Fatalf("during the grace period the header has %d signatures: %s", strings.Count(h, "v1="), h)
		}
		for name, secret := range map[string]string{"new": rotated.Secret, "old": ep.Secret} {
			if err := webhooks.Verify(d.body, h, secret, 0, time.Now()); err != nil {
				t.Fatalf("does not verify with the %s secret: %v", name, err)
			}
		}
		if err := webhooks.Verify(d.body, h, "whsec_wrong", 0, time.Now()); !errors.Is(err, webhooks.ErrNoMatch) {
			t.Fatalf("verifies with a wrong secret: %v", err)
		}
	}

	// Rotating with no grace period retires the previous secret at once.
	var now server.WebhookEndpointObject
	rig.Must(t, s.DoWithKey(t, key, "POST", path, map[string]any{"gracePeriodSeconds": 0}), http.StatusOK).JSON(t, &now)
	if now.PreviousSecretExpiresAt != nil {
		t.Fatalf("previous secret still valid until %v", now.PreviousSecretExpiresAt)
	}
	events := listEvents(t, s, key, "?refundId="+rf)
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/events/"+events[0].ID.String()+"/redeliver", nil), http.StatusAccepted)
	after := recv.waitFor(t, "the redelivery", func(got []received) bool { return len(got) > len(ds) })
	last := after[len(after)-1]
	h := last.header.Get(webhooks.SignatureHeader)
	if strings.Count(h, "v1=") != 1 {
		t.Fatalf("after the grace period the header has %d signatures: %s", strings.Count(h, "v1="), h)
	}
	if err := webhooks.Verify(last.body, h, now.Secret, 0, time.Now()); err != nil {
		t.Fatalf("does not verify with the current secret: %v", err)
	}
	if err := webhooks.Verify(last.body, h, rotated.Secret, 0, time.Now()); !errors.Is(err, webhooks.ErrNoMatch) {
		t.Fatalf("still verifies with the retired secret: %v", err)
	}

	rig.AssertProblem(t, s.DoWithKey(t, key, "POST", path, map[string]any{"gracePeriodSeconds": -1}), http.StatusUnprocessableEntity, refund.CodeValidation)
	rig.AssertProblem(t, s.DoWithKey(t, key, "POST", path, map[string]any{"grace": 1}), http.StatusBadRequest, server.CodeMalformed)
}

// testEndpointAPI: validation, defaults, secret shown once, delete, scope.
func testEndpointAPI(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	for _, tc := range []struct {
		name  string
		body  any
		field string
	}{
		{"no url", map[string]any{}, "url"},
		{"ftp url", map[string]any{"url": "ftp://example.com/hook"}, "url"},
		{"relative url", map[string]any{"url": "/hook"}, "url"},
		{"no host", map[string]any{"url": "https:///hook"}, "url"},
		{"credentials", map[string]any{"url": "https://user:pw@example.com/hook"}, "url"},
		{"too long", map[string]any{"url": "https://example.com/" + strings.Repeat("a", 2100)}, "url"},
		{"no event types", map[string]any{"url": "https://example.com", "eventTypes": []string{}}, "eventTypes"},
		{"unknown event type", map[string]any{"url": "https://example.com", "eventTypes": []string{"refund.exploded"}}, "eventTypes[0]"},
		{"duplicate event type", map[string]any{"url": "https://example.com", "eventTypes": []string{"refund.failed", "refund.failed"}}, "eventTypes[1]"},
	} {
		p := rig.AssertProblem(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", tc.body), http.StatusUnprocessableEntity, refund.CodeValidation)
		if len(p.Errors) == 0 || p.Errors[0].Field != tc.field {
			t.Fatalf("%s: errors %+v, want field %s", tc.name, p.Errors, tc.field)
		}
	}
	rig.AssertProblem(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com", "secret": "x"}),
		http.StatusBadRequest, server.CodeMalformed)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/not-a-uuid", nil), http.StatusBadRequest, server.CodeMalformed)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/"+uuid.NewString(), nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)

	all := createEndpoint(t, s, key, "https://example.com/all")
	if !slices.Equal(all.EventTypes, refund.EventTypes) || all.Status != "ENABLED" || !strings.HasPrefix(all.Secret, webhooks.SecretPrefix) {
		t.Fatalf("created endpoint = %+v", all)
	}
	some := createEndpoint(t, s, key, "http://example.com/failed", refund.EventRefundFailed)
	if !slices.Equal(some.EventTypes, []string{refund.EventRefundFailed}) {
		t.Fatalf("event types %v", some.EventTypes)
	}
	var got server.WebhookEndpointObject
	r := rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/"+all.ID.String(), nil), http.StatusOK)
	r.JSON(t, &got)
	if got.Secret != "" || strings.Contains(string(r.Body), all.Secret) || got.URL != all.URL {
		t.Fatalf("GET shows %s", r.Body)
	}
	var list struct {
		Data []server.WebhookEndpointObject
	}
	r = rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints", nil), http.StatusOK)
	r.JSON(t, &list)
	if len(list.Data) != 2 || list.Data[0].ID != all.ID || list.Data[1].ID != some.ID || strings.Contains(string(r.Body), "whsec_") {
		t.Fatalf("list = %s", r.Body)
	}

	rig.Must(t, s.DoWithKey(t, key, "DELETE", "/v1/webhook-endpoints/"+all.ID.String(), nil), http.StatusNoContent)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints/"+all.ID.String(), nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, key, "DELETE", "/v1/webhook-endpoints/"+all.ID.String(), nil), http.StatusNotFound, refund.CodeWebhookEndpointNotFound)
	rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/webhook-endpoints", nil), http.StatusOK).JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != some.ID {
		t.Fatalf("after delete: %+v", list.Data)
	}

	// Limit of live endpoints per merchant.
	for i := 1; i < refund.MaxWebhookEndpoints; i++ {
		createEndpoint(t, s, key, fmt.Sprintf("https://example.com/%d", i))
	}
	rig.AssertProblem(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.com/one-too-many"}),
		http.StatusConflict, refund.CodeWebhookEndpointLimit)

	// Idempotent create: the same key replays the same endpoint (and secret).
	_, key2 := s.NewMerchantKey(t, nil)
	var first, second server.WebhookEndpointObject
	body := map[string]any{"url": "https://example.com/idem"}
	rig.Must(t, s.DoWithKey(t, key2, "POST", "/v1/webhook-endpoints", body, "Idempotency-Key", "ep-1"), http.StatusCreated).JSON(t, &first)
	rig.Must(t, s.DoWithKey(t, key2, "POST", "/v1/webhook-endpoints", body, "Idempotency-Key", "ep-1"), http.StatusCreated).JSON(t, &second)
	if first.ID != second.ID || first.Secret != second.Secret {
		t.Fatalf("replayed create made another endpoint: %s vs %s", first.ID, second.ID)
	}

	// Scope webhooks:manage is required.
	_, readOnly := s.NewMerchantKey(t, nil, refund.ScopeRefundsRead, refund.ScopeRefundsWrite)
	for _, path := range []string{"/v1/webhook-endpoints", "/v1/events"} {
		rig.AssertProblem(t, s.DoWithKey(t, readOnly, "GET", path, nil), http.StatusForbidden, server.CodeForbidden)
	}
	rig.AssertProblem(t, s.DoWithKey(t, readOnly, "POST", "/v1/webhook-endpoints", body), http.StatusForbidden, server.CodeForbidden)
	rig.AssertProblem(t, s.DoWithKey(t, "", "GET", "/v1/events", nil), http.StatusUnauthorized, server.CodeUnauthorized)
}

// testEventsAPI: filters, newest first, cursor pagination, the refund
// object in data, and the events written with each status change.
func testEventsAPI(t *testing.T, s *rig.Stack) {
	_, key := s.NewMerchantKey(t, nil)
	ok := createRefund(t, s, key, 2500)
	declined := createRefund(t, s, key, 2501) // sandbox: amounts ending in 01 are declined
	waitRefund(t, s, key, ok, refund.StatusSucceeded)
	waitRefund(t, s, key, declined, refund.StatusDeclined)

	all := listEvents(t, s, key, "")
	if len(all) != 4 {
		t.Fatalf("%d events, want 4: %+v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID.String() <= all[i].ID.String() {
			t.Fatalf("events not newest first: %s before %s", all[i-1].ID, all[i].ID)
		}
	}
	failed := listEvents(t, s, key, "?type="+refund.EventRefundFailed)
	if len(failed) != 1 || failed[0].RefundID.String() != declined || failed[0].Sequence != 2 {
		t.Fatalf("refund.failed events = %+v", failed)
	}
	var data struct{ Refund refund.Object }
	if err := json.Unmarshal(failed[0].Data, &data); err != nil || data.Refund.Status != refund.StatusDeclined || data.Refund.Failure == nil {
		t.Fatalf("refund.failed data = %s (%v)", failed[0].Data, err)
	}
	mine := listEvents(t, s, key, "?refundId="+ok+"&type="+refund.EventRefundCreated)
	if len(mine) != 1 || mine[0].Sequence != 1 || mine[0].RefundID.String() != ok {
		t.Fatalf("refund.created of %s = %+v", ok, mine)
	}

	// Pages of one, following nextCursor, give the same events in the same order.
	var paged []server.EventObject
	cursor := ""
	for range 10 {
		var page struct {
			Data       []server.EventObject
			NextCursor string
		}
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events?limit=1"+cursor, nil), http.StatusOK).JSON(t, &page)
		paged = append(paged, page.Data...)
		if page.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + page.NextCursor
	}
	if len(paged) != len(all) {
		t.Fatalf("paged %d events, want %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i].ID != all[i].ID {
			t.Fatalf("page order differs at %d", i)
		}
	}

	var detail server.EventDetail
	r := rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events/"+all[0].ID.String(), nil), http.StatusOK)
	r.JSON(t, &detail)
	if detail.ID != all[0].ID || detail.Attempts == nil || !strings.Contains(string(r.Body), `"attempts":[]`) {
		t.Fatalf("event without endpoints = %s", r.Body)
	}
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/events?type=refund.exploded", nil), http.StatusBadRequest, server.CodeMalformed)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/events?refundId=nope", nil), http.StatusBadRequest, server.CodeMalformed)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/events?limit=0", nil), http.StatusBadRequest, server.CodeMalformed)
	rig.AssertProblem(t, s.DoWithKey(t, key, "GET", "/v1/events/"+uuid.NewString(), nil), http.StatusNotFound, refund.CodeEventNotFound)
}

// testCanceledEvent: canceling a refund (here one awaiting approval) writes
// refund.canceled, delivered to an endpoint subscribed to that type only.
func testCanceledEvent(t *testing.T, s *rig.Stack) {
	threshold := int64(1000)
	_, key := s.NewMerchantKey(t, &threshold)
	recv := newReceiver(t)
	ep := createEndpoint(t, s, key, recv.url(), refund.EventRefundCanceled)
	rf := createRefund(t, s, key, 2500) // above the threshold: waits for approval
	poll(t, "refund awaiting approval", func() bool {
		v, err := s.Temporal.QueryWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(rf)), "", workflows.QueryStatus)
		var st workflows.RefundState
		return err == nil && v.Get(&st) == nil && st.Step == workflows.StepAwaitingApproval
	})
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/refunds/"+rf+"/cancel", nil), http.StatusOK)
	waitRefund(t, s, key, rf, refund.StatusCanceled)

	events := listEvents(t, s, key, "?refundId="+rf)
	if len(events) != 2 || events[0].Type != refund.EventRefundCanceled || events[0].Sequence != 2 || events[1].Type != refund.EventRefundCreated {
		t.Fatalf("events = %+v", events)
	}
	ds := recv.waitFor(t, "refund.canceled", func(ds []received) bool { return deliveredTypes(ds)[refund.EventRefundCanceled] })
	if len(ds) != 1 || ds[0].event(t).ID != events[0].ID {
		t.Fatalf("endpoint subscribed to rf.canceled got %d requests", len(ds))
	}
	var data struct{ Refund refund.Object }
	if err := json.Unmarshal(ds[0].event(t).Data, &data); err != nil || data.Refund.Status != refund.StatusCanceled {
		t.Fatalf("refund.canceled data = %s (%v)", ds[0].body, err)
	}
	if err := webhooks.Verify(ds[0].body, ds[0].header.Get(webhooks.SignatureHeader), ep.Secret, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
}

// testReconcilerRedispatch: an event left undispatched (its workflow
// crashed before starting the deliveries) is delivered by the reconciler,
// under the same workflow id and type the refund workflow would use.
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

// --- helpers ---

// received is one request a receiver got and the status it answered.
type received struct {
	body   []byte
	header http.Header
	status int
}

func (r received) event(t *testing.T) webhooks.Event {
	t.Helper()
	var e webhooks.Event
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode delivery %s: %v", r.body, err)
	}
	return e
}

// receiver is a merchant's webhook endpoint: it answers 500 while down, a
// fixed status when one is set, else 200, and records every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	down   bool
	status int
	got    []received
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		switch {
		case r.status != 0:
			status = r.status
		case r.down:
			status = http.StatusInternalServerError
		}
		r.got = append(r.got, received{body: body, header: req.Header.Clone(), status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = io.WriteString(w, "receiver says no")
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hooks/backflow" }

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *receiver) setStatus(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) waitFor(t *testing.T, what string, cond func([]received) bool) []received {
	t.Helper()
	return r.waitForWithin(t, waitLimit, what, cond)
}

func (r *receiver) waitForWithin(t *testing.T, limit time.Duration, what string, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := r.all()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; %d requests received", limit, what, len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliveredTypes are the event types answered 2xx.
func deliveredTypes(ds []received) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		var e webhooks.Event
		if d.status/100 == 2 && json.Unmarshal(d.body, &e) == nil {
			out[e.Type] = true
		}
	}
	return out
}

func countEvent(t *testing.T, ds []received, id uuid.UUID) int {
	n := 0
	for _, d := range ds {
		if d.event(t).ID == id {
			n++
		}
	}
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createEndpoint(t *testing.T, s *rig.Stack, key, url string, types ...string) server.WebhookEndpointObject {
	t.Helper()
	body := map[string]any{"url": url}
	if len(types) > 0 {
		body["eventTypes"] = types
	}
	var ep server.WebhookEndpointObject
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", body), http.StatusCreated).JSON(t, &ep)
	return ep
}

// createRefund registers a captured card payment for key's merchant and
// refunds amount of it; it returns the refund id.
func createRefund(t *testing.T, s *rig.Stack, key string, amount int64) string {
	t.Helper()
	txID := createTransaction(t, s, key)
	var r refund.Object
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/refunds", map[string]any{
		"originalTransactionId": txID, "refundValue": map[string]any{"amount": amount, "currency": "EUR"},
	}), http.StatusAccepted).JSON(t, &r)
	return r.TransactionID.String()
}

// createTransaction registers a captured 100 EUR card payment for key's
// merchant; it returns the transaction id.
func createTransaction(t *testing.T, s *rig.Stack, key string) string {
	t.Helper()
	var sess struct{ SessionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/sessions", map[string]any{}), http.StatusCreated).JSON(t, &sess)
	var tx struct{ TransactionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/transactions", map[string]any{
		"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000, "currency": "EUR",
		"status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8],
	}), http.StatusCreated).JSON(t, &tx)
	return tx.TransactionID
}

func waitRefund(t *testing.T, s *rig.Stack, key, id string, status refund.Status) {
	t.Helper()
	var r refund.Object
	poll(t, "refund "+id+" "+string(status), func() bool {
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/refunds/"+id, nil), http.StatusOK).JSON(t, &r)
		return r.Status == status
	})
}

func listEvents(t *testing.T, s *rig.Stack, key, query string) []server.EventObject {
	t.Helper()
	var page struct{ Data []server.EventObject }
	rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events"+query, nil), http.StatusOK).JSON(t, &page)
	return page.Data
}

func waitAttempts(t *testing.T, s *rig.Stack, key string, eventID uuid.UUID, cond func([]server.WebhookAttemptObject) bool) server.EventDetail {
	t.Helper()
	var d server.EventDetail
	poll(t, "attempts of event "+eventID.String(), func() bool {
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events/"+eventID.String(), nil), http.StatusOK).JSON(t, &d)
		return cond(d.Attempts)
	})
	return d
}

// waitDeliveryStatus waits for the outbox row of an event to an endpoint to reach status.
func waitDeliveryStatus(t *testing.T, s *rig.Stack, eventID, endpointID uuid.UUID, status string) {
	t.Helper()
	var got string
	poll(t, "delivery "+status, func() bool {
		statuses, err := s.Store.EventDeliveryStatuses(context.Background(), eventID)
		if err != nil {
			t.Fatal(err)
		}
		got = statuses[endpointID]
		return got == status
	})
}
