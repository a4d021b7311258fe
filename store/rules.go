package store

import "fmt"

// Stable error codes of business rules; the API maps each to an HTTP status.
const (
	CodeSessionNotFound     = "session.not_found"
	CodeTransactionNotFound = "transaction.not_found"
	CodeRefundNotFound      = "refund.not_found"
	CodeNotCaptured         = "transaction.not_captured"
	CodeFullyRefunded       = "transaction.fully_refunded"
	CodeNotCancelable       = "refund.not_cancelable"
	CodeAmountInsufficient  = "amount.insufficient"
	CodeCurrencyMismatch    = "currency.mismatch"
	CodeAmbiguous           = "transaction.ambiguous"
	CodeMethodUnavailable   = "refund.method_unavailable"
	CodeTargetUnsupported   = "refund.target_unsupported"
	CodeTransactionDup      = "transaction.duplicate"
	CodeNotReversible       = "refund.not_reversible"
	CodeValidation          = "validation.failed"
)

// RuleError is a request the business rules refuse; nothing was written.
type RuleError struct {
	Code    string
	Message string
	Field   string // set for validation failures tied to one field
}

func (e *RuleError) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

func ruleErr(code, format string, args ...any) *RuleError {
	return &RuleError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func fieldErr(field, format string, args ...any) *RuleError {
	return &RuleError{Code: CodeValidation, Field: field, Message: fmt.Sprintf(format, args...)}
}
