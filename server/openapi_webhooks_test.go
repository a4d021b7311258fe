package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
)

// testWebhookEndpointsConformance: create, list, read, rotate and delete
// endpoints, and the refusals, on a merchant of its own (its list holds
// exactly the endpoints made here).
func testWebhookEndpointsConformance(t *testing.T, c *conformance) {
	m := c.newMerchant(t)
	recv := newHookReceiver(t)
	var epOK, epFlaky, epGone, epCanceledOnly server.WebhookEndpointObject

	key := ikey()
	body := map[string]any{"url": recv.url("/ok"), "eventTypes": []string{refund.EventRefundCreated, refund.EventRefundSucceeded}}
	r := m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 201})
	r.JSON(t, &epOK)
	if !strings.HasPrefix(epOK.Secret, webhooks.SecretPrefix) || epOK.Status != "ENABLED" || len(epOK.EventTypes) != 2 {
		t.Fatalf("created = %s", r.Body)
	}
	r = m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 201})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay lacks Idempotent-Replayed: true")
	}
	body["url"] = recv.url("/other")
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: body, headers: []string{"Idempotency-Key", key}, want: 422}),
		server.CodeIdempotencyMismatch)
	// eventTypes omitted: every type.
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/flaky")}, want: 201}).JSON(t, &epFlaky)
	if !slices.Equal(epFlaky.EventTypes, refund.EventTypes) {
		t.Errorf("eventTypes = %v, want all", epFlaky.EventTypes)
	}
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/gone")}, want: 201}).JSON(t, &epGone)
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", want: 201,
		body: map[string]any{"url": recv.url("/canceled"), "eventTypes": []string{refund.EventRefundCanceled}}}).JSON(t, &epCanceledOnly)

	var list struct{ Data []map[string]any }
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", want: 200}).JSON(t, &list)
	if len(list.Data) != 4 {
		t.Fatalf("list has %d endpoints, want 4", len(list.Data))
	}
	for _, e := range list.Data {
		if _, ok := e["secret"]; ok {
			t.Errorf("list shows a secret: %v", e)
		}
	}
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), auth: "basic", want: 200})

	// Rotation: a grace period shows previousSecretExpiresAt; 0 retires the old secret at once.
	var rotated server.WebhookEndpointObject
	rotate := "/v1/webhook-endpoints/" + epOK.ID.String() + "/rotate-secret"
	m.do(t, call{method: "POST", path: rotate, body: map[string]any{"gracePeriodSeconds": 3600}, headers: []string{"Idempotency-Key", ikey()}, want: 200}).JSON(t, &rotated)
	if rotated.Secret == epOK.Secret || rotated.PreviousSecretExpiresAt == nil {
		t.Errorf("rotated = %+v", rotated)
	}
	var got server.WebhookEndpointObject
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), want: 200}).JSON(t, &got)
	if got.PreviousSecretExpiresAt == nil || got.Secret != "" {
		t.Errorf("after rotation = %+v", got)
	}
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + epFlaky.ID.String() + "/rotate-secret", want: 200})
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + epFlaky.ID.String() + "/rotate-secret", body: map[string]any{"gracePeriodSeconds": 0}, want: 200})

	// 400, 422, 404.
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/x"), "secret": "whsec_mine"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: `{"url": `, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/not-a-uuid", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: rotate, body: map[string]any{"grace": 1}, requestInvalid: true, want: 400}), server.CodeMalformed)
	r = m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", requestInvalid: true, want: 422,
		body: map[string]any{"url": "ftp://user:pw@example.com/#frag", "eventTypes": []string{"refund.exploded", refund.EventRefundCreated, refund.EventRefundCreated}}})
	p := problemOf(t, r, refund.CodeValidation)
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"url", "eventTypes[0]", "eventTypes[2]"} {
		if !fields[f] {
			t.Errorf("errors[] lacks %s: %s", f, r.Body)
		}
	}
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/x"), "eventTypes": []string{}}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, m.do(t, call{method: "POST", path: rotate, body: map[string]any{"gracePeriodSeconds": 604801}, requestInvalid: true, want: 422}), refund.CodeValidation)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + missing, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + missing, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints/" + missing + "/rotate-secret", want: 404}), refund.CodeWebhookEndpointNotFound)
	// Another merchant's endpoint is 404, never 403.
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + epOK.ID.String(), auth: "bearer:" + other, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "none", requestInvalid: true, want: 401}), server.CodeUnauthorized)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "ops", want: 403}), server.CodeForbidden)

	// Delete: 204, then 404.
	var doomed server.WebhookEndpointObject
	m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": recv.url("/doomed")}, want: 201}).JSON(t, &doomed)
	m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 204})
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "DELETE", path: "/v1/webhook-endpoints/" + doomed.ID.String(), want: 404}), refund.CodeWebhookEndpointNotFound)

	// 16 live endpoints per merchant; the 17th is 409.
	_, full := c.s.NewMerchantKey(t, nil)
	for i := range refund.MaxWebhookEndpoints {
		m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", auth: "bearer:" + full, body: map[string]any{"url": fmt.Sprintf("https://merchant.example/hooks/%d", i)}, want: 201})
	}
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/webhook-endpoints", auth: "bearer:" + full, body: map[string]any{"url": "https://merchant.example/hooks/17"}, want: 409}),
		refund.CodeWebhookEndpointLimit)
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints", auth: "bearer:" + full, want: 200})
}

// testEventsConformance: a refund after the endpoints exist is delivered
// to /ok, /flaky and /gone; its events are listed, read and redelivered.
func testEventsConformance(t *testing.T, c *conformance) {
	m := c.newHookedMerchant(t)
	tx := m.newCardTransaction(t)
	r := m.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"originalTransactionId": tx.ID, "refundValue": map[string]any{"amount": 1000}}})
	var ref refund.Object
	r.JSON(t, &ref)
	hookRefundID := ref.TransactionID.String()
	m.waitSucceeded(t, hookRefundID)

	var page struct {
		Data       []server.EventObject `json:"data"`
		NextCursor string               `json:"nextCursor"`
	}
	m.do(t, call{method: "GET", path: "/v1/events?refundId=" + hookRefundID, want: 200}).JSON(t, &page)
	if len(page.Data) != 2 || page.Data[0].Type != refund.EventRefundSucceeded || page.Data[1].Type != refund.EventRefundCreated {
		t.Fatalf("events of the refund = %+v", page.Data)
	}
	createdEvent := page.Data[1]
	// A second succeeded refund: the merchant's refund.succeeded events then page.
	m.newSucceededRefund(t)
	m.do(t, call{method: "GET", path: "/v1/events?limit=1&type=" + refund.EventRefundSucceeded, want: 200}).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	m.do(t, call{method: "GET", path: "/v1/events?limit=1&type=" + refund.EventRefundSucceeded + "&cursor=" + page.NextCursor, want: 200})
	m.do(t, call{method: "GET", path: "/v1/events?limit=100", auth: "basic", want: 200})

	// The flaky endpoint's attempts: no answer (statusCode null), 500, then 200.
	detail := m.waitEvent(t, createdEvent.ID.String(), func(d server.EventDetail) bool {
		return len(rig.AttemptsTo(d, m.flaky.ID)) == 3 && len(rig.AttemptsTo(d, m.ok.ID)) == 1
	})
	fl := rig.AttemptsTo(detail, m.flaky.ID)
	if fl[0].StatusCode != nil || fl[0].Error == "" || fl[1].StatusCode == nil || *fl[1].StatusCode != 500 || !fl[2].Succeeded {
		t.Errorf("flaky attempts = %+v", fl)
	}
	r = m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), want: 200})
	if !strings.Contains(string(r.Body), `"statusCode":null`) {
		t.Errorf("no attempt with statusCode null: %s", r.Body)
	}

	// The 410 (to whichever event came first) disabled the endpoint.
	m.recv.waitAny(t, "/gone")
	m.waitEndpointDisabled(t, m.gone.ID.String())
	var gone server.WebhookEndpointObject
	m.do(t, call{method: "GET", path: "/v1/webhook-endpoints/" + m.gone.ID.String(), want: 200}).JSON(t, &gone)
	if gone.Status != "DISABLED" || gone.DisabledAt == nil || gone.DisabledReason == "" {
		t.Errorf("endpoint answering 410 = %+v", gone)
	}

	// Redeliver to one endpoint (replayed with the same key), then to all.
	key := ikey()
	redeliver := "/v1/events/" + createdEvent.ID.String() + "/redeliver"
	var res server.RedeliveryResult
	m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.ok.ID}, headers: []string{"Idempotency-Key", key}, want: 202}).JSON(t, &res)
	if res.EventID != createdEvent.ID || len(res.Deliveries) != 1 || res.Deliveries[0].EndpointID != m.ok.ID {
		t.Errorf("redelivery = %+v", res)
	}
	r = m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.ok.ID}, headers: []string{"Idempotency-Key", key}, want: 202})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Error("replay lacks Idempotent-Replayed: true")
	}
	m.recv.wait(t, "/ok", createdEvent.ID.String(), 2)
	m.do(t, call{method: "POST", path: redeliver, want: 202}).JSON(t, &res)
	if len(res.Deliveries) != 2 { // /ok and /flaky: /gone is disabled, /canceled not subscribed
		t.Errorf("redelivery to all = %+v", res)
	}
	m.recv.wait(t, "/ok", createdEvent.ID.String(), 3)
	m.recv.wait(t, "/flaky", createdEvent.ID.String(), 4)
	m.waitEvent(t, createdEvent.ID.String(), func(d server.EventDetail) bool {
		return len(rig.AttemptsTo(d, m.ok.ID)) == 3 && len(rig.AttemptsTo(d, m.flaky.ID)) == 4
	})
	m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), want: 200})

	// Refusals.
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.gone.ID}, want: 409}), refund.CodeWebhookEndpointDisabled)
	r = m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": m.canceledOnly.ID}, want: 422})
	if p := problemOf(t, r, refund.CodeValidation); len(p.Errors) != 1 || p.Errors[0].Field != "endpointId" {
		t.Errorf("errors = %+v", p.Errors)
	}
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": missing}, want: 404}), refund.CodeWebhookEndpointNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: "/v1/events/" + missing + "/redeliver", want: 404}), refund.CodeEventNotFound)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/" + missing, want: 404}), refund.CodeEventNotFound)
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/" + createdEvent.ID.String(), auth: "bearer:" + other, want: 404}), refund.CodeEventNotFound)
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"endpointId": "nope"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, m.do(t, call{method: "POST", path: redeliver, body: map[string]any{"to": "all"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	for _, q := range []string{"type=refund.exploded", "refundId=nope", "limit=0", "limit=101", "cursor=nope"} {
		problemOf(t, m.do(t, call{method: "GET", path: "/v1/events?" + q, requestInvalid: true, want: 400}), server.CodeMalformed)
	}
	problemOf(t, m.do(t, call{method: "GET", path: "/v1/events/not-a-uuid", requestInvalid: true, want: 400}), server.CodeMalformed)
}
