package sandbox

import (
	"net/http"
	"time"

	"github.com/backflow/backflow/providers"
)

// cardpayAPI is the card processor (source 001): Basic auth, decimal amounts,
// a synchronous answer with the refund id and the original transaction's status.
var cardpayAPI = &api{
	name:   providers.TypeCardpay,
	secret: providers.SandboxCardpayCallbackSecret,
	auth: func(r *http.Request, _ bool) errKind {
		user, pass, ok := r.BasicAuth()
		if !ok || user != providers.SandboxCardpayUsername || pass != providers.SandboxCardpayPassword {
			return errUnauthorized
		}
		return errNone
	},
	newID:  uuidV7,
	render: renderCardpay,
	callback: func(r record, id string, at time.Time) any {
		return envelope("refund.updated", id, at, renderCardpay(r))
	},
	errs: map[errKind]apiError{
		errMalformed:      {code: "invalid_request"},
		errValidation:     {code: "validation_error"},
		errUnauthorized:   {code: "unauthorized"},
		errForbidden:      {code: "forbidden"},
		errNotFound:       {code: "transaction_not_found"},
		errObjectNotFound: {code: "refund_not_found"},
		errInsufficient:   {code: "transaction_fully_refunded"},
		errNotCaptured:    {code: "transaction_not_captured"},
		errMismatch:       {code: "idempotency_key_reused"},
		errRateLimited:    {code: "rate_limited"},
		errUnavailable:    {code: "service_unavailable"},
	},
	errBody: snakeError,
}

func (s *Server) routeCardpay() {
	a := cardpayAPI
	s.mux.HandleFunc("POST /cardpay/v1/refunds", s.cardpayCreate)
	s.mux.HandleFunc("GET /cardpay/v1/refunds/{id}", s.handleGet(a, "id", nil))
	s.mux.HandleFunc("GET /cardpay/v1/refunds", s.handleFind(a, "idempotencyKey", func(items []any) any {
		return map[string]any{"refunds": items}
	}))
}

type cardpayRequest struct {
	TransactionID string `json:"transactionId"`
	Amount        string `json:"amount"`
	Currency      string `json:"currency"`
	Reason        string `json:"reason"`
	Description   string `json:"description"`
}

type cardpayRefund struct {
	OriginalTransactionID     string `json:"originalTransactionId"`
	RefundTransactionID       string `json:"refundTransactionId"`
	OriginalTransactionStatus string `json:"originalTransactionStatus"`
	Amount                    string `json:"amount"`
	Currency                  string `json:"currency"`
	Status                    string `json:"status"`
	ProcessedAt               string `json:"processedAt,omitempty"`
	Reason                    string `json:"reason"`
	Description               string `json:"description"`
	FailureCode               string `json:"failureCode,omitempty"`
	FailureMessage            string `json:"failureMessage,omitempty"`
	IdempotencyKey            string `json:"idempotencyKey,omitempty"`
}

var cardpayStatus = [...]string{
	stateProcessing: "processing",
	stateSucceeded:  "approved",
	stateDeclined:   "declined",
	stateFailed:     "failed",
}

func renderCardpay(r record) any {
	req := r.details.(cardpayRequest)
	out := cardpayRefund{
		OriginalTransactionID: r.payment,
		RefundTransactionID:   r.id,
		// Payments are not registered, so the original amount is unknown and
		// a refund never makes it "refunded".
		OriginalTransactionStatus: "captured",
		Amount:                    providers.FormatAmount(r.amount, r.currency),
		Currency:                  r.currency,
		Status:                    cardpayStatus[r.state],
		Reason:                    req.Reason,
		Description:               req.Description,
		IdempotencyKey:            r.key,
	}
	if r.state.final() {
		out.ProcessedAt = r.updated.Format(time.RFC3339)
	}
	switch r.state {
	case stateDeclined:
		out.FailureCode, out.FailureMessage = "refund_declined", "the issuer declined the refund"
	case stateFailed:
		out.FailureCode, out.FailureMessage = "processing_error", "the refund could not be processed"
	}
	return out
}

func (s *Server) cardpayCreate(w http.ResponseWriter, r *http.Request) {
	a := cardpayAPI
	if !a.authorize(w, r, true) {
		return
	}
	var req cardpayRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, errMalformed, err.Error())
		return
	}
	var amount int64
	var err error
	switch {
	case req.TransactionID == "":
		a.fail(w, errValidation, "transactionId is required")
		return
	case !validCurrency(req.Currency):
		a.fail(w, errValidation, "currency must be an ISO 4217 code")
		return
	case req.Reason == "" || req.Description == "":
		a.fail(w, errValidation, "reason and description are required")
		return
	}
	if amount, err = providers.ParseAmount(req.Amount, req.Currency); err != nil || amount < 1 {
		a.fail(w, errValidation, "amount must be a positive decimal with at most "+
			providers.FormatAmount(1, req.Currency)+" precision")
		return
	}
	if kind, msg := paymentProblem(req.TransactionID); kind != errNone {
		a.fail(w, kind, msg)
		return
	}
	s.submit(w, r, createReq{api: a, payment: req.TransactionID, amount: amount, currency: req.Currency, details: req})
}
