package refund

import (
	"time"

	"github.com/google/uuid"
)

// NewRefund is a validated create-refund request.
type NewRefund struct {
	MerchantID     uuid.UUID
	SessionID      uuid.UUID // uuid.Nil when only TransactionID is given
	TransactionID  uuid.UUID // uuid.Nil to select the session's single refundable transaction
	Amount         int64     // 0 = the full remaining refundable amount of the target
	Currency       string    // "" when the request omitted refundValue
	Reason         string
	ReasonCode     string
	Description    string
	Reference      string
	Metadata       map[string]string
	LineItems      []RefundLineItem
	TargetType     string
	TargetID       string
	IdempotencyKey string
	// Route picks the refund method for the resolved transaction and the
	// target type, or returns a RuleError (refund.method_unavailable,
	// refund.target_unsupported).
	Route func(t Transaction, targetType string) (Method, error)
}

// NewTransaction is what the upstream platform registers.
type NewTransaction struct {
	MerchantID          uuid.UUID
	SessionID           uuid.UUID
	Provider            string
	Method              string
	Amount              int64
	Currency            string
	Status              TxStatus
	ProviderReference   string
	PayoutDestination   *PayoutDestination
	LineItems           []LineItem
	GiftCardRedemptions []GiftCardRedemption
}

// NewWebhookEndpoint is a validated create-endpoint request.
type NewWebhookEndpoint struct {
	MerchantID     uuid.UUID
	URL            string
	EventTypes     []string
	Secret         string
	IdempotencyKey string // an endpoint this key already made is returned instead
}

// RefundFilter narrows a list of refunds.
type RefundFilter struct {
	Scope         Scope
	SessionID     uuid.UUID
	TransactionID uuid.UUID
	Status        Status
	Provider      string
	Stuck         *bool // nil: either
	CreatedFrom   time.Time
	CreatedTo     time.Time
	After         uuid.UUID // cursor: ids are UUID v7, so newest first is id order
	Limit         int
}

// EventFilter narrows a list of events.
type EventFilter struct {
	Scope    Scope
	RefundID uuid.UUID
	Type     string
	After    uuid.UUID // cursor: ids are UUID v7, so newest first is id order
	Limit    int
}

// AuditFilter narrows the ops audit.
type AuditFilter struct {
	RefundID uuid.UUID // uuid.Nil: every refund
	Before   uuid.UUID // cursor: entries older than this one
	Limit    int
}
