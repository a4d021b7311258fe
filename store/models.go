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
	// StatusReversed is a SUCCEEDED refund the provider later reported
	// failed or reversed: its amount is refundable again.
	StatusReversed = "REVERSED"
)

// FinalStatus reports whether a refund status is terminal. A SUCCEEDED
// refund can still become REVERSED, by the provider's word only.
func FinalStatus(s string) bool {
	switch s {
	case StatusSucceeded, StatusDeclined, StatusFailed, StatusCanceled, StatusReversed:
		return true
	}
	return false
}

// Statuses lists every refund status.
var Statuses = []string{StatusPending, StatusProcessing, StatusSucceeded, StatusDeclined, StatusFailed, StatusCanceled, StatusReversed}

// Failure codes Backflow itself sets (providers add their own).
const (
	FailureCanceled         = "canceled"          // canceled before it was sent
	FailureApprovalRejected = "approval.rejected" // ops rejected it
	FailureApprovalExpired  = "approval.expired"  // no ops decision in time
	FailureVoided           = "provider.voided"   // the provider voided it before processing
)

// Stuck reasons: why a refund waits for ops.
const (
	StuckAuth     = "provider.auth"            // the provider refuses our credentials (401/403)
	StuckNoAnswer = "provider.no_answer"       // every attempt failed: the outcome is unknown
	StuckUnknown  = "provider.unknown_outcome" // an answer that is neither success nor a definitive rejection
	StuckSLA      = "provider.sla"             // no final answer within the SLA
)

// StuckReasons lists every stuck reason.
var StuckReasons = []string{StuckAuth, StuckNoAnswer, StuckUnknown, StuckSLA}

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
	EventRefundReversed  = "refund.reversed"
)

// EventTypes lists every event type a webhook endpoint may subscribe to.
var EventTypes = []string{EventRefundCreated, EventRefundSucceeded, EventRefundFailed, EventRefundCanceled, EventRefundReversed}

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
	ID                uuid.UUID
	MerchantID        uuid.UUID
	SessionID         uuid.UUID
	Provider          string
	Method            string
	Amount            int64
	Currency          string
	Status            string
	ProviderReference string
	PayoutDestination *providers.PayoutDestination
	RefundedAmount    int64
	ReservedAmount    int64
	// Totals of the gift-card redemptions (kept by the database).
	GiftCardAmount      int64
	GiftCardRefunded    int64
	GiftCardReserved    int64
	LineItems           []LineItem
	GiftCardRedemptions []GiftCardRedemption
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

// Refundable is captured − (refunded + reserved).
func (t Transaction) Refundable() int64 { return t.Amount - t.RefundedAmount - t.ReservedAmount }

// PaymentMethodRefundable is what a refund to the payment method may still
// take: captured less gift-card redemptions, less what the payment method
// already got back or has reserved.
func (t Transaction) PaymentMethodRefundable() int64 {
	return (t.Amount - t.GiftCardAmount) - (t.RefundedAmount - t.GiftCardRefunded) - (t.ReservedAmount - t.GiftCardReserved)
}

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
	StuckReason       string // why it is stuck: provider.auth, provider.no_answer, ...
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
