package refunds

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// CreateSession opens a checkout session; a retry with the same
// Idempotency-Key returns the session it made.
func (s *Service) CreateSession(ctx context.Context, merchantID uuid.UUID, idempotencyKey string) (uuid.UUID, error) {
	return s.store.CreateSession(ctx, merchantID, idempotencyKey)
}

// RegisterTransaction registers a payment once: registering it again with
// the same details returns it with created=false.
func (s *Service) RegisterTransaction(ctx context.Context, in refund.NewTransaction) (refund.Transaction, bool, error) {
	return s.store.CreateTransaction(ctx, in)
}

// GetTransaction reads a transaction the scope can see.
func (s *Service) GetTransaction(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Transaction, error) {
	t, err := s.store.GetTransaction(ctx, scope, id)
	if errors.Is(err, refund.ErrNotFound) {
		return t, notFound(refund.CodeTransactionNotFound, id)
	}
	return t, err
}
