// Package refund is Backflow's domain: the refunds, transactions, events
// and webhook endpoints every layer speaks of, their statuses and the rules
// about them that need no I/O. It imports nothing of Backflow's; the store,
// the connectors, the activities, the workflows and the API all import it.
package refund

// Status is a refund's status.
type Status string

// Refund statuses.
const (
	StatusPending    Status = "PENDING"    // accepted, balance reserved, not sent yet
	StatusProcessing Status = "PROCESSING" // sent to the provider, outcome not known yet
	StatusSucceeded  Status = "SUCCEEDED"
	StatusDeclined   Status = "DECLINED" // the provider refused it
	StatusFailed     Status = "FAILED"   // it could not be completed
	StatusCanceled   Status = "CANCELED" // before it was sent, or voided by the provider
	// StatusReversed is a SUCCEEDED refund the provider later reported
	// failed or reversed: its amount is refundable again.
	StatusReversed Status = "REVERSED"
)

// Statuses lists every refund status.
var Statuses = []Status{StatusPending, StatusProcessing, StatusSucceeded, StatusDeclined, StatusFailed, StatusCanceled, StatusReversed}

// Final reports whether the status is terminal. A SUCCEEDED refund can still
// become REVERSED, by the provider's word only.
func (s Status) Final() bool {
	switch s {
	case StatusSucceeded, StatusDeclined, StatusFailed, StatusCanceled, StatusReversed:
		return true
	}
	return false
}

// Valid reports whether s is a refund status.
func (s Status) Valid() bool { return s == StatusPending || s == StatusProcessing || s.Final() }

// TxStatus is an original transaction's status.
type TxStatus string

// Transaction statuses.
const (
	TxAuthorized        TxStatus = "AUTHORIZED"
	TxCaptured          TxStatus = "CAPTURED"
	TxPartiallyRefunded TxStatus = "PARTIALLY_REFUNDED"
	TxRefunded          TxStatus = "REFUNDED"
	TxVoided            TxStatus = "VOIDED"
)

// Final reports whether nothing more can be refunded of a transaction in
// this status (a reversal gives a REFUNDED one its balance back).
func (s TxStatus) Final() bool { return s == TxRefunded || s == TxVoided }

// Method is how a refund reaches the customer.
type Method string

// Refund methods.
const (
	MethodProviderRefund Method = "PROVIDER_REFUND" // the provider's refund API
	MethodPayoutRefund   Method = "PAYOUT_REFUND"   // a payout to the original destination
)

// Refund targets.
const (
	TargetPaymentMethod = "PAYMENT_METHOD"
	TargetGiftCard      = "GIFT_CARD_REDEMPTION"
)

// Failure codes Backflow itself sets (providers add their own).
const (
	FailureCanceled         = "canceled"          // canceled before it was sent
	FailureApprovalRejected = "approval.rejected" // ops rejected it
	FailureApprovalExpired  = "approval.expired"  // no ops decision in time
	FailureVoided           = "provider.voided"   // the provider voided it before processing
	FailureResolved         = "ops.resolved"      // ops recorded an outcome found at the provider
	FailureReversed         = "provider.reversed" // the provider reversed it, giving no reason
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

// Event types.
const (
	EventRefundCreated   = "refund.created"
	EventRefundSucceeded = "refund.succeeded"
	EventRefundFailed    = "refund.failed"
	EventRefundCanceled  = "refund.canceled"
	EventRefundReversed  = "refund.reversed"
	// EventEndpointDisabled tells a merchant that Backflow disabled one of
	// its endpoints (it answered 410, or failed for too long); it goes to
	// the merchant's other endpoints.
	EventEndpointDisabled = "webhook_endpoint.disabled"
)

// EventTypes lists every event type a webhook endpoint may subscribe to.
var EventTypes = []string{EventRefundCreated, EventRefundSucceeded, EventRefundFailed, EventRefundCanceled, EventRefundReversed,
	EventEndpointDisabled}

// EventTypeFor is the event a refund's final status is told by.
func EventTypeFor(s Status) string {
	switch s {
	case StatusSucceeded:
		return EventRefundSucceeded
	case StatusCanceled:
		return EventRefundCanceled
	case StatusReversed:
		return EventRefundReversed
	default:
		return EventRefundFailed
	}
}
