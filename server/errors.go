package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
)

// Problem is an RFC 9457 problem document with a stable code.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Code   string       `json:"code"`
	Errors []FieldError `json:"errors,omitempty"`
}

// FieldError is one invalid field of a request.
type FieldError = refund.FieldError

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Stable codes of the API's own errors (business rules use the store's codes).
const (
	CodeMalformed           = "request.malformed"
	CodeTooLarge            = "request.too_large"
	CodeRateLimited         = "rate_limited"
	CodeUnauthorized        = "auth.unauthorized"
	CodeForbidden           = "auth.forbidden"
	CodeNotFound            = "resource.not_found"
	CodeIdempotencyMismatch = "idempotency.mismatch"
	CodeIdempotencyInFlight = "idempotency.in_progress"
	CodeUnavailable         = "service.unavailable"
	CodeInternal            = "internal"
	CodeMethodNotAllowed    = "request.method_not_allowed"
)

const (
	problemContentType = "application/problem+json"
	problemTypeBase    = "https://backflow.dev/problems/"
)

// statusOf maps every stable code to its HTTP status.
var statusOf = map[string]int{
	CodeMalformed:                      http.StatusBadRequest,
	CodeTooLarge:                       http.StatusRequestEntityTooLarge,
	CodeUnauthorized:                   http.StatusUnauthorized,
	CodeForbidden:                      http.StatusForbidden,
	CodeNotFound:                       http.StatusNotFound,
	refund.CodeSessionNotFound:         http.StatusNotFound,
	refund.CodeTransactionNotFound:     http.StatusNotFound,
	refund.CodeRefundNotFound:          http.StatusNotFound,
	refund.CodeEventNotFound:           http.StatusNotFound,
	refund.CodeWebhookEndpointNotFound: http.StatusNotFound,
	refund.CodeMerchantNotFound:        http.StatusNotFound,
	refund.CodeAPIKeyNotFound:          http.StatusNotFound,
	refund.CodeWebhookEndpointLimit:    http.StatusConflict,
	refund.CodeWebhookEndpointDisabled: http.StatusConflict,
	refund.CodeNotCaptured:             http.StatusConflict,
	refund.CodeFullyRefunded:           http.StatusConflict,
	refund.CodeNotCancelable:           http.StatusConflict,
	refund.CodeTransactionDup:          http.StatusConflict,
	refund.CodeNotReversible:           http.StatusConflict,
	refund.CodeNotAwaitingApproval:     http.StatusConflict,
	refund.CodeNotRetryable:            http.StatusConflict,
	refund.CodeWorkflowUnavailable:     http.StatusConflict,
	refund.CodeNotResolvable:           http.StatusConflict,
	CodeIdempotencyInFlight:            http.StatusConflict,
	refund.CodeAmountInsufficient:      http.StatusUnprocessableEntity,
	refund.CodeCurrencyMismatch:        http.StatusUnprocessableEntity,
	refund.CodeAmbiguous:               http.StatusUnprocessableEntity,
	refund.CodeMethodUnavailable:       http.StatusUnprocessableEntity,
	refund.CodeTargetUnsupported:       http.StatusUnprocessableEntity,
	refund.CodeValidation:              http.StatusUnprocessableEntity,
	refund.CodeWebhookURLNotAllowed:    http.StatusUnprocessableEntity,
	CodeIdempotencyMismatch:            http.StatusUnprocessableEntity,
	CodeMethodNotAllowed:               http.StatusMethodNotAllowed,
	CodeRateLimited:                    http.StatusTooManyRequests,
	CodeUnavailable:                    http.StatusServiceUnavailable,
	CodeInternal:                       http.StatusInternalServerError,
}

var titles = map[int]string{
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests", 500: "Internal Server Error",
	503: "Service Unavailable",
}

func problem(code, detail string, fields ...FieldError) *Problem {
	status := statusOf[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return &Problem{Type: problemTypeBase + code, Title: titles[status], Status: status, Detail: detail, Code: code, Errors: fields}
}

// toProblem maps any handler error to a problem document.
func toProblem(err error) *Problem {
	var p *Problem
	var rule *refund.RuleError
	var invalid *refund.ValidationError
	var down *refund.UnavailableError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &invalid):
		return problem(refund.CodeValidation, "the request has invalid fields", invalid.Fields...)
	case errors.As(err, &down):
		return problem(CodeUnavailable, down.Detail)
	case errors.As(err, &rule):
		var fields []FieldError
		if rule.Field != "" {
			fields = []FieldError{{Field: rule.Field, Message: rule.Message}}
		}
		return problem(rule.Code, rule.Message, fields...)
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			return problem(CodeNotFound, "no such route")
		case http.StatusMethodNotAllowed:
			return problem(CodeMethodNotAllowed, "method not allowed on this route")
		case http.StatusRequestEntityTooLarge:
			return tooLarge()
		}
		if he.Code >= 400 && he.Code < 500 {
			return &Problem{Type: problemTypeBase + CodeMalformed, Title: titles[he.Code], Status: he.Code, Detail: http.StatusText(he.Code), Code: CodeMalformed}
		}
	}
	return problem(CodeInternal, "internal error")
}

// errorHandler renders every error as application/problem+json.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := toProblem(err)
	if p.Code == CodeTooLarge {
		drainOversized(c)
	}
	if p.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed", "error", err, "path", c.Path(),
			"requestId", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	c.Response().Header().Set(echo.HeaderContentType, problemContentType)
	c.Response().WriteHeader(p.Status)
	_ = writeJSON(c, p)
}

// isRule reports whether err is the RuleError of code.
func isRule(err error, code string) bool {
	var rule *refund.RuleError
	return errors.As(err, &rule) && rule.Code == code
}
