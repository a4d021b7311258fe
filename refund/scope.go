package refund

import (
	"errors"

	"github.com/google/uuid"
)

// Scope says whose rows a read may see: one merchant's, or every merchant's
// (ops, the workflows, the reconciler). The zero Scope sees nothing, so a
// caller that forgot to say fails closed.
type Scope struct {
	merchant uuid.UUID
	all      bool
}

// OfMerchant is the scope of one merchant's rows.
func OfMerchant(id uuid.UUID) Scope { return Scope{merchant: id} }

// AllMerchants is the scope of ops and of Backflow's own processes.
var AllMerchants = Scope{all: true}

// ErrNoScope is a read without a scope: a bug, never "every merchant".
var ErrNoScope = errors.New("read without a merchant scope")

// MerchantFilter is the scope as a SQL argument: nil for every merchant,
// else the merchant's id; ErrNoScope for the zero Scope.
func (s Scope) MerchantFilter() (*uuid.UUID, error) {
	switch {
	case s.all:
		return nil, nil
	case s.merchant != uuid.Nil:
		id := s.merchant
		return &id, nil
	}
	return nil, ErrNoScope
}

// ReadScope is what a caller may read: its merchant's rows, or every
// merchant's for an ops key.
func (p Principal) ReadScope() Scope {
	if p.HasScope(ScopeOps) && p.MerchantID == uuid.Nil {
		return AllMerchants
	}
	return OfMerchant(p.MerchantID)
}
