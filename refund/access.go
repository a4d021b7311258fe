package refund

import (
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// MerchantScopes are all the scopes a merchant key may hold.
var MerchantScopes = []string{ScopeRefundsRead, ScopeRefundsWrite, ScopeTransactionsWrite, ScopeWebhooksManage}

// DefaultMerchantScopes are a new merchant key's unless others are asked
// for: every merchant scope but the platform's transactions:write, which
// can register payments and their payout destinations (a leaked key could
// otherwise mint refundable balance and pay it out anywhere).
var DefaultMerchantScopes = []string{ScopeRefundsRead, ScopeRefundsWrite, ScopeWebhooksManage}

// Limits of merchant and key fields.
const (
	MaxMerchantNameLen   = 200
	MaxKeyNameLen        = 100
	MaxApprovalThreshold = 99_999_999 // the largest refund
	minGivenKeyLen       = 24
)

// Merchant is a tenant.
type Merchant struct {
	ID                uuid.UUID
	Name              string
	ApprovalThreshold *int64 // refunds above it wait for an ops approval; nil: none do
	CreatedAt         time.Time
}

// NewMerchant is a create-merchant request.
type NewMerchant struct {
	Name              string
	ApprovalThreshold *int64
}

// Validate checks the request and trims the name.
func (m *NewMerchant) Validate() error {
	var v Validator
	m.Name = strings.TrimSpace(m.Name)
	v.Check(m.Name != "" && utf8.RuneCountInString(m.Name) <= MaxMerchantNameLen, "name", "required, at most %d characters", MaxMerchantNameLen)
	if t := m.ApprovalThreshold; t != nil {
		v.Check(*t >= 0 && *t <= MaxApprovalThreshold, "approvalThreshold", "must be 0..%d minor units (omit it for no approvals)", MaxApprovalThreshold)
	}
	return v.Err()
}

// APIKey is a stored key as ops see it: never its secret, which only its
// creator saw once (Backflow keeps its SHA-256 hash).
type APIKey struct {
	ID         uuid.UUID
	MerchantID uuid.UUID // uuid.Nil for ops keys
	Name       string
	Prefix     string // the key's first characters, to recognise it
	Scopes     []string
	CreatedAt  time.Time
	LastUsedAt *time.Time // to the minute
	RevokedAt  *time.Time
}

// NewAPIKey is a request for a key of a merchant, or of ops (MerchantID
// uuid.Nil, scope ops only).
type NewAPIKey struct {
	MerchantID uuid.UUID
	Name       string
	Scopes     []string // nil: DefaultMerchantScopes
	// Secret registers a key chosen by the caller instead of a generated
	// one: the dev seed's stable demo keys. The API never sets it.
	Secret string
}

// Validate checks the request, trims the name and fills the default scopes.
func (k *NewAPIKey) Validate() error {
	var v Validator
	k.Name = strings.TrimSpace(k.Name)
	v.Check(k.Name != "" && utf8.RuneCountInString(k.Name) <= MaxKeyNameLen, "name", "required, at most %d characters", MaxKeyNameLen)
	allowed := MerchantScopes
	if k.MerchantID == uuid.Nil {
		allowed = []string{ScopeOps}
	}
	if k.Scopes == nil {
		k.Scopes = slices.Clone(DefaultMerchantScopes)
		if k.MerchantID == uuid.Nil {
			k.Scopes = []string{ScopeOps}
		}
	}
	v.Check(len(k.Scopes) > 0, "scopes", "must list at least one scope (omit it for %s)", strings.Join(DefaultMerchantScopes, ", "))
	for i, s := range k.Scopes {
		field := "scopes[" + strconv.Itoa(i) + "]"
		v.Check(slices.Contains(allowed, s), field, "unknown scope %q: must be one of %s", s, strings.Join(allowed, ", "))
		v.Check(!slices.Contains(k.Scopes[:i], s), field, "is listed twice")
	}
	if k.Secret != "" {
		v.Check(len(k.Secret) >= minGivenKeyLen && !strings.ContainsAny(k.Secret, " \t\r\n:"), "secret",
			"a given key needs at least %d characters, no spaces or colons", minGivenKeyLen)
	}
	return v.Err()
}

// Principal is the authenticated caller behind an API key.
type Principal struct {
	KeyID      uuid.UUID
	MerchantID uuid.UUID // uuid.Nil for ops keys
	Scopes     []string
}

// HasScope reports whether the key carries scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }
