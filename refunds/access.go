package refunds

import (
	"context"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// Authenticate finds the principal behind an API key; refund.ErrNotFound
// when the key is unknown or revoked.
func (s *Service) Authenticate(ctx context.Context, key string) (refund.Principal, error) {
	return s.store.Authenticate(ctx, key)
}

// IdempotencyKey is one Idempotency-Key of one owner (a merchant, or an
// ops key) on one endpoint.
type IdempotencyKey struct {
	Owner    uuid.UUID
	Endpoint string // method and path
	Key      string
}

// ClaimKey claims a key for one request. A stored response means the
// request ran before: replay it. refund.ErrIdempotencyMismatch when the key
// came with another body, refund.ErrIdempotencyInProgress while the first
// request runs.
func (s *Service) ClaimKey(ctx context.Context, k IdempotencyKey, fingerprint []byte) (*refund.StoredResponse, error) {
	return s.store.ClaimIdempotencyKey(ctx, k.Owner, k.Endpoint, k.Key, fingerprint)
}

// CompleteKey stores the response of a request that took effect.
func (s *Service) CompleteKey(ctx context.Context, k IdempotencyKey, resp refund.StoredResponse) error {
	return s.store.CompleteIdempotencyKey(ctx, k.Owner, k.Endpoint, k.Key, resp)
}

// ReleaseKey forgets the claim of a request that was refused or failed, so
// the client may fix it and retry with the same key.
func (s *Service) ReleaseKey(ctx context.Context, k IdempotencyKey) error {
	return s.store.ReleaseIdempotencyKey(ctx, k.Owner, k.Endpoint, k.Key)
}
