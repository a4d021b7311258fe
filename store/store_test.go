package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
)

func newRefund(t *testing.T, p testenv.Payment, amount int64) refund.Refund {
	t.Helper()
	r, err := testenv.Get(t).Store.CreateRefund(context.Background(), refund.NewRefund{MerchantID: p.Merchant.ID,
		TransactionID: p.Tx.ID, Amount: amount, TargetType: refund.TargetPaymentMethod, Route: testenv.ProviderRefunds})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func ledgerKinds(t *testing.T, id uuid.UUID) []string {
	t.Helper()
	entries, err := testenv.Get(t).Store.ListLedger(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range entries {
		kinds = append(kinds, e.Kind)
	}
	return kinds
}

func balance(t *testing.T, id uuid.UUID) refund.Transaction {
	t.Helper()
	tx, err := testenv.Get(t).Store.GetTransaction(context.Background(), refund.AllMerchants, id)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// A refund the rules refuse writes nothing: no refund, no reservation, no ledger row.
func TestRuleErrorLeavesNothingBehind(t *testing.T) {
	st := testenv.Get(t).Store
	ctx := context.Background()
	p := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	for name, in := range map[string]refund.NewRefund{
		"over-refund":       {Amount: 5001},
		"currency mismatch": {Amount: 100, Currency: "USD"},
		"unknown line item": {LineItems: []refund.RefundLineItem{{ID: "nope", Quantity: 1}}},
		"route refused": {Amount: 100, Route: func(refund.Transaction, string) (refund.Method, error) {
			return "", refund.Rule(refund.CodeMethodUnavailable, "no")
		}},
	} {
		in.MerchantID, in.TransactionID, in.TargetType = p.Merchant.ID, p.Tx.ID, refund.TargetPaymentMethod
		if in.Route == nil {
			in.Route = testenv.ProviderRefunds
		}
		var rule *refund.RuleError
		if _, err := st.CreateRefund(ctx, in); !errors.As(err, &rule) {
			t.Fatalf("%s: %v, want a RuleError", name, err)
		}
	}
	rs, _, err := st.ListRefunds(ctx, refund.RefundFilter{Scope: refund.OfMerchant(p.Merchant.ID)})
	if err != nil || len(rs) != 0 {
		t.Fatalf("refused refunds left %d rows (%v)", len(rs), err)
	}
	if tx := balance(t, p.Tx.ID); tx.ReservedAmount != 0 || tx.RefundedAmount != 0 {
		t.Fatalf("refused refunds moved the balance: reserved %d refunded %d", tx.ReservedAmount, tx.RefundedAmount)
	}
}

// One ledger row per money move: RESERVE at creation, then SETTLE or
// RELEASE once, however often the refund is finalized.
func TestFinalizeMovesMoneyOnce(t *testing.T) {
	st := testenv.Get(t).Store
	ctx := context.Background()
	p := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	settled, released := newRefund(t, p, 1000), newRefund(t, p, 2000)
	if tx := balance(t, p.Tx.ID); tx.ReservedAmount != 3000 {
		t.Fatalf("reserved %d, want 3000", tx.ReservedAmount)
	}
	for range 3 {
		if _, _, err := st.Finalize(ctx, settled.ID, refund.Outcome{Status: refund.StatusSucceeded}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.Finalize(ctx, released.ID, refund.Outcome{Status: refund.StatusDeclined, FailureCode: "declined"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ledgerKinds(t, settled.ID); !slices.Equal(got, []string{"RESERVE", "SETTLE"}) {
		t.Fatalf("settled refund's ledger %v", got)
	}
	if got := ledgerKinds(t, released.ID); !slices.Equal(got, []string{"RESERVE", "RELEASE"}) {
		t.Fatalf("released refund's ledger %v", got)
	}
	tx := balance(t, p.Tx.ID)
	if tx.ReservedAmount != 0 || tx.RefundedAmount != 1000 || tx.Status != refund.TxPartiallyRefunded {
		t.Fatalf("transaction after finalize: reserved %d refunded %d %s", tx.ReservedAmount, tx.RefundedAmount, tx.Status)
	}
	// A final refund is not finalized otherwise, and a second finalize writes no event.
	r, ev, err := st.Finalize(ctx, settled.ID, refund.Outcome{Status: refund.StatusFailed})
	if err != nil || ev != nil || r.Status != refund.StatusSucceeded {
		t.Fatalf("finalize of a final refund = %s, event %v, %v", r.Status, ev, err)
	}
}

// Reads see one merchant's rows, all merchants' only when asked, and
// nothing without a scope.
func TestMerchantScopeHolds(t *testing.T) {
	st := testenv.Get(t).Store
	ctx := context.Background()
	a := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	b := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	ra := newRefund(t, a, 100)
	if _, err := st.GetRefund(ctx, refund.OfMerchant(b.Merchant.ID), ra.ID); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("merchant b read a's refund: %v", err)
	}
	if _, err := st.GetTransaction(ctx, refund.OfMerchant(b.Merchant.ID), a.Tx.ID); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("merchant b read a's transaction: %v", err)
	}
	if _, err := st.GetRefund(ctx, refund.AllMerchants, ra.ID); err != nil {
		t.Fatalf("ops read: %v", err)
	}
	if _, err := st.GetRefund(ctx, refund.Scope{}, ra.ID); !errors.Is(err, refund.ErrNoScope) {
		t.Fatalf("unscoped read: %v, want ErrNoScope", err)
	}
	if _, _, err := st.ListRefunds(ctx, refund.RefundFilter{}); !errors.Is(err, refund.ErrNoScope) {
		t.Fatalf("unscoped list: %v, want ErrNoScope", err)
	}
	rs, _, err := st.ListRefunds(ctx, refund.RefundFilter{Scope: refund.OfMerchant(b.Merchant.ID)})
	if err != nil || len(rs) != 0 {
		t.Fatalf("merchant b lists %d refunds (%v), want none", len(rs), err)
	}
}

// Pages are newest first, disjoint, and end with no cursor.
func TestListPagination(t *testing.T) {
	st := testenv.Get(t).Store
	ctx := context.Background()
	p := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	var want []uuid.UUID
	for range 5 {
		want = append([]uuid.UUID{newRefund(t, p, 10).ID}, want...)
	}
	var got []uuid.UUID
	var after uuid.UUID
	for pages := 1; ; pages++ {
		rs, next, err := st.ListRefunds(ctx, refund.RefundFilter{Scope: refund.OfMerchant(p.Merchant.ID), After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if next == uuid.Nil {
			if pages != 3 {
				t.Fatalf("%d pages of 2 for 5 refunds", pages)
			}
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages %v, want newest first %v", got, want)
	}
}

// Errors leave the store as the domain's: a database that cannot answer is
// ErrUnavailable, text Postgres cannot store a validation error.
func TestErrorsAreTheDomains(t *testing.T) {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := store.New(pool).GetRefund(ctx, refund.AllMerchants, uuid.New()); !errors.Is(err, refund.ErrUnavailable) {
		t.Fatalf("database down: %v, want ErrUnavailable", err)
	}
	st := testenv.Get(t).Store
	p := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	_, err = st.CreateRefund(ctx, refund.NewRefund{MerchantID: p.Merchant.ID, TransactionID: p.Tx.ID, Amount: 10,
		Reason: "nul \x00 byte", TargetType: refund.TargetPaymentMethod, Route: testenv.ProviderRefunds})
	var rule *refund.RuleError
	if !errors.As(err, &rule) || rule.Code != refund.CodeValidation {
		t.Fatalf("NUL in a reason: %v, want a validation RuleError", err)
	}
	if _, err := st.GetRefund(ctx, refund.AllMerchants, uuid.New()); !errors.Is(err, refund.ErrNotFound) {
		t.Fatalf("unknown refund: %v, want ErrNotFound", err)
	}
}
