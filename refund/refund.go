package refund

import (
	"time"

	"github.com/google/uuid"
)

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
	Method            Method
	Provider          string
	Status            Status
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
	StuckReason       string // why it is stuck: StuckAuth, StuckNoAnswer, ...
	WorkflowStartedAt *time.Time
	SubmittedAt       *time.Time
	CompletedAt       *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Outcome is how a refund ends.
type Outcome struct {
	Status            Status // SUCCEEDED, DECLINED, FAILED or CANCELED
	ProviderReference string
	FailureCode       string
	FailureMessage    string
	Attempts          int
}

// Money is an amount in minor units with its ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Failure explains a DECLINED, FAILED, CANCELED or REVERSED refund.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Object is the refund as the API and webhooks show it.
type Object struct {
	TransactionID         uuid.UUID         `json:"transactionId"`
	Status                Status            `json:"status"`
	Message               string            `json:"message"`
	SessionID             uuid.UUID         `json:"sessionId"`
	OriginalTransactionID uuid.UUID         `json:"originalTransactionId"`
	RefundValue           Money             `json:"refundValue"`
	Method                Method            `json:"method"`
	Provider              string            `json:"provider"`
	Reason                string            `json:"reason,omitempty"`
	ReasonCode            string            `json:"reasonCode,omitempty"`
	Description           string            `json:"description,omitempty"`
	Reference             string            `json:"reference,omitempty"`
	Metadata              map[string]string `json:"metadata,omitempty"`
	LineItems             []RefundLineItem  `json:"lineItems,omitempty"`
	TargetType            string            `json:"targetType"`
	TargetID              string            `json:"targetId,omitempty"`
	ProviderReference     string            `json:"providerReference,omitempty"`
	Failure               *Failure          `json:"failure,omitempty"`
	Attempts              int               `json:"attempts"`
	RequiresApproval      bool              `json:"requiresApproval,omitempty"`
	CreatedAt             time.Time         `json:"createdAt"`
	UpdatedAt             time.Time         `json:"updatedAt"`
	CompletedAt           *time.Time        `json:"completedAt,omitempty"`
}

var statusMessages = map[Status]string{
	StatusPending:    "Refund accepted for asynchronous processing.",
	StatusProcessing: "Refund sent to the provider; awaiting its outcome.",
	StatusSucceeded:  "Refund completed.",
	StatusDeclined:   "Refund declined by the provider.",
	StatusFailed:     "Refund could not be completed.",
	StatusCanceled:   "Refund canceled before it was sent.",
	StatusReversed:   "Refund reversed by the provider after it succeeded; the amount is refundable again.",
}

// voidedMessage is the message of a refund the provider voided.
const voidedMessage = "Refund canceled: the provider voided it before processing it."

// Object renders the refund for the API and webhook payloads.
func (r Refund) Object() Object {
	o := Object{
		TransactionID: r.ID, Status: r.Status, Message: statusMessages[r.Status], SessionID: r.SessionID,
		OriginalTransactionID: r.TransactionID, RefundValue: Money{r.Amount, r.Currency}, Method: r.Method,
		Provider: r.Provider, Reason: r.Reason, ReasonCode: r.ReasonCode, Description: r.Description,
		Reference: r.Reference, Metadata: r.Metadata, LineItems: r.LineItems, TargetType: r.TargetType,
		TargetID: r.TargetID, ProviderReference: r.ProviderReference, Attempts: r.Attempts,
		RequiresApproval: r.RequiresApproval, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}
	if r.Status == StatusCanceled && r.FailureCode == FailureVoided {
		o.Message = voidedMessage
	}
	if r.CompletedAt != nil {
		at := r.CompletedAt.UTC()
		o.CompletedAt = &at
	}
	if r.FailureCode != "" || r.FailureMessage != "" {
		o.Failure = &Failure{Code: r.FailureCode, Message: r.FailureMessage}
	}
	return o
}
