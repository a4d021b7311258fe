package webhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
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
	s.Activities.EndpointDisabled = countDisabled
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
	t.Run("DeadEndpointHeldBack", func(t *testing.T) { t.Parallel(); testDeadEndpointHeldBack(t, s) })
	t.Run("OrderedPerRefund", func(t *testing.T) { t.Parallel(); testOrderedPerRefund(t, s) })
	t.Run("SlowEndpointBounded", func(t *testing.T) { t.Parallel(); testSlowEndpointBounded(t, s) })
	t.Run("FailingTooLongDisabled", func(t *testing.T) { t.Parallel(); testFailingTooLongDisabled(t, s) })
	t.Run("DeletedMidAttempt", func(t *testing.T) { t.Parallel(); testDeletedMidAttempt(t, s) })
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
	some := createEndpoint(t, s, key, "https://example.com/failed", refund.EventRefundFailed)
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
