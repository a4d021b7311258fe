package sandbox

import (
	"fmt"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/backflow/backflow/providers"
)

// paydeskAPI is the payment platform (source 002): refunds on a payment,
// Bearer API key, minor units, line items, metadata, reference, errors
// payment.not-found and amount.insufficient, asynchronous outcome.
var paydeskAPI = &api{
	name:   providers.TypePaydesk,
	secret: providers.SandboxPaydeskCallbackSecret,
	auth: func(r *http.Request, _ bool) errKind {
		if bearerToken(r) != providers.SandboxPaydeskAPIKey {
			return errUnauthorized
		}
		return errNone
	},
	newID:  func() string { return shortID("re_") },
	render: renderPaydesk,
	callback: func(r record, id string, at time.Time) any {
		return envelope("refund.updated", id, at, renderPaydesk(r))
	},
	errs: map[errKind]apiError{
		errMalformed:      {code: "request.malformed"},
		errValidation:     {code: "request.invalid"},
		errUnauthorized:   {code: "authentication.failed"},
		errForbidden:      {code: "access.forbidden"},
		errNotFound:       {code: "payment.not-found"},
		errObjectNotFound: {code: "refund.not-found"},
		errInsufficient:   {status: http.StatusForbidden, code: "amount.insufficient"},
		errNotCaptured:    {status: http.StatusUnprocessableEntity, code: "payment.not-paid"},
		errMismatch:       {code: "idempotency.key-reused"},
		errRateLimited:    {code: "rate-limit.exceeded"},
		errUnavailable:    {code: "service.unavailable"},
	},
	errBody: func(status int, code, message string) any {
		return map[string]any{"status": status, "code": code, "description": message}
	},
}

func (s *Server) routePaydesk() {
	a := paydeskAPI
	samePayment := func(r *http.Request, rec record) bool { return rec.payment == r.PathValue("paymentId") }
	page := func(items []any) any { return map[string]any{"count": len(items), "refunds": items} }
	s.mux.HandleFunc("POST /paydesk/v2/payments/{paymentId}/refunds", s.paydeskCreate)
	s.mux.HandleFunc("GET /paydesk/v2/payments/{paymentId}/refunds/{refundId}", s.handleGet(a, "refundId", samePayment))
	s.mux.HandleFunc("GET /paydesk/v2/refunds", s.handleFind(a, "idempotencyKey", page))
}

type paydeskAmount struct {
	Currency string `json:"currency"`
	Value    *int64 `json:"value"`
}

type paydeskLineItem struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
}

type paydeskRequest struct {
	Amount      *paydeskAmount    `json:"amount"`
	Description string            `json:"description,omitempty"`
	Reference   string            `json:"reference,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	LineItems   []paydeskLineItem `json:"lineItems,omitempty"`
	Reason      string            `json:"reason"`
}

var paydeskReasons = map[string]bool{
	"requested_by_customer": true, "duplicate": true, "fraudulent": true, "return": true, "other": true,
}

type paydeskRefund struct {
	Resource       string            `json:"resource"`
	ID             string            `json:"id"`
	PaymentID      string            `json:"paymentId"`
	Amount         paydeskAmount     `json:"amount"`
	Status         string            `json:"status"`
	Reason         string            `json:"reason"`
	Description    string            `json:"description,omitempty"`
	Reference      string            `json:"reference,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	LineItems      []paydeskLineItem `json:"lineItems,omitempty"`
	FailureCode    string            `json:"failureCode,omitempty"`
	FailureMessage string            `json:"failureMessage,omitempty"`
	IdempotencyKey string            `json:"idempotencyKey,omitempty"`
	CreatedAt      string            `json:"createdAt"`
}

var paydeskStatus = [...]string{
	stateProcessing: "pending",
	stateSucceeded:  "refunded",
	stateDeclined:   "declined",
	stateFailed:     "failed",
}

func renderPaydesk(r record) any {
	req := r.details.(paydeskRequest)
	amount := r.amount
	out := paydeskRefund{
		Resource:       "refund",
		ID:             r.id,
		PaymentID:      r.payment,
		Amount:         paydeskAmount{Currency: r.currency, Value: &amount},
		Status:         paydeskStatus[r.state],
		Reason:         req.Reason,
		Description:    req.Description,
		Reference:      req.Reference,
		Metadata:       req.Metadata,
		LineItems:      req.LineItems,
		IdempotencyKey: r.key,
		CreatedAt:      r.created.Format(time.RFC3339),
	}
	switch r.state {
	case stateDeclined:
		out.FailureCode, out.FailureMessage = "refund.declined", "the refund was declined"
	case stateFailed:
		out.FailureCode, out.FailureMessage = "refund.failed", "the refund could not be processed"
	}
	return out
}

// validatePaydesk returns what is wrong with req, or "".
func validatePaydesk(req paydeskRequest) string {
	switch {
	case req.Amount == nil || req.Amount.Value == nil:
		// Payments are not registered, so "the full remaining amount" is unknown.
		return "amount.value is required in the sandbox"
	case *req.Amount.Value < 1:
		return "amount.value must be positive"
	case !validCurrency(req.Amount.Currency):
		return "amount.currency must be an ISO 4217 code"
	case req.Description != "" && utf8.RuneCountInString(req.Description) > 80:
		return "description must be at most 80 characters"
	case req.Reference != "" && utf8.RuneCountInString(req.Reference) > 40:
		return "reference must be at most 40 characters"
	case len(req.Metadata) > 20:
		return "metadata holds at most 20 key-value pairs"
	case !paydeskReasons[req.Reason]:
		return fmt.Sprintf("reason %q is not one of requested_by_customer, duplicate, fraudulent, return, other", req.Reason)
	}
	for _, li := range req.LineItems {
		if li.ID == "" || li.Quantity < 1 {
			return "lineItems need an id and a positive quantity"
		}
	}
	return ""
}

func (s *Server) paydeskCreate(w http.ResponseWriter, r *http.Request) {
	a := paydeskAPI
	if !a.authorize(w, r, true) {
		return
	}
	var req paydeskRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, errMalformed, err.Error())
		return
	}
	if msg := validatePaydesk(req); msg != "" {
		a.fail(w, errValidation, msg)
		return
	}
	payment := r.PathValue("paymentId")
	if kind, msg := paymentProblem(payment); kind != errNone {
		a.fail(w, kind, msg)
		return
	}
	s.submit(w, r, createReq{api: a, payment: payment, amount: *req.Amount.Value, currency: req.Amount.Currency, details: req})
}
