package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"

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
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return p.Code + ": " + p.Detail }

// Stable codes of the API's own errors (business rules use the store's codes).
const (
	CodeMalformed           = "request.malformed"
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
	CodeUnauthorized:                   http.StatusUnauthorized,
	CodeForbidden:                      http.StatusForbidden,
	CodeNotFound:                       http.StatusNotFound,
	refund.CodeSessionNotFound:         http.StatusNotFound,
	refund.CodeTransactionNotFound:     http.StatusNotFound,
	refund.CodeRefundNotFound:          http.StatusNotFound,
	refund.CodeEventNotFound:           http.StatusNotFound,
	refund.CodeWebhookEndpointNotFound: http.StatusNotFound,
	refund.CodeWebhookEndpointLimit:    http.StatusConflict,
	refund.CodeWebhookEndpointDisabled: http.StatusConflict,
	refund.CodeNotCaptured:             http.StatusConflict,
	refund.CodeFullyRefunded:           http.StatusConflict,
	refund.CodeNotCancelable:           http.StatusConflict,
	refund.CodeTransactionDup:          http.StatusConflict,
	refund.CodeNotReversible:           http.StatusConflict,
	CodeIdempotencyInFlight:            http.StatusConflict,
	refund.CodeAmountInsufficient:      http.StatusUnprocessableEntity,
	refund.CodeCurrencyMismatch:        http.StatusUnprocessableEntity,
	refund.CodeAmbiguous:               http.StatusUnprocessableEntity,
	refund.CodeMethodUnavailable:       http.StatusUnprocessableEntity,
	refund.CodeTargetUnsupported:       http.StatusUnprocessableEntity,
	refund.CodeValidation:              http.StatusUnprocessableEntity,
	CodeIdempotencyMismatch:            http.StatusUnprocessableEntity,
	CodeMethodNotAllowed:               http.StatusMethodNotAllowed,
	CodeUnavailable:                    http.StatusServiceUnavailable,
	CodeInternal:                       http.StatusInternalServerError,
}

var titles = map[int]string{
	400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
	409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity", 500: "Internal Server Error",
	503: "Service Unavailable",
}

func problem(code, detail string, fields ...FieldError) *Problem {
	status := statusOf[code]
	if status == 0 {
		status = http.StatusInternalServerError
	}
	return &Problem{Type: problemTypeBase + code, Title: titles[status], Status: status, Detail: detail, Code: code, Errors: fields}
}

func notFound(code string) *Problem { return problem(code, "no such object for this merchant") }

// toProblem maps any handler error to a problem document.
func toProblem(err error) *Problem {
	var p *Problem
	var rule *refund.RuleError
	var he *echo.HTTPError
	switch {
	case errors.As(err, &p):
		return p
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
			return problem(CodeMalformed, "request body too large")
		}
		if he.Code >= 400 && he.Code < 500 {
			return &Problem{Type: problemTypeBase + CodeMalformed, Title: titles[he.Code], Status: he.Code, Detail: http.StatusText(he.Code), Code: CodeMalformed}
		}
	case databaseDown(err):
		return problem(CodeUnavailable, "the database is unavailable; retry with the same Idempotency-Key")
	case temporalDown(err):
		return problem(CodeUnavailable, "Temporal is unavailable; retry later")
	case unstorableText(err):
		return problem(refund.CodeValidation, "a text field holds a character that cannot be stored (such as \\u0000)")
	}
	return problem(CodeInternal, "internal error")
}

// databaseDown reports whether err says Postgres could not be reached or
// went away mid-request (connect failure, timeout, a connection cut by a
// crash or restart, the server shutting down or starting up): the outcome
// is for the client to retry, not an internal error.
func databaseDown(err error) bool {
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case errors.As(err, &pgErr):
		// 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53300: too many connections.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || pgErr.Code == "53300"
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &netErr)
}

// temporalDown reports whether a Temporal call failed for lack of the service.
func temporalDown(err error) bool {
	var unavailable *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	return errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded)
}

// unstorableText reports whether Postgres refused a request's text: NUL
// (\u0000) in a text or jsonb value is valid JSON but cannot be stored.
func unstorableText(err error) bool {
	var pgErr *pgconn.PgError
	// 22021: character not in repertoire; 22P05: untranslatable character.
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// errorHandler renders every error as application/problem+json.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	p := toProblem(err)
	if p.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed", "error", err, "path", c.Path(),
			"requestId", c.Response().Header().Get(echo.HeaderXRequestID))
	}
	c.Response().Header().Set(echo.HeaderContentType, problemContentType)
	c.Response().WriteHeader(p.Status)
	_ = writeJSON(c, p)
}
