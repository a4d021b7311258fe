package testenv

import (
	"context"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
)

// Payment is a captured payment of a fresh merchant, registered straight
// in the store, for tests below the API.
type Payment struct {
	Merchant refund.Merchant
	Session  uuid.UUID
	Tx       refund.Transaction
}

// NewPayment registers a captured payment of amount EUR on provider for a
// new merchant; edit, when set, adjusts the registration first.
func NewPayment(t testing.TB, st *store.Store, provider string, amount int64, edit func(*refund.NewTransaction)) Payment {
	t.Helper()
	ctx := context.Background()
	m, err := st.CreateMerchant(ctx, "test-"+uuid.NewString()[:8], nil)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := st.CreateSession(ctx, m.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	in := refund.NewTransaction{MerchantID: m.ID, SessionID: sess, Provider: provider, Method: "card", Amount: amount,
		Currency: "EUR", Status: refund.TxCaptured, ProviderReference: "pay_" + uuid.NewString()[:8]}
	if edit != nil {
		edit(&in)
	}
	tx, _, err := st.CreateTransaction(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	return Payment{Merchant: m, Session: sess, Tx: tx}
}

// ProviderRefunds routes every refund to the provider's refund API.
func ProviderRefunds(refund.Transaction, string) (refund.Method, error) {
	return refund.MethodProviderRefund, nil
}
