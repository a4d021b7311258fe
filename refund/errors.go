package refund

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the layers below the API; callers branch with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	// ErrDuplicate: a row with the same unique key exists.
	ErrDuplicate = errors.New("duplicate")
	// ErrUnavailable: the database (or Temporal) could not be reached or
	// went away mid-request; the request may be retried as is. Errors that
	// say so are *UnavailableError.
	ErrUnavailable = errors.New("unavailable")

	// Idempotency-Key claims.
	ErrIdempotencyMismatch   = errors.New("idempotency key reused with a different request")
	ErrIdempotencyInProgress = errors.New("a request with this idempotency key is in progress")

	// The refund's workflow, as the gateway to Temporal reports it.
	ErrWorkflowNotRunning = errors.New("the refund's workflow is not running")
	// ErrAlreadyStarted: a workflow with this id runs, or ran and may not
	// run again (a completed refund run, a delivery already started).
	ErrAlreadyStarted = errors.New("the workflow was started already")
)

// UnavailableError is ErrUnavailable with what the client should know.
type UnavailableError struct {
	Detail string // for the client: what is down and what to do
	Err    error
}

// Unavailable wraps err as ErrUnavailable with a detail for the client.
func Unavailable(detail string, err error) *UnavailableError {
	return &UnavailableError{Detail: detail, Err: err}
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Detail
	}
	return e.Detail + ": " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

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
	CodeWebhookURLNotAllowed    = "webhook.url_not_allowed"
	CodeEventNotFound           = "event.not_found"
	CodeMerchantNotFound        = "merchant.not_found"
	CodeAPIKeyNotFound          = "api_key.not_found"

	// Ops actions on a refund.
	CodeNotAwaitingApproval = "refund.not_awaiting_approval"
	CodeNotRetryable        = "refund.not_retryable"
	CodeWorkflowUnavailable = "refund.workflow_unavailable"
	CodeNotResolvable       = "refund.not_resolvable"
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

// FieldError is one invalid field of a request.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a request; nothing was written.
type ValidationError struct{ Fields []FieldError }

func (e *ValidationError) Error() string {
	msgs := make([]string, 0, len(e.Fields))
	for _, f := range e.Fields {
		msgs = append(msgs, f.Field+": "+f.Message)
	}
	return CodeValidation + ": " + strings.Join(msgs, "; ")
}

// Validator collects field errors so a client sees them all at once.
type Validator []FieldError

// Check records a field error unless ok.
func (v *Validator) Check(ok bool, field, format string, args ...any) {
	if !ok {
		*v = append(*v, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
}

// Err is the ValidationError of the fields checked, nil when all are valid.
func (v Validator) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Fields: v}
}
