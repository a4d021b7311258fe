package refund

import (
	"errors"
	"fmt"
)

// Sentinel errors of the layers below the API; callers branch with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a row with the same unique key exists.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnavailable: the database (or Temporal) could not be reached or
	// went away mid-request; the request may be retried as is.
	ErrUnavailable = errors.New("unavailable")
)

// Stable error codes of business rules; the API maps each to an HTTP status.
const (
	CodeSessionNotFound         = "session.not_found"
	CodeTransactionNotFound     = "transaction.not_found"
	CodeRefundNotFound          = "refund.not_found"
	CodeNotCaptured             = "transaction.not_captured"
	CodeFullyRefunded           = "transaction.fully_refunded"
	CodeNotCancelable           = "refund.not_cancelable"
	CodeAmountInsufficient      = "amount.insufficient"
	CodeCurrencyMismatch        = "currency.mismatch"
	CodeAmbiguous               = "transaction.ambiguous"
	CodeMethodUnavailable       = "refund.method_unavailable"
	CodeTargetUnsupported       = "refund.target_unsupported"
	CodeTransactionDup          = "transaction.duplicate"
	CodeNotReversible           = "refund.not_reversible"
	CodeValidation              = "validation.failed"
	CodeWebhookEndpointNotFound = "webhook_endpoint.not_found"
	CodeWebhookEndpointLimit    = "webhook_endpoint.limit_reached"
	CodeWebhookEndpointDisabled = "webhook_endpoint.disabled"
	CodeEventNotFound           = "event.not_found"
)

// RuleError is a request the business rules refuse; nothing was written.
type RuleError struct {
	Code    string
	Message string
	Field   string // set for validation failures tied to one field
}

func (e *RuleError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Rule returns a RuleError with a formatted message.
func Rule(code, format string, args ...any) *RuleError {
	return &RuleError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldRule returns a validation RuleError about one field.
func FieldRule(field, format string, args ...any) *RuleError {
	return &RuleError{Code: CodeValidation, Field: field, Message: fmt.Sprintf(format, args...)}
}
