package store

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/providers"
)

// Transaction statuses.
const (
	TxAuthorized        = "AUTHORIZED"
	TxCaptured          = "CAPTURED"
	TxPartiallyRefunded = "PARTIALLY_REFUNDED"
	TxRefunded          = "REFUNDED"
	TxVoided            = "VOIDED"
)

// Refund statuses.
const (
	StatusPending    = "PENDING"
	StatusProcessing = "PROCESSING"
	StatusSucceeded  = "SUCCEEDED"
	StatusDeclined   = "DECLINED"
	StatusFailed     = "FAILED"
	StatusCanceled   = "CANCELED"
)

// FinalStatus reports whether a refund status is terminal.
func FinalStatus(s string) bool {
	return s == StatusSucceeded || s == StatusDeclined || s == StatusFailed || s == StatusCanceled
}

// Refund methods and targets.
const (
	MethodProviderRefund = "PROVIDER_REFUND"
	MethodPayoutRefund   = "PAYOUT_REFUND"
	TargetPaymentMethod  = "PAYMENT_METHOD"
	TargetGiftCard       = "GIFT_CARD_REDEMPTION"
)

// Event types.
const (
	EventRefundCreated   = "refund.created"
	EventRefundSucceeded = "refund.succeeded"
	EventRefundFailed    = "refund.failed"
	EventRefundCanceled  = "refund.canceled"
)

// EventTypes lists every event type a webhook endpoint may subscribe to.
var EventTypes = []string{EventRefundCreated, EventRefundSucceeded, EventRefundFailed, EventRefundCanceled}

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
func (p Principal) HasScope(scope string) bool {
	for _, s := range p.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// LineItem is a line of the original payment; Amount is the unit amount.
type LineItem struct {
	ID               string `json:"id"`
	Amount           int64  `json:"amount"`
	Quantity         int64  `json:"quantity"`
	RefundedQuantity int64  `json:"refundedQuantity"`
	ReservedQuantity int64  `json:"reservedQuantity"`
}

// GiftCardRedemption is a gift-card part of the original payment.
type GiftCardRedemption struct {
	ID             string `json:"id"`
	Amount         int64  `json:"amount"`
	RefundedAmount int64  `json:"refundedAmount"`
	ReservedAmount int64  `json:"reservedAmount"`
}

// Transaction is an original payment and its refundable balance.
type Transaction struct {
	ID                  uuid.UUID
	MerchantID          uuid.UUID
	SessionID           uuid.UUID
	Provider            string
	Method              string
	Amount              int64
	Currency            string
	Status              string
	ProviderReference   string
	PayoutDestination   *providers.PayoutDestination
	RefundedAmount      int64
	ReservedAmount      int64
	LineItems           []LineItem
	GiftCardRedemptions []GiftCardRedemption
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Refundable is captured − (refunded + reserved).
func (t Transaction) Refundable() int64 { return t.Amount - t.RefundedAmount - t.ReservedAmount }

// RefundLineItem is a refunded line: quantity of a line item of the original.
type RefundLineItem struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount,omitempty"` // unit amount, copied from the original
}

// Refund is one refund of one original transaction.
type Refund struct {
	ID                uuid.UUID
	MerchantID        uuid.UUID
	SessionID         uuid.UUID
	TransactionID     uuid.UUID
	Amount            int64
	Currency          string
	Method            string
	Provider          string
	Status            string
	Reason            string
	ReasonCode        string
	Description       string
	Reference         string
	Metadata          map[string]string
	LineItems         []RefundLineItem
	TargetType        string
	TargetID          string
	ProviderReference string
	FailureCode       string
	FailureMessage    string
	Attempts          int
	RequiresApproval  bool
	Stuck             bool
	WorkflowStartedAt *time.Time
	SubmittedAt       *time.Time
	CompletedAt       *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Event is an outbox row: one refund status change.
type Event struct {
	ID         uuid.UUID       `json:"id"`
	MerchantID uuid.UUID       `json:"merchantId"`
	RefundID   uuid.UUID       `json:"refundId"`
	Type       string          `json:"type"`
	Sequence   int             `json:"sequence"`
	Payload    json.RawMessage `json:"data"`
	CreatedAt  time.Time       `json:"createdAt"`
}

// LedgerEntry is one append-only balance change.
type LedgerEntry struct {
	ID            uuid.UUID `json:"id"`
	TransactionID uuid.UUID `json:"transactionId"`
	RefundID      uuid.UUID `json:"refundId"`
	Kind          string    `json:"kind"`
	Amount        int64     `json:"amount"`
	CreatedAt     time.Time `json:"createdAt"`
}
