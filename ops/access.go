package ops

import (
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// Merchant is a merchant as the ops API shows it.
type Merchant struct {
	MerchantID uuid.UUID `json:"merchantId"`
	Name       string    `json:"name"`
	// ApprovalThreshold: refunds above it (minor units) wait for an ops
	// approval; null when none do.
	ApprovalThreshold *int64    `json:"approvalThreshold"`
	CreatedAt         time.Time `json:"createdAt"`
}

// MerchantOf renders a stored merchant.
func MerchantOf(m refund.Merchant) Merchant {
	return Merchant{MerchantID: m.ID, Name: m.Name, ApprovalThreshold: m.ApprovalThreshold, CreatedAt: m.CreatedAt.UTC()}
}

// MerchantPage is GET /v1/ops/merchants, newest first.
type MerchantPage struct {
	Data       []Merchant `json:"data"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// NewMerchantRequest is the body of POST /v1/ops/merchants.
type NewMerchantRequest struct {
	Name              string `json:"name"`
	ApprovalThreshold *int64 `json:"approvalThreshold,omitempty"`
}

// APIKey is a key as the ops API shows it. Key, its secret, is only set in
// the answer to its creation: Backflow keeps its hash, never the key.
type APIKey struct {
	KeyID      uuid.UUID  `json:"keyId"`
	MerchantID uuid.UUID  `json:"merchantId"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"createdAt"`
	LastUsedAt *time.Time `json:"lastUsedAt,omitempty"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
	Key        string     `json:"key,omitempty"`
}

// APIKeyOf renders a stored key, without its secret.
func APIKeyOf(k refund.APIKey) APIKey {
	return APIKey{KeyID: k.ID, MerchantID: k.MerchantID, Name: k.Name, Prefix: k.Prefix, Scopes: k.Scopes,
		CreatedAt: k.CreatedAt.UTC(), LastUsedAt: utc(k.LastUsedAt), RevokedAt: utc(k.RevokedAt)}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// APIKeyList is GET /v1/ops/merchants/{merchantId}/api-keys, oldest first.
type APIKeyList struct {
	Data []APIKey `json:"data"`
}

// NewAPIKeyRequest is the body of POST /v1/ops/merchants/{merchantId}/api-keys.
// Scopes omitted: refunds:read, refunds:write and webhooks:manage.
type NewAPIKeyRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes,omitempty"`
}
