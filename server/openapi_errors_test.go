package server_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// testMalformedConformance: 400, a request the server cannot read.
func testMalformedConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: `{"sessionId": `, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sessionID, "surprise": 1}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": "10", "currency": "EUR"}}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": "not-a-uuid"}, requestInvalid: true, want: 400})
	if p := problemOf(t, r, server.CodeMalformed); len(p.Errors) != 1 || p.Errors[0].Field != "sessionId" {
		t.Errorf("errors = %+v", p.Errors)
	}
	r = c.do(t, call{method: "GET", path: "/v1/refunds/not-a-uuid", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "GET", path: "/v1/refunds?limit=500", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "GET", path: "/v1/refunds?status=LOST", requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
	r = c.do(t, call{method: "POST", path: "/v1/sessions", headers: []string{"Idempotency-Key", strings.Repeat("k", 256)}, requestInvalid: true, want: 400})
	problemOf(t, r, server.CodeMalformed)
}

// testTooLargeConformance: 413, a body over the limit.
func testTooLargeConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	big := `{"sessionId": "` + sessionID + `", "reason": "` + strings.Repeat("x", 70<<10) + `"}`
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds", body: big, requestInvalid: true, want: 413}), server.CodeTooLarge)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: big, requestUnchecked: true, want: 413}), server.CodeTooLarge)
}

// testUnauthorizedConformance: 401, no key or an unknown one.
func testUnauthorizedConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	r := c.do(t, call{method: "GET", path: "/v1/refunds", auth: "none", requestInvalid: true, want: 401})
	problemOf(t, r, server.CodeUnauthorized)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:bf_not_a_key", body: map[string]any{"sessionId": sessionID}, want: 401})
	problemOf(t, r, server.CodeUnauthorized)
}

// testForbiddenConformance: 403, a key without the operation's scope.
func testForbiddenConformance(t *testing.T, c *conformance) {
	sessionID := c.newCardTransaction(t).SessionID
	_, readOnly := c.s.NewMerchantKey(t, nil, refund.ScopeRefundsRead)
	r := c.do(t, call{method: "POST", path: "/v1/refunds", auth: "bearer:" + readOnly, body: map[string]any{"sessionId": sessionID}, want: 403})
	problemOf(t, r, server.CodeForbidden)
}

// testNotFoundConformance: 404, ids nobody has and another merchant's.
func testNotFoundConformance(t *testing.T, c *conformance) {
	refundID := c.newRefund(t, c.newCardTransaction(t), 2000)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + missing, want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/transactions/" + missing, want: 404}), refund.CodeTransactionNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds/" + missing + "/cancel", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": missing}, want: 404}), refund.CodeSessionNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/transactions", want: 404, body: map[string]any{"sessionId": missing,
		"provider": "cardpay", "method": "card", "amount": 100, "currency": "EUR", "status": "CAPTURED", "providerReference": "x"}}),
		refund.CodeSessionNotFound)
	// Another merchant's refund is 404, never 403.
	_, other := c.s.NewMerchantKey(t, nil)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds/" + refundID, auth: "bearer:" + other, want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/provider-callbacks/nope", body: map[string]any{}, auth: "none", want: 404}), server.CodeNotFound)
}

// testNotCapturedConformance: 409, a refund of a payment not captured.
func testNotCapturedConformance(t *testing.T, c *conformance) {
	sess, _ := c.s.Transaction(t, map[string]any{"status": "AUTHORIZED"})
	r := c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{"sessionId": sess}, want: 409})
	problemOf(t, r, refund.CodeNotCaptured)
}

// testValidationConformance: 422, invalid fields and broken business rules.
func testValidationConformance(t *testing.T, c *conformance) {
	tx := c.newCardTransaction(t)
	sessionID, txID := tx.SessionID, tx.ID
	// Field validation: every invalid field is listed in errors[].
	r := c.do(t, call{method: "POST", path: "/v1/refunds", requestInvalid: true, want: 422, body: map[string]any{
		"sessionId": sessionID, "description": "", "reasonCode": "BORED", "reference": strings.Repeat("r", 41),
		"refundValue": map[string]any{"amount": 0, "currency": "EUR"}}})
	p := problemOf(t, r, refund.CodeValidation)
	fields := map[string]bool{}
	for _, fe := range p.Errors {
		fields[fe.Field] = true
	}
	for _, f := range []string{"description", "reasonCode", "reference", "refundValue.amount"} {
		if !fields[f] {
			t.Errorf("errors[] lacks %s: %s", f, r.Body)
		}
	}
	r = c.do(t, call{method: "POST", path: "/v1/refunds", body: map[string]any{}, requestInvalid: true, want: 422})
	problemOf(t, r, refund.CodeValidation)
	// Business rules on a well-formed request.
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 99999999, "currency": "EUR"}}})
	problemOf(t, r, refund.CodeAmountInsufficient)
	r = c.do(t, call{method: "POST", path: "/v1/refunds", want: 422, body: map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 100, "currency": "USD"}}})
	problemOf(t, r, refund.CodeCurrencyMismatch)
	r = c.do(t, call{method: "POST", path: "/v1/transactions", requestInvalid: true, want: 422, body: map[string]any{"sessionId": sessionID,
		"provider": "", "method": "cheque", "amount": 0, "currency": "eur", "status": "REFUNDED", "providerReference": ""}})
	if p := problemOf(t, r, refund.CodeValidation); len(p.Errors) < 6 {
		t.Errorf("errors = %+v", p.Errors)
	}
}

// testScopesConformance: each operation's x-required-scope is the scope the
// server checks: a key with every other scope is 403, a key with only that
// scope is not.
func testScopesConformance(t *testing.T, c *conformance) {
	s := c.s
	only := map[string]string{refund.ScopeOps: s.OpsKey}
	allBut := map[string]string{refund.ScopeOps: s.MerchantKey}
	for _, scope := range refund.MerchantScopes {
		_, only[scope] = s.NewMerchantKey(t, nil, scope)
		_, allBut[scope] = s.NewMerchantKey(t, nil, slices.DeleteFunc(slices.Clone(refund.MerchantScopes), func(o string) bool { return o == scope })...)
	}
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			scope, _ := op.Extensions["x-required-scope"].(string)
			if scope == "" {
				continue
			}
			p := pathParam.ReplaceAllStringFunc(path, func(string) string { return uuid.Must(uuid.NewV7()).String() })
			denied := []string{allBut[scope]}
			if scope != refund.ScopeOps {
				denied = append(denied, s.OpsKey)
			}
			for _, k := range denied {
				problemOf(t, c.do(t, call{method: method, path: p, auth: "bearer:" + k, requestUnchecked: true, want: 403}), server.CodeForbidden)
			}
			if r := c.do(t, call{method: method, path: p, auth: "bearer:" + only[scope], requestUnchecked: true}); r.Status == 401 || r.Status == 403 {
				t.Errorf("%s %s with a key of scope %s only: %d %s", method, path, scope, r.Status, r.Body)
			}
		}
	}
}
