package server_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// counts is what a rejected request must leave untouched.
type counts struct{ refunds, ledger, events int }

func countRows(t *testing.T, s *rig.Stack) counts {
	t.Helper()
	var c counts
	err := s.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM refunds), (SELECT count(*) FROM ledger_entries),
		(SELECT count(*) FROM refund_events)`).Scan(&c.refunds, &c.ledger, &c.events)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConcurrentPartialRefundsNeverOverRefund(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, map[string]any{"amount": 10000})
	const workers, each = 50, 300 // 15000 asked of 10000 captured
	var wg sync.WaitGroup
	statuses := make([]int, workers)
	codes := make([]string, workers)
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
				"refundValue": map[string]any{"amount": each, "currency": "EUR"}})
			statuses[i] = r.Status
			if r.Status != http.StatusAccepted {
				var p server.Problem
				r.JSON(t, &p)
				codes[i] = p.Code
			}
		}()
	}
	wg.Wait()
	accepted := 0
	for i, st := range statuses {
		switch {
		case st == http.StatusAccepted:
			accepted++
		case st == http.StatusUnprocessableEntity && codes[i] == refund.CodeAmountInsufficient:
		default:
			t.Fatalf("request %d: status %d code %q", i, st, codes[i])
		}
	}
	if accepted != 10000/each {
		t.Fatalf("accepted %d refunds of %d, want exactly %d", accepted, each, 10000/each)
	}
	var reserved, settled int64
	err := s.Pool.QueryRow(context.Background(), `SELECT
		coalesce(sum(amount) FILTER (WHERE kind = 'RESERVE'), 0), coalesce(sum(amount) FILTER (WHERE kind = 'SETTLE'), 0)
		FROM ledger_entries WHERE transaction_id = $1`, txID).Scan(&reserved, &settled)
	if err != nil {
		t.Fatal(err)
	}
	if reserved != int64(accepted*each) {
		t.Fatalf("ledger reserves %d, accepted %d", reserved, accepted*each)
	}
	// Once every refund settled, the ledger and the balance agree.
	deadline := time.Now().Add(30 * time.Second)
	var tx server.TransactionObject
	for time.Now().Before(deadline) {
		s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
		if tx.ReservedAmount == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if tx.RefundedAmount != int64(accepted*each) || tx.ReservedAmount != 0 || tx.Status != refund.TxPartiallyRefunded {
		t.Fatalf("transaction after settling: %+v", tx)
	}
}

func TestConcurrentSameIdempotencyKeyMakesOneRefund(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, map[string]any{"amount": 10000})
	body := map[string]any{"originalTransactionId": txID, "refundValue": map[string]any{"amount": 1200, "currency": "EUR"}}
	key := "idem-" + uuid.NewString()
	var wg sync.WaitGroup
	responses := make([]rig.Response, 20)
	for i := range responses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			responses[i] = s.Do(t, "POST", "/v1/refunds", body, "Idempotency-Key", key)
		}()
	}
	wg.Wait()
	ids := map[uuid.UUID]bool{}
	for _, r := range responses {
		switch r.Status {
		case http.StatusAccepted:
			var o refund.Object
			r.JSON(t, &o)
			ids[o.TransactionID] = true
		case http.StatusConflict:
			rig.AssertProblem(t, r, http.StatusConflict, server.CodeIdempotencyInFlight)
		default:
			t.Fatalf("unexpected %d: %s", r.Status, r.Body)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d distinct refunds for one key", len(ids))
	}
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM refunds WHERE transaction_id = $1`, txID).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d refund rows (err %v), want 1", n, err)
	}
	// A later retry replays the original response.
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", body, "Idempotency-Key", key), http.StatusAccepted)
	if r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay lacks Idempotent-Replayed header")
	}
	var replayed refund.Object
	r.JSON(t, &replayed)
	if !ids[replayed.TransactionID] || replayed.Status != refund.StatusPending {
		t.Fatalf("replay = %+v", replayed)
	}
	for id := range ids {
		done := s.WaitRefund(t, id.String(), 20*time.Second, refund.StatusSucceeded)
		if n := s.Sandbox.Count(done.TransactionID.String()); n != 1 {
			t.Fatalf("provider holds %d refunds, want 1", n)
		}
	}
	// Same key, another body: rejected, nothing written.
	before := countRows(t, s)
	body["refundValue"] = map[string]any{"amount": 1300, "currency": "EUR"}
	rig.AssertProblem(t, s.Do(t, "POST", "/v1/refunds", body, "Idempotency-Key", key), http.StatusUnprocessableEntity, server.CodeIdempotencyMismatch)
	if after := countRows(t, s); after != before {
		t.Fatalf("mismatch left rows: %+v → %+v", before, after)
	}
}

func TestErrorCodes(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	sessionID, txID := s.Transaction(t, map[string]any{"amount": 5000})
	authSession, authTx := s.Transaction(t, map[string]any{"status": "AUTHORIZED"})
	twoSession, _ := s.Transaction(t, nil)
	s.Do(t, "POST", "/v1/transactions", map[string]any{"sessionId": twoSession, "provider": "cardpay", "method": "card",
		"amount": 100, "currency": "EUR", "status": "CAPTURED", "providerReference": "second"})
	_, noDestTx := s.Transaction(t, map[string]any{"provider": "momo", "method": "mobile_money"})
	_, fullTx := s.Transaction(t, map[string]any{"amount": 700})
	full := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": fullTx}), http.StatusAccepted)
	var fullRefund refund.Object
	full.JSON(t, &fullRefund)
	s.WaitRefund(t, fullRefund.TransactionID.String(), 20*time.Second, refund.StatusSucceeded)
	_, readOnlyKey := s.NewMerchantKey(t, nil, refund.ScopeRefundsRead)
	missing := uuid.Must(uuid.NewV7()).String()

	cases := []struct {
		name   string
		key    string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"malformed json", s.MerchantKey, "POST", "/v1/refunds", `{"sessionId":`, 400, server.CodeMalformed},
		{"unknown field", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "bogus": 1}, 400, server.CodeMalformed},
		{"wrong type", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": "12", "currency": "EUR"}}, 400, server.CodeMalformed},
		{"fractional amount", s.MerchantKey, "POST", "/v1/refunds", `{"sessionId":"` + sessionID + `","refundValue":{"amount":12.5,"currency":"EUR"}}`, 400, server.CodeMalformed},
		{"bad uuid", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": "not-a-uuid"}, 400, server.CodeMalformed},
		{"bad uuid in path", s.MerchantKey, "GET", "/v1/refunds/xyz", nil, 400, server.CodeMalformed},
		{"oversized body", s.MerchantKey, "POST", "/v1/refunds", `{"reason":"` + strings.Repeat("x", 70<<10) + `"}`, 413, server.CodeTooLarge},
		{"no key", "", "GET", "/v1/refunds", nil, 401, server.CodeUnauthorized},
		{"bad key", "bf_nope", "GET", "/v1/refunds", nil, 401, server.CodeUnauthorized},
		{"missing scope", readOnlyKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID}, 403, server.CodeForbidden},
		{"session not found", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": missing}, 404, refund.CodeSessionNotFound},
		{"transaction not found", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"originalTransactionId": missing}, 404, refund.CodeTransactionNotFound},
		{"transaction not in session", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": authSession, "originalTransactionId": txID}, 404, refund.CodeTransactionNotFound},
		{"get transaction not found", s.MerchantKey, "GET", "/v1/transactions/" + missing, nil, 404, refund.CodeTransactionNotFound},
		{"refund not found", s.MerchantKey, "GET", "/v1/refunds/" + missing, nil, 404, refund.CodeRefundNotFound},
		{"cancel not found", s.MerchantKey, "POST", "/v1/refunds/" + missing + "/cancel", nil, 404, refund.CodeRefundNotFound},
		{"not captured", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"originalTransactionId": authTx}, 409, refund.CodeNotCaptured},
		{"fully refunded", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"originalTransactionId": fullTx}, 409, refund.CodeFullyRefunded},
		{"not cancelable", s.MerchantKey, "POST", "/v1/refunds/" + fullRefund.TransactionID.String() + "/cancel", nil, 409, refund.CodeNotCancelable},
		{"amount insufficient", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 5001, "currency": "EUR"}}, 422, refund.CodeAmountInsufficient},
		{"currency mismatch", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": 100, "currency": "USD"}}, 422, refund.CodeCurrencyMismatch},
		{"ambiguous", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": twoSession}, 422, refund.CodeAmbiguous},
		{"method unavailable", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"originalTransactionId": noDestTx}, 422, refund.CodeMethodUnavailable},
		{"validation", s.MerchantKey, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID, "description": ""}, 422, refund.CodeValidation},
		{"no target", s.MerchantKey, "POST", "/v1/refunds", map[string]any{}, 422, refund.CodeValidation},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := countRows(t, s)
			p := rig.AssertProblem(t, s.DoWithKey(t, tc.key, tc.method, tc.path, tc.body), tc.status, tc.code)
			if p.Detail == "" || p.Title == "" || p.Type == "" || p.Status != tc.status {
				t.Fatalf("incomplete problem: %+v", p)
			}
			if tc.code == refund.CodeValidation && len(p.Errors) == 0 {
				t.Fatalf("validation problem without field errors")
			}
			if after := countRows(t, s); after != before {
				t.Fatalf("rejected request left rows: %+v → %+v", before, after)
			}
		})
	}
}

func TestValidationBoundaries(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	_, txID := s.Transaction(t, map[string]any{"amount": 200_000_000})
	meta := func(n, keyLen, valLen int) map[string]string {
		m := map[string]string{}
		for i := range n {
			k := strings.Repeat("k", keyLen-3) + string(rune('a'+i/26)) + string(rune('a'+i%26)) + "x"
			m[k[:keyLen]] = strings.Repeat("v", valLen)
		}
		return m
	}
	cases := []struct {
		name  string
		field string
		extra map[string]any
		ok    bool
	}{
		{"amount 0", "refundValue.amount", map[string]any{"refundValue": map[string]any{"amount": 0, "currency": "EUR"}}, false},
		{"amount 1", "", map[string]any{"refundValue": map[string]any{"amount": 1, "currency": "EUR"}}, true},
		{"amount max", "", map[string]any{"refundValue": map[string]any{"amount": 99_999_999, "currency": "EUR"}}, true},
		{"amount max+1", "refundValue.amount", map[string]any{"refundValue": map[string]any{"amount": 100_000_000, "currency": "EUR"}}, false},
		{"amount negative", "refundValue.amount", map[string]any{"refundValue": map[string]any{"amount": -5, "currency": "EUR"}}, false},
		{"currency lowercase", "refundValue.currency", map[string]any{"refundValue": map[string]any{"amount": 5, "currency": "eur"}}, false},
		{"description 80", "", map[string]any{"description": strings.Repeat("d", 80)}, true},
		{"description 81", "description", map[string]any{"description": strings.Repeat("d", 81)}, false},
		{"description empty", "description", map[string]any{"description": ""}, false},
		{"reference 40", "", map[string]any{"reference": strings.Repeat("r", 40)}, true},
		{"reference 41", "reference", map[string]any{"reference": strings.Repeat("r", 41)}, false},
		{"reason 500", "", map[string]any{"reason": strings.Repeat("é", 500)}, true},
		{"reason 501", "reason", map[string]any{"reason": strings.Repeat("é", 501)}, false},
		{"reason code", "reasonCode", map[string]any{"reasonCode": "BORED"}, false},
		{"metadata 20 pairs", "", map[string]any{"metadata": meta(20, 5, 10)}, true},
		{"metadata 21 pairs", "metadata", map[string]any{"metadata": meta(21, 5, 10)}, false},
		{"metadata key 40", "", map[string]any{"metadata": meta(1, 40, 1)}, true},
		{"metadata key 41", "metadata.", map[string]any{"metadata": meta(1, 41, 1)}, false},
		{"metadata value 500", "", map[string]any{"metadata": meta(1, 5, 500)}, true},
		{"metadata value 501", "metadata.", map[string]any{"metadata": meta(1, 5, 501)}, false},
		{"gift card without target", "targetId", map[string]any{"targetType": "GIFT_CARD_REDEMPTION"}, false},
		{"unknown target type", "targetType", map[string]any{"targetType": "WALLET"}, false},
		{"line item zero quantity", "lineItems[0].quantity", map[string]any{"lineItems": []map[string]any{{"id": "a", "quantity": 0}}}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"originalTransactionId": txID, "refundValue": map[string]any{"amount": 10, "currency": "EUR"}}
			for k, v := range tc.extra {
				body[k] = v
			}
			r := s.Do(t, "POST", "/v1/refunds", body)
			if tc.ok {
				rig.Must(t, r, http.StatusAccepted)
				return
			}
			p := rig.AssertProblem(t, r, http.StatusUnprocessableEntity, refund.CodeValidation)
			found := false
			for _, fe := range p.Errors {
				found = found || strings.HasPrefix(fe.Field, tc.field)
			}
			if !found {
				t.Fatalf("no error on field %q: %+v", tc.field, p.Errors)
			}
		})
	}
}

func TestTenantIsolation(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	sessionID, txID := s.Transaction(t, nil)
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID,
		"refundValue": map[string]any{"amount": 100, "currency": "EUR"}}), http.StatusAccepted)
	var got refund.Object
	r.JSON(t, &got)
	_, other := s.NewMerchantKey(t, nil)
	id := got.TransactionID.String()
	for _, tc := range []struct {
		method, path string
		body         any
		code         string
	}{
		{"GET", "/v1/refunds/" + id, nil, refund.CodeRefundNotFound},
		{"POST", "/v1/refunds/" + id + "/cancel", nil, refund.CodeRefundNotFound},
		{"GET", "/v1/transactions/" + txID, nil, refund.CodeTransactionNotFound},
		{"POST", "/v1/refunds", map[string]any{"originalTransactionId": txID}, refund.CodeTransactionNotFound},
		{"POST", "/v1/refunds", map[string]any{"sessionId": sessionID}, refund.CodeSessionNotFound},
		{"POST", "/v1/transactions", map[string]any{"sessionId": sessionID, "provider": "cardpay", "method": "card", "amount": 1,
			"currency": "EUR", "status": "CAPTURED", "providerReference": "x"}, refund.CodeSessionNotFound},
	} {
		rig.AssertProblem(t, s.DoWithKey(t, other, tc.method, tc.path, tc.body), http.StatusNotFound, tc.code)
	}
	var page struct{ Data []refund.Object }
	rig.Must(t, s.DoWithKey(t, other, "GET", "/v1/refunds?sessionId="+sessionID, nil), http.StatusOK).JSON(t, &page)
	if len(page.Data) != 0 {
		t.Fatalf("other merchant lists %d refunds", len(page.Data))
	}
}

func TestBasicAuthAndListPagination(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	sessionID, _ := s.Transaction(t, nil)
	for range 5 {
		rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"sessionId": sessionID,
			"refundValue": map[string]any{"amount": 10, "currency": "EUR"}}), http.StatusAccepted)
	}
	req, _ := http.NewRequest("GET", s.APIURL+"/v1/refunds?limit=2&sessionId="+sessionID, nil)
	req.SetBasicAuth(s.MerchantKey, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("basic auth: %v %v", err, resp)
	}
	resp.Body.Close()
	seen := map[uuid.UUID]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		var page struct {
			Data       []refund.Object
			NextCursor string
		}
		rig.Must(t, s.Do(t, "GET", "/v1/refunds?limit=2&sessionId="+sessionID+"&cursor="+cursor, nil), http.StatusOK).JSON(t, &page)
		for _, r := range page.Data {
			if seen[r.TransactionID] {
				t.Fatalf("refund %s on two pages", r.TransactionID)
			}
			seen[r.TransactionID] = true
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d refunds, want 5", len(seen))
	}
	var page struct{ Data []refund.Object }
	rig.Must(t, s.Do(t, "GET", "/v1/refunds?status=SUCCEEDED&sessionId="+sessionID, nil), http.StatusOK).JSON(t, &page)
	if len(page.Data) != 0 {
		t.Fatalf("status filter returned %d", len(page.Data))
	}
}

func TestLineItemsAndGiftCardBalances(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	_, txID := s.Transaction(t, map[string]any{"provider": "orchestra", "amount": 10000,
		"lineItems":           []map[string]any{{"id": "sku-1", "amount": 1500, "quantity": 2}},
		"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 3000}}})
	// Line items: 2 units; a third is refused.
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"lineItems": []map[string]any{{"id": "sku-1", "quantity": 2}}}), http.StatusAccepted)
	var o refund.Object
	r.JSON(t, &o)
	if o.RefundValue.Amount != 3000 {
		t.Fatalf("line item refund amount %d, want 3000", o.RefundValue.Amount)
	}
	rig.AssertProblem(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"lineItems": []map[string]any{{"id": "sku-1", "quantity": 1}}}), http.StatusUnprocessableEntity, refund.CodeAmountInsufficient)
	rig.AssertProblem(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"lineItems": []map[string]any{{"id": "sku-9", "quantity": 1}}}), http.StatusUnprocessableEntity, refund.CodeValidation)
	// Gift card: its own 3000 balance is enforced.
	gift := func(amount int) rig.Response {
		return s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID, "targetType": "GIFT_CARD_REDEMPTION",
			"targetId": "gc-1", "refundValue": map[string]any{"amount": amount, "currency": "EUR"}})
	}
	rig.Must(t, gift(2000), http.StatusAccepted)
	rig.AssertProblem(t, gift(1001), http.StatusUnprocessableEntity, refund.CodeAmountInsufficient)
	rig.Must(t, gift(1000), http.StatusAccepted)
	var tx server.TransactionObject
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if tx.ReservedAmount != 6000 || tx.GiftCardRedemptions[0].ReservedAmount != 3000 || tx.LineItems[0].ReservedQuantity != 2 {
		t.Fatalf("reservations: %+v", tx)
	}
	// The database itself refuses an over-reservation, whatever the Go code does.
	_, err := s.Pool.Exec(context.Background(), `UPDATE gift_card_redemptions SET reserved_amount = reserved_amount + 1 WHERE transaction_id = $1`, txID)
	if err == nil || !strings.Contains(err.Error(), "redemptions_no_over_refund") {
		t.Fatalf("CHECK constraint did not refuse an over-reservation: %v", err)
	}
}
