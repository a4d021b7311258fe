package invariants_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type counter map[string]int

func (c counter) Count(key string) int { return c[key] }

// world is one merchant with a captured transaction (line item sku-1 500 × 4,
// gift card gc-1 3000) and three refunds: one settled, one released, one live.
type world struct {
	merchant uuid.UUID
	tx       uuid.UUID
	settled  refund.Refund
	released refund.Refund
	live     refund.Refund
}

func newWorld(t *testing.T) world {
	t.Helper()
	ctx := context.Background()
	st := testenv.Get(t).Store
	m, err := st.CreateMerchant(ctx, "inv-"+uuid.NewString()[:8], nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := st.CreateSession(ctx, m.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	tx, _, err := st.CreateTransaction(ctx, refund.NewTransaction{MerchantID: m.ID, SessionID: sess, Provider: "cardpay", Method: "card",
		Amount: 10000, Currency: "EUR", Status: refund.TxCaptured, ProviderReference: "pay_x",
		LineItems:           []refund.LineItem{{ID: "sku-1", Amount: 500, Quantity: 4}},
		GiftCardRedemptions: []refund.GiftCardRedemption{{ID: "gc-1", Amount: 3000}}})
	if err != nil {
		t.Fatal(err)
	}
	route := func(refund.Transaction, string) (refund.Method, error) { return refund.MethodProviderRefund, nil }
	mk := func(in refund.NewRefund) refund.Refund {
		in.MerchantID, in.TransactionID, in.Route = m.ID, tx.ID, route
		r, err := st.CreateRefund(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	w := world{merchant: m.ID, tx: tx.ID}
	w.settled = mk(refund.NewRefund{LineItems: []refund.RefundLineItem{{ID: "sku-1", Quantity: 2}}})
	w.released = mk(refund.NewRefund{Amount: 500, TargetType: refund.TargetGiftCard, TargetID: "gc-1"})
	w.live = mk(refund.NewRefund{Amount: 700, TargetType: refund.TargetGiftCard, TargetID: "gc-1"})
	if _, _, err := st.Finalize(ctx, w.settled.ID, refund.Outcome{Status: refund.StatusSucceeded, ProviderReference: "re_" + uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Finalize(ctx, w.released.ID, refund.Outcome{Status: refund.StatusDeclined, FailureCode: "declined"}); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w world) check(t *testing.T, c invariants.Counter) invariants.Report {
	t.Helper()
	o := invariants.Options{Merchants: []uuid.UUID{w.merchant}}
	if c != nil {
		o.Provider = c
	}
	rep, err := invariants.Check(context.Background(), testenv.Get(t).Pool, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestConsistentDataPasses(t *testing.T) {
	w := newWorld(t)
	rep := w.check(t, counter{w.settled.ID.String(): 1, w.released.ID.String(): 1})
	if !rep.OK() {
		t.Fatalf("violations on consistent data: %v", rep.Violations)
	}
	if rep.Refunds != 3 || rep.Transactions != 1 || rep.Events != 5 || rep.ByStatus[string(refund.StatusPending)] != 1 {
		t.Fatalf("report = %+v", rep)
	}
}

// TestCorruptionIsCaught breaks one rule at a time behind the store's back
// and expects the checker to name it: the checker can fail.
func TestCorruptionIsCaught(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(w world) string // SQL run against the world; "" for none
		counter func(w world) counter
		rule    string
		detail  string
	}{
		{"reserved balance drifts from the ledger", func(w world) string {
			return `UPDATE transactions SET reserved_amount = reserved_amount - 100 WHERE id = '` + w.tx.String() + `'`
		}, nil, invariants.RuleLedger, "reserved is"},
		{"refunded without a SETTLE entry", func(w world) string {
			return `DELETE FROM ledger_entries WHERE refund_id = '` + w.settled.ID.String() + `' AND kind = 'SETTLE'`
		}, nil, invariants.RuleReservation, "SUCCEEDED with 0 SETTLE"},
		{"a released refund flipped to succeeded", func(w world) string {
			return `UPDATE refunds SET status = 'SUCCEEDED' WHERE id = '` + w.released.ID.String() + `'`
		}, nil, invariants.RuleReservation, "SUCCEEDED with 0 SETTLE"},
		{"line item quantity drifts", func(w world) string {
			return `UPDATE transaction_line_items SET refunded_quantity = 1 WHERE transaction_id = '` + w.tx.String() + `'`
		}, nil, invariants.RuleLedger, "succeeded refunds 2"},
		{"gift card reservation leaks", func(w world) string {
			return `UPDATE gift_card_redemptions SET reserved_amount = 1200 WHERE transaction_id = '` + w.tx.String() + `'`
		}, nil, invariants.RuleLedger, "live refunds hold 700"},
		{"transaction status wrong", func(w world) string {
			return `UPDATE transactions SET status = 'CAPTURED' WHERE id = '` + w.tx.String() + `'`
		}, nil, invariants.RuleTransactionStatus, "want PARTIALLY_REFUNDED"},
		{"final event missing", func(w world) string {
			return `DELETE FROM refund_events WHERE refund_id = '` + w.released.ID.String() + `' AND type = 'refund.failed'`
		}, nil, invariants.RuleEvents, "0 final events"},
		{"two refunds at the provider", nil, func(w world) counter {
			return counter{w.settled.ID.String(): 2, w.released.ID.String(): 1}
		}, invariants.RuleProvider, "want exactly 1"},
		{"succeeded but unknown to the provider", nil, func(w world) counter {
			return counter{w.released.ID.String(): 1}
		}, invariants.RuleProvider, "SUCCEEDED with 0 refunds"},
		{"live refund already at the provider twice", nil, func(w world) counter {
			return counter{w.settled.ID.String(): 1, w.live.ID.String(): 2}
		}, invariants.RuleProvider, "at most 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			if tc.corrupt != nil {
				if _, err := testenv.Get(t).Pool.Exec(context.Background(), tc.corrupt(w)); err != nil {
					t.Fatal(err)
				}
			}
			c := counter{w.settled.ID.String(): 1, w.released.ID.String(): 1}
			if tc.counter != nil {
				c = tc.counter(w)
			}
			rep := w.check(t, c)
			for _, v := range rep.Violations {
				if v.Rule == tc.rule && strings.Contains(v.Detail, tc.detail) {
					return
				}
			}
			t.Fatalf("no %s violation mentioning %q; got %v", tc.rule, tc.detail, rep.Violations)
		})
	}
}
