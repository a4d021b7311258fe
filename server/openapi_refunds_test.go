package server_test

import (
	"maps"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// testTransactionConformance: a session and a captured card transaction
// with line items and a gift-card redemption.
func testTransactionConformance(t *testing.T, c *conformance) {
	r := c.do(t, call{method: "POST", path: "/v1/sessions", body: map[string]any{}, headers: []string{"Idempotency-Key", ikey()}, want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000,
		"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}
	maps.Copy(body, cardBasket)
	r = c.do(t, call{method: "POST", path: "/v1/transactions", headers: []string{"Idempotency-Key", ikey()}, want: 201, body: body})
	var tx server.TransactionObject
	r.JSON(t, &tx)
	txID := tx.TransactionID.String()
	// The same payment registered again: its transaction, once; other details: a conflict.
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 200, body: body})
	other := maps.Clone(body)
	other["amount"] = 20000
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 409, body: other})
	// cardpay cannot refund to a gift card.
	c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-1"}})
	c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
}

// testPayoutTransactionConformance: a mobile-money transaction with a
// payout destination; its refunds go out as payouts.
func testPayoutTransactionConformance(t *testing.T, c *conformance) {
	r := c.do(t, call{method: "POST", path: "/v1/sessions", want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	c.do(t, call{method: "POST", path: "/v1/transactions", want: 201,
		body: map[string]any{"sessionId": sess.SessionID, "provider": "momo", "method": "mobile_money", "amount": 5000,
			"currency": "KES", "status": "CAPTURED", "providerReference": "momo_" + uuid.NewString()[:8],
			"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "mpesa", "country": "KE"}}})
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"sessionId": sess.SessionID,
		"refundValue": map[string]any{"amount": 1000, "currency": "KES"}}})
	var ref refund.Object
	r.JSON(t, &ref)
	if ref.Method != refund.MethodPayoutRefund {
		t.Errorf("method = %s, want %s", ref.Method, refund.MethodPayoutRefund)
	}
}

// testCreateRefundConformance: a refund of one line item, created,
// replayed, refused with another body, then read once it succeeded.
func testCreateRefundConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	key := ikey()
	body := map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 2000, "currency": "EUR"},
		"reason": "customer returned one item", "reasonCode": "RETURN", "description": "return of sku-1",
		"reference": "ret-42", "metadata": map[string]any{"orderId": "ord_1", "channel": "web"},
		"lineItems": []map[string]any{{"id": "sku-1", "quantity": 1}}}
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
	var created refund.Object
	r.JSON(t, &created)
	if created.Status != refund.StatusPending || created.OriginalTransactionID.String() != txID {
		t.Fatalf("created = %s", r.Body)
	}
	refundID := created.TransactionID.String()

	// The same key and body replay the 202 with Idempotent-Replayed.
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 202})
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay lacks Idempotent-Replayed: true")
	}
	// The same key with another body is 422 idempotency.mismatch.
	body["reason"] = "another reason"
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: body, headers: []string{"Idempotency-Key", key}, want: 422})
	problemOf(t, r, server.CodeIdempotencyMismatch)

	c.s.WaitRefund(t, refundID, 30*time.Second, refund.StatusSucceeded)
	r = c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, want: 200})
	var done refund.Object
	r.JSON(t, &done)
	if done.CompletedAt == nil || done.ProviderReference == "" {
		t.Errorf("succeeded refund lacks completedAt or providerReference: %s", r.Body)
	}
	c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "basic", want: 200})
	c.do(t, call{method: "GET", path: "/v1/transactions/" + txID, want: 200})
}

// testListRefundsConformance: the refunds of a session, page by page, and
// the other filters.
func testListRefundsConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	c.newRefund(t, tx, 2000)
	// A second refund gives the session two refunds.
	c.do(t, call{method: "POST", path: "/v1/refunds", want: 202, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 100, "currency": "EUR"}}})
	r := c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1", want: 200})
	var page struct {
		Data       []refund.Object `json:"data"`
		NextCursor string          `json:"nextCursor"`
	}
	r.JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %s", r.Body)
	}
	c.do(t, call{method: "GET", path: "/v1/refunds?sessionId=" + sessionID + "&limit=1&cursor=" + page.NextCursor, want: 200})
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	c.do(t, call{method: "GET", path: "/v1/refunds?status=SUCCEEDED&originalTransactionId=" + txID + "&createdFrom=" + from, want: 200})
	c.do(t, call{method: "GET", path: "/v1/refunds", want: 200})
}

// testCancelSentRefundConformance: a refund the provider took can no
// longer be canceled.
func testCancelSentRefundConformance(t *testing.T, c *conformance) {
	refundID := c.newSucceededRefund(t)
	r := c.do(t, call{method: "POST", path: "/v1/refunds/" + refundID + "/cancel", headers: []string{"Idempotency-Key", ikey()}, want: 409})
	problemOf(t, r, refund.CodeNotCancelable)
}
