package refunds

import (
	"context"
	"errors"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// Authenticate finds the principal behind an API key; refund.ErrNotFound
// when the key is unknown or revoked, or when keyID is given (HTTP Basic
// with the key id as user name) and is not that key's id.
func (s *Service) Authenticate(ctx context.Context, key string, keyID uuid.UUID) (refund.Principal, error) {
	p, err := s.store.Authenticate(ctx, key)
	if err == nil && keyID != uuid.Nil && keyID != p.KeyID {
		return refund.Principal{}, refund.ErrNotFound
	}
	return p, err
}

// CreateMerchant adds a merchant (a tenant).
func (s *Service) CreateMerchant(ctx context.Context, in refund.NewMerchant) (refund.Merchant, error) {
	if err := in.Validate(); err != nil {
		return refund.Merchant{}, err
	}
	return s.store.CreateMerchant(ctx, in.Name, in.ApprovalThreshold)
}

// GetMerchant reads a merchant.
func (s *Service) GetMerchant(ctx context.Context, id uuid.UUID) (refund.Merchant, error) {
	m, err := s.store.GetMerchant(ctx, id)
	if errors.Is(err, refund.ErrNotFound) {
		return m, notFound(refund.CodeMerchantNotFound, id)
	}
	return m, err
}

// ListMerchants returns a page of merchants, newest first, and the next page's cursor.
func (s *Service) ListMerchants(ctx context.Context, after uuid.UUID, limit int) ([]refund.Merchant, uuid.UUID, error) {
	return s.store.ListMerchants(ctx, after, limit)
}

// CreateAPIKey creates a key and returns it with its secret in clear, the
// only time the secret is known: Backflow stores its hash.
func (s *Service) CreateAPIKey(ctx context.Context, in refund.NewAPIKey) (refund.APIKey, string, error) {
	if err := in.Validate(); err != nil {
		return refund.APIKey{}, "", err
	}
	k, secret, err := s.store.InsertAPIKey(ctx, in)
	if errors.Is(err, refund.ErrNotFound) {
		return k, "", notFound(refund.CodeMerchantNotFound, in.MerchantID)
	}
	return k, secret, err
}

// ListAPIKeys lists a merchant's keys, revoked ones included, without secrets.
func (s *Service) ListAPIKeys(ctx context.Context, merchantID uuid.UUID) ([]refund.APIKey, error) {
	if _, err := s.GetMerchant(ctx, merchantID); err != nil {
		return nil, err
	}
	return s.store.ListAPIKeys(ctx, merchantID)
}

// RevokeAPIKey revokes a key: requests with it are 401 from now on.
// Revoking it again changes nothing.
func (s *Service) RevokeAPIKey(ctx context.Context, id uuid.UUID) (refund.APIKey, error) {
	k, err := s.store.RevokeAPIKey(ctx, id)
	if errors.Is(err, refund.ErrNotFound) {
		return k, notFound(refund.CodeAPIKeyNotFound, id)
	}
	return k, err
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
