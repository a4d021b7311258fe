package refund

import (
	"slices"

	"github.com/google/uuid"
)

// API key scopes.
const (
	ScopeRefundsRead       = "refunds:read"
	ScopeRefundsWrite      = "refunds:write"
	ScopeTransactionsWrite = "transactions:write" // the platform's: registers payments and payout destinations
	ScopeWebhooksManage    = "webhooks:manage"
	ScopeOps               = "ops"
)

// MerchantScopes are all the scopes of a merchant key.
var MerchantScopes = []string{ScopeRefundsRead, ScopeRefundsWrite, ScopeTransactionsWrite, ScopeWebhooksManage}

// Merchant is a tenant.
type Merchant struct {
	ID                uuid.UUID
	Name              string
	ApprovalThreshold *int64
}

// Principal is the authenticated caller behind an API key.
type Principal struct {
	KeyID      uuid.UUID
	MerchantID uuid.UUID // uuid.Nil for ops keys
	Scopes     []string
}

// HasScope reports whether the key carries scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }
