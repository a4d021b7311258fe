package reliability_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// The money rules at the edges (SPEC §12): answers that are neither success
// nor a clean failure, workflows that die, payments registered twice.

// refundOnEveryProvider creates n refunds of amount on each sandbox provider
// for m and returns their ids.
func refundOnEveryProvider(t *testing.T, r *rig.Rig, m rig.Merchant, n int, amount int64) []string {
	t.Helper()
	ctx := context.Background()
	c := r.Client(m)
	var ids []string
	for _, p := range rig.Providers {
		for range n {
			tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, p.Fields))
			ids = append(ids, must[string](t)(c.Refund(ctx, tx, amount)))
		}
	}
	return ids
}

// waitAll waits until every refund is final and returns them by status.
func waitAll(t *testing.T, r *rig.Rig, m rig.Merchant, timeout time.Duration) map[refund.Status]int {
	t.Helper()
	ctx := context.Background()
	if err := rig.WaitSettled(ctx, r.Store, timeout, m.ID); err != nil {
		t.Fatal(err)
	}
	return rig.CountByStatus(must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID)))
}

// TestStatusChecksAnswering401 (SPEC §12: 401/403 are never final): every
// provider accepted its refunds as processing, then answers every status
// check 401 for a while (rotated credentials). No refund may be released;
// each waits, flagged stuck for provider.auth, and ends with the provider's
// own answer.
func TestStatusChecksAnswering401(t *testing.T) {
	sc := begin(t, "12. Provider answers 401/403 to status checks of in-flight refunds")
	ctx := context.Background()
	var mu sync.Mutex
	outageEnds := time.Now().Add(time.Hour)
	var refused int
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{AsyncDelay: 3 * time.Second,
		ProviderProxy: func(next http.Handler) http.Handler {
			return rig.NewFaultProxy(next, func(req *http.Request, _ int) rig.Fault {
				mu.Lock()
				defer mu.Unlock()
				if req.Method == http.MethodGet && time.Now().Before(outageEnds) {
					refused++
					return rig.Fault401
				}
				return rig.FaultNone
			}, 5*time.Second)
		}}})
	m := newMerchant(t, r)
	mu.Lock()
	outageEnds = time.Now().Add(6 * time.Second)
	mu.Unlock()
	ids := refundOnEveryProvider(t, r, m, 2, 1204) // …04: processing, succeeds 3 s later by callback
	sc.inject("every status check answered 401 for 6 s while %d refunds on 5 providers were processing", len(ids))

	stuck := map[string]bool{}
	err := rig.Poll(ctx, 10*time.Second, "refunds flagged stuck for provider.auth", func(ctx context.Context) (bool, error) {
		rs, err := rig.Refunds(ctx, r.Store, m.ID)
		for _, rf := range rs {
			if rf.Stuck && rf.StuckReason == refund.StuckAuth {
				stuck[rf.ID.String()] = true
			}
			if rf.Status != refund.StatusPending && rf.Status != refund.StatusProcessing && rf.Status != refund.StatusSucceeded {
				return false, fmt.Errorf("refund %s is %s during the outage: a 401 ended it", rf.ID, rf.Status)
			}
		}
		return len(stuck) > 0, err
	})
	if err != nil {
		t.Fatal(err)
	}
	byStatus := waitAll(t, r, m, 60*time.Second)
	if byStatus[refund.StatusSucceeded] != len(ids) {
		t.Fatalf("statuses %v, want all %d SUCCEEDED", byStatus, len(ids))
	}
	mu.Lock()
	sc.verified("%d status checks refused; %d refunds flagged stuck (provider.auth) during the outage, none released; all %d SUCCEEDED by the provider's answer",
		refused, len(stuck), len(ids))
	mu.Unlock()
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}

// TestRetriedSubmitAnswered409: the first submit of each refund reached the
// provider but its answer was lost, and every retry with the same key gets
// 409 (duplicate request). The refunds exist at the provider: each must end
// SUCCEEDED, once, never released on the 409.
func TestRetriedSubmitAnswered409(t *testing.T) {
	sc := begin(t, "13. A retried submit gets 409")
	ctx := context.Background()
	proxies := make(chan *rig.FaultProxy, 1)
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{ProviderProxy: func(next http.Handler) http.Handler {
		p := rig.NewFaultProxy(next, rig.Plans(func(_ *http.Request, attempt int) rig.Fault {
			if attempt == 1 {
				return rig.FaultLost
			}
			return rig.Fault409
		}, nil), 5*time.Second)
		proxies <- p
		return p
	}}})
	proxy := <-proxies
	m := newMerchant(t, r)
	ids := refundOnEveryProvider(t, r, m, 2, 1200)
	byStatus := waitAll(t, r, m, 60*time.Second)
	if byStatus[refund.StatusSucceeded] != len(ids) {
		t.Fatalf("statuses %v, want all %d SUCCEEDED", byStatus, len(ids))
	}
	sc.inject("%d refunds on 5 providers: first submit processed, answer lost; every retry answered 409 (%s)", len(ids), proxy.Describe())
	sc.verified("all %d SUCCEEDED with exactly one refund at the provider each", len(ids))
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}

// TestTerminatedWorkflowsAreRepaired: the workflows of refunds in progress
// are terminated (an operator's mistake, a bad deploy). The reconciler finds
// each refund whose workflow closed without finishing it and resumes it,
// looking the refund up first: nothing is sent twice, nothing is released.
func TestTerminatedWorkflowsAreRepaired(t *testing.T) {
	sc := begin(t, "14. Workflow terminated mid-refund is repaired")
	ctx := context.Background()
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{AsyncDelay: 4 * time.Second}})
	m := newMerchant(t, r)
	ids := refundOnEveryProvider(t, r, m, 2, 1204) // processing for 4 s, then a callback nobody receives
	err := rig.Poll(ctx, 10*time.Second, "every refund processing", func(ctx context.Context) (bool, error) {
		rs, err := rig.Refunds(ctx, r.Store, m.ID)
		return rig.CountByStatus(rs)[refund.StatusProcessing] == len(ids), err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := r.Temporal.TerminateWorkflow(ctx, workflows.RefundWorkflowID(uuid.MustParse(id)), "", "reliability: terminated mid-refund"); err != nil {
			t.Fatal(err)
		}
	}
	sc.inject("%d workflows on 5 providers terminated while their refunds were PROCESSING; their callbacks arrived while no workflow ran", len(ids))
	resumed := 0
	err = rig.Poll(ctx, 60*time.Second, "every refund resumed and final", func(ctx context.Context) (bool, error) {
		rep, err := r.Activities.Reconcile(ctx)
		resumed += rep.WorkflowsResumed
		if err != nil {
			return false, err
		}
		n, err := rig.Live(ctx, r.Store, m.ID)
		return n == 0, err
	})
	if err != nil {
		t.Fatal(err)
	}
	byStatus := rig.CountByStatus(must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID)))
	if byStatus[refund.StatusSucceeded] != len(ids) || resumed != len(ids) {
		t.Fatalf("statuses %v, %d resumed; want all %d SUCCEEDED and resumed", byStatus, resumed, len(ids))
	}
	if st := r.Sandbox.Stats(); st.CreateRequests != len(ids) {
		t.Fatalf("the provider got %d create requests for %d refunds: a resumed run re-sent instead of looking up", st.CreateRequests, len(ids))
	}
	sc.verified("the reconciler resumed all %d; each looked its refund up (no second create request) and SUCCEEDED", resumed)
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}

// TestReversalAfterSuccess: refunds on every provider succeed, then the
// provider reverses them (sandbox outcome 08: a callback, and status checks
// say reversed). Each becomes REVERSED once, its amount is refundable again,
// and refund.reversed reaches the merchant.
func TestReversalAfterSuccess(t *testing.T) {
	sc := begin(t, "15. Reversal after success")
	ctx := context.Background()
	echo := rig.NewCallbackEcho()
	receiver := newHookReceiver(t)
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{APIProxy: echo.Wrap,
		WebhookPolicy: &activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: time.Second, GiveUpAfter: time.Minute, AttemptTimeout: 2 * time.Second}}})
	echo.SetAPIURL(r.APIURL)
	m := newMerchant(t, r)
	c := r.Client(m)
	var ep struct{ Secret string }
	resp := must[rig.Response](t)(c.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": receiver.srv.URL}))
	if resp.Status != http.StatusCreated || resp.Decode(&ep) != nil {
		t.Fatalf("create endpoint: %d %s", resp.Status, resp.Body)
	}
	receiver.mu.Lock()
	receiver.secret = ep.Secret
	receiver.mu.Unlock()
	ids := refundOnEveryProvider(t, r, m, 2, 1208)
	err := rig.Poll(ctx, 40*time.Second, "every refund reversed", func(ctx context.Context) (bool, error) {
		rs, err := rig.Refunds(ctx, r.Store, m.ID)
		return rig.CountByStatus(rs)[refund.StatusReversed] == len(ids), err
	})
	if err != nil {
		t.Fatal(err)
	}
	late, err := echo.Replay(ctx) // every reversal callback again, after the fact
	if err != nil {
		t.Fatal(err)
	}
	dup, _ := echo.Counts()
	sc.inject("%d refunds on 5 providers reversed by the provider after they succeeded; %d callbacks duplicated at once, %d replayed late", len(ids), dup, late)
	for _, id := range ids {
		rf := must[refund.Object](t)(c.GetRefund(ctx, id))
		if rf.Status != refund.StatusReversed {
			t.Fatalf("refund %s is %s after the late callbacks", id, rf.Status)
		}
		tx := must[rig.TransactionState](t)(c.GetTransaction(ctx, rf.OriginalTransactionID.String()))
		if tx.RefundedAmount != 0 || tx.RefundableAmount != tx.Amount || tx.Status != refund.TxCaptured {
			t.Fatalf("transaction of reversed refund %s: %+v", id, tx)
		}
	}
	check := fullCheck(r, nil, m)
	check.Webhooks, check.WebhookGrace = true, time.Second
	// Delivered means the endpoint verified each refund.reversed, and the
	// webhook invariants hold once no event is younger than the grace.
	reversedEvents := func() int {
		receiver.mu.Lock()
		defer receiver.mu.Unlock()
		n := 0
		for _, typ := range receiver.types {
			if typ == "refund.reversed" {
				n++
			}
		}
		return n
	}
	err = rig.Poll(ctx, 30*time.Second, "refund.reversed delivered", func(ctx context.Context) (bool, error) {
		if reversedEvents() < len(ids) {
			return false, nil
		}
		time.Sleep(check.WebhookGrace)
		rep, err := invariants.Check(ctx, r.Store.Pool(), check)
		return err == nil && rep.OK(), err
	})
	if err != nil {
		t.Fatalf("%v: the endpoint verified %d refund.reversed events, want %d", err, reversedEvents(), len(ids))
	}
	if n := reversedEvents(); n != len(ids) {
		t.Fatalf("the endpoint verified %d refund.reversed events, want each of the %d once", n, len(ids))
	}
	sc.verified("all %d REVERSED once (SETTLE then REVERSE), refundable again; %d refund.reversed events delivered, signed", len(ids), reversedEvents())
	sc.invariants(ctx, r.Store.Pool(), check)
}

// TestSameTransactionRegisteredConcurrently: the platform registers one
// payment 20 times at once (retries, a double click, two services). One
// transaction, one balance, whatever the interleaving.
func TestSameTransactionRegisteredConcurrently(t *testing.T) {
	sc := begin(t, "16. Same transaction registered concurrently ×20")
	ctx := context.Background()
	r := startRig(t, rigOptions{})
	m := newMerchant(t, r)
	c := r.Client(m)
	var sess struct{ SessionID string }
	resp := must[rig.Response](t)(c.Do(ctx, "POST", "/v1/sessions", map[string]any{}))
	if resp.Status != http.StatusCreated || resp.Decode(&sess) != nil {
		t.Fatalf("session: %d %s", resp.Status, resp.Body)
	}
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000, "currency": "EUR",
		"status": "CAPTURED", "providerReference": "pay_twenty_" + uuid.NewString()[:8],
		"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 2000}}}
	other := map[string]any{}
	for k, v := range body {
		other[k] = v
	}
	other["amount"] = 20000
	const n = 20
	resps := make([]rig.Response, 2*n)
	race(2*n, func(i int) {
		b := body
		if i >= n {
			b = other // the same payment with other details
		}
		var err error
		if resps[i], err = c.Do(ctx, "POST", "/v1/transactions", b); err != nil {
			t.Error(err)
		}
	})
	sc.inject("%d concurrent POST /v1/transactions of one payment: %d with the same body, %d with another amount", 2*n, n, n)
	ids := map[string]bool{}
	codes := map[int]int{}
	for _, resp := range resps {
		codes[resp.Status]++
		switch resp.Status {
		case http.StatusCreated, http.StatusOK:
			var tx struct{ TransactionID string }
			if err := resp.Decode(&tx); err != nil {
				t.Fatal(err)
			}
			ids[tx.TransactionID] = true
		case http.StatusConflict:
			if p, ok := resp.Problem(); !ok || p.Code != refund.CodeTransactionDup {
				t.Fatalf("409 without transaction.duplicate: %s", resp.Body)
			}
		default:
			t.Fatalf("unexpected %d %s", resp.Status, resp.Body)
		}
	}
	if len(ids) != 1 || codes[http.StatusCreated] != 1 || codes[http.StatusConflict] < n-1 {
		t.Fatalf("%d transactions, answers %v; want one transaction, one 201", len(ids), codes)
	}
	var rows int
	if err := r.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM transactions WHERE merchant_id = $1`, m.ID).Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("%d transaction rows (%v)", rows, err)
	}
	// The balance is counted once: a full refund to the payment method
	// leaves nothing for another.
	var txID string
	for id := range ids {
		txID = id
	}
	tx := rig.Transaction{ID: txID, Currency: "EUR"}
	if resp := must[rig.Response](t)(c.CreateRefund(ctx, map[string]any{"originalTransactionId": txID}, "")); resp.Status != http.StatusAccepted {
		t.Fatalf("full refund: %d %s", resp.Status, resp.Body)
	}
	if resp := must[rig.Response](t)(c.CreateRefund(ctx, rig.RefundBody(tx, 100), "")); resp.Status != http.StatusUnprocessableEntity {
		t.Fatalf("a refund past the payment method's balance answered %d %s", resp.Status, resp.Body)
	}
	waitAll(t, r, m, 30*time.Second)
	sc.verified("one transaction: %d × 201, %d × 200 (same body), %d × 409 transaction.duplicate; its balance counted once", codes[http.StatusCreated],
		codes[http.StatusOK], codes[http.StatusConflict])
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}
