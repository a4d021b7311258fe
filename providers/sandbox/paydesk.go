package sandbox

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/backflow/backflow/providers"
)

// paydeskAPI is the payment platform (source 002): a refund names its payment
// in the body, with a flat amount, a required currency and reason, line item
// ids, metadata, a reference; errors 404 payment.not-found and 403
// amount.insufficient. 002 shows no refund object, status words or look-ups:
// those are the sandbox's.
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
		errDuplicate:      {code: "request.duplicate"},
		errRateLimited:    {code: "rate-limit.exceeded"},
		errUnavailable:    {code: "service.unavailable"},
	},
	// 002's error table: status code, error code, description.
	errBody: func(status int, code, message string) any {
		return map[string]any{"status": status, "code": code, "description": message}
	},
}

func (s *Server) routePaydesk() {
	a := paydeskAPI
	samePayment := func(r *http.Request, rec record) bool { return rec.payment == r.PathValue("paymentId") }
	page := func(items []any) any { return map[string]any{"count": len(items), "refunds": items} }
	s.mux.HandleFunc("POST /paydesk/v2/refunds", s.paydeskCreate)
	s.mux.HandleFunc("GET /paydesk/v2/payments/{paymentId}/refunds/{refundId}", s.handleGet(a, "refundId", samePayment))
	s.mux.HandleFunc("GET /paydesk/v2/refunds", s.handleFind(a, "idempotencyKey", page))
}

type paydeskLineItem struct {
	ID string `json:"id"`
}

// paydeskRequest is 002's body; pointers tell an absent field from an empty one.
type paydeskRequest struct {
	PaymentID   string            `json:"paymentId"`
	Amount      *int64            `json:"amount"`
	Currency    string            `json:"currency"`
	Description *string           `json:"description"`
	LineItems   []paydeskLineItem `json:"lineItems"`
	Metadata    map[string]string `json:"metadata"`
	Reason      string            `json:"reason"`
	Reference   *string           `json:"reference"`
}

type paydeskRefund struct {
	Resource       string            `json:"resource"`
	ID             string            `json:"id"`
	PaymentID      string            `json:"paymentId"`
	Amount         int64             `json:"amount"`
	Currency       string            `json:"currency"`
	Status         string            `json:"status"`
	Reason         string            `json:"reason"`
	Description    string            `json:"description,omitempty"`
	Reference      string            `json:"reference,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	LineItems      []paydeskLineItem `json:"lineItems,omitempty"`
	FailureCode    string            `json:"failureCode,omitempty"`
	FailureMessage string            `json:"failureMessage,omitempty"`
	CreatedAt      string            `json:"createdAt"`
}

var paydeskStatus = [...]string{
	stateProcessing: "pending",
	stateSucceeded:  "refunded",
	stateDeclined:   "declined",
	stateFailed:     "failed",
	stateReversed:   "reversed", // extension: 002's refunds are final
}

func renderPaydesk(r record) any {
	req := r.details.(paydeskRequest)
	out := paydeskRefund{
		Resource:    "refund",
		ID:          r.id,
		PaymentID:   r.payment,
		Amount:      r.amount,
		Currency:    r.currency,
		Status:      paydeskStatus[r.state],
		Reason:      req.Reason,
		Description: deref(req.Description),
		Reference:   deref(req.Reference),
		Metadata:    req.Metadata,
		LineItems:   req.LineItems,
		CreatedAt:   r.created.Format(time.RFC3339),
	}
	switch r.state {
	case stateDeclined:
		out.FailureCode, out.FailureMessage = "refund.declined", "the refund was declined"
	case stateFailed:
		out.FailureCode, out.FailureMessage = "refund.failed", "the refund could not be processed"
	case stateReversed:
		out.FailureCode, out.FailureMessage = "refund.reversed", "the refund was reversed"
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// lengthBetween reports whether an optional string, when present, has
// lo..hi characters.
func lengthBetween(s *string, lo, hi int) bool {
	if s == nil {
		return true
	}
	n := utf8.RuneCountInString(*s)
	return n >= lo && n <= hi
}

// validatePaydesk returns what is wrong with req, or "".
func validatePaydesk(req paydeskRequest) string {
	switch {
	case req.PaymentID == "":
		return "paymentId is required"
	case req.Amount == nil:
		// Payments are not registered, so "the full unrefunded amount" is unknown.
		return "amount is required in the sandbox"
	case *req.Amount < 1:
		return "amount must be positive"
	case !validCurrency(req.Currency):
		return "currency must be an uppercase ISO 4217 code"
	case !lengthBetween(req.Description, 1, 80):
		return "description must have 1 to 80 characters"
	case !lengthBetween(req.Reference, 1, 40):
		return "reference must have 1 to 40 characters"
	case len(req.Metadata) > 20:
		return "metadata holds at most 20 key-value pairs"
	case !slices.Contains(providers.PaydeskReasons, req.Reason):
		return fmt.Sprintf("reason %q is not one of %s", req.Reason, strings.Join(providers.PaydeskReasons, ", "))
	}
	for _, li := range req.LineItems {
		if li.ID == "" {
			return "lineItems need an id"
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
	if kind, msg := paymentProblem(req.PaymentID); kind != errNone {
		a.fail(w, kind, msg)
		return
	}
	s.submit(w, r, createReq{api: a, payment: req.PaymentID, amount: *req.Amount, currency: req.Currency, details: req})
}
