// Package providers holds the connectors Backflow uses to move money back to
// customers: a common Connector interface, typed errors that tell retryable
// faults from permanent ones, and a registry built from configuration.
package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/backflow/backflow/refund"
)

// Capabilities tell the workflow which refund path a provider supports.
type Capabilities struct {
	RefundAPI      bool // the provider has a native refund API
	PartialRefunds bool // the refund API accepts less than the captured amount
	Payouts        bool // the provider can send a payout to the original destination
	AsyncOutcome   bool // answers may be PROCESSING and complete later (callback or polling)
	GiftCards      bool // a refund can target a gift-card redemption of the payment
}

// Status is the provider-side state of a refund or payout, mapped to Backflow terms.
type Status string

// Provider-side statuses.
const (
	StatusProcessing Status = "PROCESSING"
	StatusSucceeded  Status = "SUCCEEDED"
	StatusDeclined   Status = "DECLINED"
	StatusFailed     Status = "FAILED"
	// StatusCanceled: the provider voided the refund before processing it.
	StatusCanceled Status = "CANCELED"
	// StatusReversed: the refund succeeded, then the provider reversed it
	// (the money is back with the merchant).
	StatusReversed Status = "REVERSED"
)

// Final reports whether the status is terminal.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusDeclined, StatusFailed, StatusCanceled, StatusReversed:
		return true
	}
	return false
}

// LineItem is one refunded line of the original payment.
type LineItem struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
	Amount   int64  `json:"amount"` // unit amount in minor units
}

// RefundRequest asks a provider's native refund API to refund a payment.
type RefundRequest struct {
	// IdempotencyKey is derived from the Backflow refund id only, so a retried,
	// reset or replayed submit never creates a second refund at the provider.
	IdempotencyKey    string
	RefundID          string
	PaymentReference  string // the original payment's reference at the provider
	Amount            int64  // minor units
	Currency          string // ISO 4217
	Reason            string
	ReasonCode        string
	Description       string
	Reference         string
	Metadata          map[string]string
	LineItems         []LineItem
	TargetType        string // PAYMENT_METHOD | GIFT_CARD_REDEMPTION
	TargetID          string
	FullAmountOfOrder bool // the refund covers the whole remaining amount
}

// PayoutRequest sends funds back to the original destination.
type PayoutRequest struct {
	IdempotencyKey   string
	RefundID         string
	PaymentReference string
	Amount           int64
	Currency         string
	Description      string
	Destination      refund.PayoutDestination
}

// Result is a provider's answer about one refund or payout.
type Result struct {
	Status            Status `json:"status"`
	ProviderReference string `json:"providerReference,omitempty"`
	FailureCode       string `json:"failureCode,omitempty"`
	FailureMessage    string `json:"failureMessage,omitempty"`
}

// Lookup names one refund or payout at the provider: by the provider's own
// id when it is known, otherwise by Backflow's refund id (which is also the
// idempotency key), with the original payment for providers that list
// refunds per payment (Stripe).
type Lookup struct {
	ProviderReference string
	RefundID          string
	PaymentReference  string
}

// CallbackEvent is a verified provider callback about one refund or payout.
type CallbackEvent struct {
	// RefundID is the Backflow refund id, read only from a field the
	// provider's API defines to carry it (Stripe metadata.backflow_refund_id,
	// the reference of a momo or bank payout); otherwise empty, and
	// Result.ProviderReference (the provider's own id) names the refund.
	RefundID string
	Result   Result
}

// Connector talks to one provider over HTTP.
//
// A refund or payout the provider accepted and then declined or failed is a
// Result with that status and a nil error; an *Error of KindDeclined means the
// provider refused the request itself (for example an insufficient balance).
type Connector interface {
	Name() string
	Capabilities() Capabilities
	// Refund submits a refund; calling it again with the same IdempotencyKey
	// returns the same refund.
	Refund(ctx context.Context, req RefundRequest) (Result, error)
	// RefundStatus looks a refund up by provider reference or, when unknown,
	// by Backflow's refund id; ErrNotFound when the provider holds none.
	RefundStatus(ctx context.Context, l Lookup) (Result, error)
	Payout(ctx context.Context, req PayoutRequest) (Result, error)
	// PayoutStatus is RefundStatus for payouts.
	PayoutStatus(ctx context.Context, l Lookup) (Result, error)
	// ParseCallback verifies a callback's signature and decodes it.
	ParseCallback(header http.Header, body []byte) (CallbackEvent, error)
}

// ErrorKind classifies a connector error for retry decisions.
type ErrorKind string

// Error kinds.
const (
	// KindRetryable: 5xx, timeouts, connection errors, 429, unreadable
	// answers. The outcome may be unknown; look up, then retry with the same
	// idempotency key.
	KindRetryable ErrorKind = "retryable"
	// KindDeclined: the provider refused the request itself (a decline
	// code); final only for a first send (see Settle).
	KindDeclined ErrorKind = "declined"
	// KindInvalid: the provider rejected the request as invalid (validation,
	// unknown payment, unsupported); final only for a first send.
	KindInvalid ErrorKind = "invalid"
	// KindAuth: 401/403, the provider refused our credentials. Never final:
	// the refund waits as stuck (provider.auth) until they work again.
	KindAuth ErrorKind = "auth"
	// KindUnknown: an answer that is neither success nor a definitive
	// rejection (409 duplicate, other 4xx): the outcome is unknown.
	KindUnknown ErrorKind = "unknown"
)

// Error is a typed connector error.
type Error struct {
	Kind       ErrorKind
	Code       string
	Message    string
	RetryAfter time.Duration // from a 429 Retry-After header, when given
	HTTPStatus int           // the provider's HTTP status when the error is an answer
	Err        error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%s: %s", e.Kind, e.Code)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error of the same kind and code, so
// errors.Is(err, ErrNotFound) matches whichever connector produced it.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && t.Code == e.Code
}

// Retryable builds a retryable error.
func Retryable(code, msg string, err error) *Error {
	return &Error{Kind: KindRetryable, Code: code, Message: msg, Err: err}
}

// Declined builds a decline.
func Declined(code, msg string) *Error { return &Error{Kind: KindDeclined, Code: code, Message: msg} }

// Invalid builds a permanent invalid-request error.
func Invalid(code, msg string) *Error { return &Error{Kind: KindInvalid, Code: code, Message: msg} }

// KindOf returns the kind of err; unknown errors are retryable because the
// outcome at the provider is unknown.
func KindOf(err error) ErrorKind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindRetryable
}

// ErrUnsupported is returned by operations a connector does not offer.
var ErrUnsupported = Invalid("unsupported", "operation not supported by this provider")

// ErrNotFound is returned by status look-ups when the provider holds no such
// refund or payout; match it with errors.Is. It is retryable: a refund must
// never be released on a missing answer. By Backflow's id it means the
// create has not reached the provider, or not yet shows there (a read may lag
// a write: sandbox outcome 10), so a re-send uses the same idempotency key.
var ErrNotFound = Retryable("not_found", "no such refund or payout at the provider", nil)
