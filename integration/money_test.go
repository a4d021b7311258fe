package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// The money-safety rules of SPEC §12 at the edges: answers that are neither
// success nor a clean failure never release a refund, and a provider that
// reverses a refund gets its money counted back.

// faultStack starts a stack whose provider traffic goes through plan.
func faultStack(t *testing.T, plan rig.FaultPlan, opts rig.StackOptions) *rig.Stack {
	t.Helper()
	opts.ProviderProxy = func(next http.Handler) http.Handler {
		return rig.NewFaultProxy(next, plan, 6*time.Second)
	}
	return rig.StartStack(t, opts)
}

// createRefund asks for a refund of amount on txID and returns its id.
func createRefund(t *testing.T, s *rig.Stack, txID string, amount int64, currency string) string {
	t.Helper()
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": amount, "currency": currency}}, "Idempotency-Key", uuid.NewString()), http.StatusAccepted)
	var out refund.Object
	r.JSON(t, &out)
	return out.TransactionID.String()
}

// ledgerKinds lists a refund's ledger entries, oldest first.
func ledgerKinds(t *testing.T, s *rig.Stack, refundID string) string {
	t.Helper()
	entries, err := s.Store.ListLedger(context.Background(), mustUUID(t, refundID))
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]string, 0, len(entries))
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	return strings.Join(kinds, ",")
}

// TestStatusChecksAnswering401NeverRelease: the provider accepted the refund
// as processing, then answers its status checks with 401 (rotated
// credentials). The refund must wait, flagged stuck for provider.auth, and
// end with the provider's answer — never be released on a 401.
func TestStatusChecksAnswering401NeverRelease(t *testing.T) {
	outage := time.Now().Add(4 * time.Second)
	s := faultStack(t, func(r *http.Request, _ int) rig.Fault {
		if r.Method == http.MethodGet && time.Now().Before(outage) {
			return rig.Fault401
		}
		return rig.FaultNone
	}, rig.StackOptions{AsyncDelay: 2500 * time.Millisecond})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1204, "EUR") // …04: processing, succeeds later
	err := rig.Poll(context.Background(), 10*time.Second, "stuck for provider.auth", func(ctx context.Context) (bool, error) {
		r, err := s.Store.GetRefund(ctx, refund.OfMerchant(s.MerchantID), mustUUID(t, id))
		return r.Stuck && r.StuckReason == "provider.auth", err
	})
	if err != nil {
		t.Fatalf("%v (status %s)", err, s.WaitRefund(t, id, time.Second, refund.StatusPending, refund.StatusProcessing,
			refund.StatusSucceeded, refund.StatusFailed).Status)
	}
	got := s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded, refund.StatusFailed, refund.StatusDeclined)
	if got.Status != refund.StatusSucceeded {
		t.Fatalf("refund is %s (%+v), want SUCCEEDED: a 401 released a refund the provider paid", got.Status, got.Failure)
	}
	if kinds := ledgerKinds(t, s, id); kinds != "RESERVE,SETTLE" {
		t.Fatalf("ledger %s, want RESERVE,SETTLE", kinds)
	}
}

// TestRetriedSubmitAnswered409: the first submit reached the provider but
// its answer was lost; the retry with the same key gets 409 (duplicate).
// The refund exists at the provider, so it must end SUCCEEDED.
func TestRetriedSubmitAnswered409(t *testing.T) {
	s := faultStack(t, rig.Plans(func(_ *http.Request, attempt int) rig.Fault {
		if attempt == 1 {
			return rig.FaultLost
		}
		return rig.Fault409
	}, nil), rig.StackOptions{})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1200, "EUR")
	got := s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded, refund.StatusFailed, refund.StatusDeclined)
	if got.Status != refund.StatusSucceeded {
		t.Fatalf("refund is %s (%+v), want SUCCEEDED: a 409 released a refund the provider holds", got.Status, got.Failure)
	}
	if n := s.Sandbox.Count(id); n != 1 {
		t.Fatalf("provider holds %d refunds, want 1", n)
	}
}

// TestResendAfterTheProviderForgotTheKey: the first submit reached the
// provider but its answer was lost, and the provider no longer remembers
// the idempotency key when Backflow tries again (Stripe forgets keys after
// 24 h). A re-send without looking the refund up first would refund twice.
func TestResendAfterTheProviderForgotTheKey(t *testing.T) {
	s := faultStack(t, rig.Plans(func(_ *http.Request, attempt int) rig.Fault {
		if attempt == 1 {
			return rig.FaultLost
		}
		return rig.FaultForgetKey
	}, nil), rig.StackOptions{})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1200, "EUR")
	s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded)
	if st := s.Sandbox.Stats(); st.Created != 1 {
		t.Fatalf("the provider created %d refunds, want 1 (stats %+v)", st.Created, st)
	}
}

// TestTerminatedWorkflowIsResumed: a refund's workflow is terminated while
// the refund is PROCESSING (an operator's mistake, a bad deploy). The
// reconciler finds the refund whose workflow closed without finalizing it
// and resumes it: look-up first, never a blind re-send.
func TestTerminatedWorkflowIsResumed(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{AsyncDelay: 3 * time.Second})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1204, "EUR") // …04: processing, succeeds 3 s later
	s.WaitRefund(t, id, 10*time.Second, refund.StatusProcessing)
	ctx := context.Background()
	if err := s.Temporal.TerminateWorkflow(ctx, workflows.RefundWorkflowID(mustUUID(t, id)), "", "test: operator mistake"); err != nil {
		t.Fatal(err)
	}
	err := rig.Poll(ctx, 40*time.Second, "refund resumed and succeeded", func(ctx context.Context) (bool, error) {
		rig.Reconcile(t, s.Rig)
		r, err := s.Store.GetRefund(ctx, refund.OfMerchant(s.MerchantID), mustUUID(t, id))
		return r.Status == refund.StatusSucceeded, err
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := s.Sandbox.Count(id); n != 1 {
		t.Fatalf("provider holds %d refunds, want 1", n)
	}
	if st := s.Sandbox.Stats(); st.CreateRequests != 1 {
		t.Fatalf("the provider got %d create requests, want 1: the resumed run must look the refund up, not re-send it", st.CreateRequests)
	}
}

// momoCallback posts a signed momo payout callback to the API.
func momoCallback(t *testing.T, s *rig.Stack, provider string, data map[string]any) int {
	t.Helper()
	body, err := json.Marshal(map[string]any{"id": "evt_" + uuid.NewString(), "type": "payout.updated",
		"createdAt": time.Now().UTC().Format(time.RFC3339), "data": data})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.APIURL+"/v1/provider-callbacks/"+provider, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(providers.SandboxSignatureHeader, providers.SignCallback(providers.SandboxMomoCallbackSecret, time.Now(), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var momoTx = map[string]any{"provider": "momo", "method": "mobile_money", "currency": "KES",
	"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "MPESA"}}

// TestReversalAfterSuccess: the provider paid the refund, then reports it
// failed (Stripe's refund.failed after succeeded, Adyen's REFUNDED_REVERSED).
// The refund becomes REVERSED and its amount is refundable again.
func TestReversalAfterSuccess(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, momoTx)
	id := createRefund(t, s, txID, 3000, "KES")
	done := s.WaitRefund(t, id, 20*time.Second, refund.StatusSucceeded)
	if code := momoCallback(t, s, "momo", map[string]any{"id": done.ProviderReference, "reference": id,
		"status": "failed", "failureCode": "payout_reversed", "failureMessage": "the wallet returned the funds"}); code != http.StatusOK {
		t.Fatalf("callback answered %d", code)
	}
	got := s.WaitRefund(t, id, 20*time.Second, "REVERSED")
	if got.Failure == nil || got.Failure.Code == "" {
		t.Fatalf("reversed refund carries no reason: %+v", got)
	}
	if kinds := ledgerKinds(t, s, id); kinds != "RESERVE,SETTLE,REVERSE" {
		t.Fatalf("ledger %s, want RESERVE,SETTLE,REVERSE", kinds)
	}
	var tx struct {
		Status           refund.TxStatus
		RefundedAmount   int64
		RefundableAmount int64
	}
	rig.Must(t, s.Do(t, "GET", "/v1/transactions/"+txID, nil), http.StatusOK).JSON(t, &tx)
	if tx.RefundedAmount != 0 || tx.RefundableAmount != 10000 || tx.Status != refund.TxCaptured {
		t.Fatalf("transaction after the reversal: %+v, want nothing refunded", tx)
	}
	events := rig.Must(t, s.Do(t, "GET", "/v1/events?refundId="+id, nil), http.StatusOK)
	if !strings.Contains(string(events.Body), `"refund.reversed"`) {
		t.Fatalf("no refund.reversed event: %s", events.Body)
	}
}

// TestCallbackOfAnotherProviderIsRefused: a callback signed by one provider
// names a refund that went to another. It must not move that refund.
func TestCallbackOfAnotherProviderIsRefused(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1206, "EUR") // cardpay …06: processing forever
	s.WaitRefund(t, id, 10*time.Second, refund.StatusProcessing)
	code := momoCallback(t, s, "momo", map[string]any{"id": "po_forged", "reference": id, "status": "failed"})
	if code == http.StatusOK {
		t.Errorf("a momo callback about a cardpay refund was accepted")
	}
	// Give a wrongly accepted signal time to finalize the refund.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		r, err := s.Store.GetRefund(context.Background(), refund.OfMerchant(s.MerchantID), mustUUID(t, id))
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != refund.StatusProcessing {
			t.Fatalf("refund is %s after another provider's callback, want PROCESSING", r.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGiftCardTargetNeedsTheCapability: only a connector that can refund to
// a gift card accepts a gift-card target; otherwise nothing is reserved.
func TestGiftCardTargetNeedsTheCapability(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, map[string]any{"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 3000}}})
	r := s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID, "targetType": "GIFT_CARD_REDEMPTION",
		"targetId": "gc-1", "refundValue": map[string]any{"amount": 1000, "currency": "EUR"}})
	rig.AssertProblem(t, r, http.StatusUnprocessableEntity, "refund.target_unsupported")
	var tx struct{ ReservedAmount int64 }
	rig.Must(t, s.Do(t, "GET", "/v1/transactions/"+txID, nil), http.StatusOK).JSON(t, &tx)
	if tx.ReservedAmount != 0 {
		t.Fatalf("reserved %d after a refused refund", tx.ReservedAmount)
	}
}

// TestPaymentMethodRefundCappedAtCapturedLessGiftCards: a refund to the
// payment method never covers what was paid by gift card (003: "a full
// refund for the main payment method").
func TestPaymentMethodRefundCappedAtCapturedLessGiftCards(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, map[string]any{"provider": "orchestra", "currency": "USD",
		"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 3000}}})
	over := s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": 7001, "currency": "USD"}})
	rig.AssertProblem(t, over, http.StatusUnprocessableEntity, refund.CodeAmountInsufficient)
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID}), http.StatusAccepted)
	var full refund.Object
	r.JSON(t, &full)
	if full.RefundValue.Amount != 7000 {
		t.Fatalf("full payment-method refund of %d, want 7000 (10000 captured, 3000 by gift card)", full.RefundValue.Amount)
	}
	gc := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-1"}), http.StatusAccepted)
	var gift refund.Object
	gc.JSON(t, &gift)
	if gift.RefundValue.Amount != 3000 {
		t.Fatalf("gift-card refund of %d, want 3000", gift.RefundValue.Amount)
	}
}

// TestTransactionRegisteredOnce: registering the same payment again answers
// the existing transaction; a different body for it is a conflict. Nothing
// is counted twice.
func TestTransactionRegisteredOnce(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	var sess struct{ SessionID string }
	rig.Must(t, s.Do(t, "POST", "/v1/sessions", map[string]any{}), http.StatusCreated).JSON(t, &sess)
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 5000,
		"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_once_" + uuid.NewString()[:8]}
	var first, again struct{ TransactionID string }
	rig.Must(t, s.Do(t, "POST", "/v1/transactions", body), http.StatusCreated).JSON(t, &first)
	rig.Must(t, s.Do(t, "POST", "/v1/transactions", body), http.StatusOK).JSON(t, &again)
	if again.TransactionID != first.TransactionID {
		t.Fatalf("re-registration answered transaction %s, want %s", again.TransactionID, first.TransactionID)
	}
	body["amount"] = 6000
	rig.AssertProblem(t, s.Do(t, "POST", "/v1/transactions", body), http.StatusConflict, "transaction.duplicate")
	var n int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM transactions WHERE provider_reference = $1`,
		body["providerReference"]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d transactions for one payment (%v)", n, err)
	}
}

// TestIdempotentCreateSurvivesALostResponse: the server committed a
// session, endpoint or rotation and crashed before it stored the response
// for the Idempotency-Key. A retry after the stale-lock time must answer the
// original, not create another.
func TestIdempotentCreateSurvivesALostResponse(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	ctx := context.Background()
	crash := func(key string) {
		t.Helper()
		tag, err := s.Pool.Exec(ctx, `UPDATE idempotency_keys SET response_status = NULL, response_body = NULL,
			locked_at = now() - interval '10 minutes' WHERE key = $1`, key)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("forget the stored response of %s: %v (%d rows)", key, err, tag.RowsAffected())
		}
	}
	cases := []struct {
		name, path string
		body       any
		id         func(rig.Response) string
	}{
		{"session", "/v1/sessions", map[string]any{}, func(r rig.Response) string {
			var v struct{ SessionID string }
			r.JSON(t, &v)
			return v.SessionID
		}},
		{"webhook endpoint", "/v1/webhook-endpoints", map[string]any{"url": "https://example.test/hooks"}, func(r rig.Response) string {
			var v struct{ ID, Secret string }
			r.JSON(t, &v)
			return v.ID + " " + v.Secret
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := uuid.NewString()
			first := s.Do(t, "POST", c.path, c.body, "Idempotency-Key", key)
			if first.Status != http.StatusCreated {
				t.Fatalf("first: %d %s", first.Status, first.Body)
			}
			crash(key)
			again := s.Do(t, "POST", c.path, c.body, "Idempotency-Key", key)
			if again.Status != http.StatusCreated || c.id(again) != c.id(first) {
				t.Fatalf("retry answered %d %s, want the original %s", again.Status, again.Body, first.Body)
			}
		})
	}
	t.Run("secret rotation", func(t *testing.T) {
		var ep struct{ ID, Secret string }
		rig.Must(t, s.Do(t, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://example.test/rotate"}),
			http.StatusCreated).JSON(t, &ep)
		key := uuid.NewString()
		path := fmt.Sprintf("/v1/webhook-endpoints/%s/rotate-secret", ep.ID)
		var first, again struct{ Secret string }
		rig.Must(t, s.Do(t, "POST", path, nil, "Idempotency-Key", key), http.StatusOK).JSON(t, &first)
		crash(key)
		rig.Must(t, s.Do(t, "POST", path, nil, "Idempotency-Key", key), http.StatusOK).JSON(t, &again)
		if again.Secret != first.Secret {
			t.Fatalf("the retried rotation made another secret: the merchant's current secret would be dropped")
		}
	})
}

// TestFinalCallbackForATerminatedWorkflow: the provider's final answer
// arrives while the refund's workflow is terminated. It is not dropped: the
// workflow is resumed with the answer in hand.
func TestFinalCallbackForATerminatedWorkflow(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, momoTx)
	id := createRefund(t, s, txID, 3006, "KES") // …06: processing forever at the provider
	got := s.WaitRefund(t, id, 10*time.Second, refund.StatusProcessing)
	ctx := context.Background()
	if err := s.Temporal.TerminateWorkflow(ctx, workflows.RefundWorkflowID(mustUUID(t, id)), "", "test: operator mistake"); err != nil {
		t.Fatal(err)
	}
	ref := got.ProviderReference
	if ref == "" {
		r, err := s.Store.GetRefund(ctx, refund.OfMerchant(s.MerchantID), mustUUID(t, id))
		if err != nil {
			t.Fatal(err)
		}
		ref = r.ProviderReference
	}
	if code := momoCallback(t, s, "momo", map[string]any{"id": ref, "reference": id, "status": "successful"}); code != http.StatusOK {
		t.Fatalf("callback answered %d", code)
	}
	s.WaitRefund(t, id, 20*time.Second, refund.StatusSucceeded)
	if kinds := ledgerKinds(t, s, id); kinds != "RESERVE,SETTLE" {
		t.Fatalf("ledger %s, want RESERVE,SETTLE", kinds)
	}
}
