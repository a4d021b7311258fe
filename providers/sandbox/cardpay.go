package sandbox

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/backflow/backflow/providers"
)

// cardpayAPI is the card processor (source 001): Basic auth, the amount as a
// decimal JSON number, and a synchronous answer: 200 with refundTransactionId
// once the refund is processed. The outcome controls that 001 has no words
// for are extensions: 202 and refundStatus "processing" while processing,
// refundStatus declined/failed/reversed on status checks and callbacks, and
// a decline answered 402.
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
		errDuplicate:      {code: "duplicate_request"},
		errDeclined:       {code: "refund_declined"},
		errRateLimited:    {code: "rate_limited"},
		errUnavailable:    {code: "service_unavailable"},
	},
	errBody:          snakeError,
	processedStatus:  http.StatusOK,
	declinesAsErrors: true,
}

func (s *Server) routeCardpay() {
	a := cardpayAPI
	s.mux.HandleFunc("POST /cardpay/v1/refunds", s.cardpayCreate)
	s.mux.HandleFunc("GET /cardpay/v1/refunds/{id}", s.handleGet(a, "id", nil))
	s.mux.HandleFunc("GET /cardpay/v1/refunds", s.handleFind(a, "idempotencyKey", func(items []any) any {
		return map[string]any{"refunds": items}
	}))
}

// cardpayRequest is 001's body; the amount is kept raw to refuse strings.
type cardpayRequest struct {
	TransactionID string          `json:"transactionId"`
	Amount        json.RawMessage `json:"amount"`
	Currency      string          `json:"currency"`
	Reason        string          `json:"reason"`
	Description   string          `json:"description"`
}

// cardpayRefund is 001's answer plus the refundStatus extension, which is
// left out when the refund simply succeeded, so that answer is 001's own.
type cardpayRefund struct {
	TransactionID       string      `json:"transactionId"`
	RefundTransactionID string      `json:"refundTransactionId"`
	Status              string      `json:"status"`
	Amount              json.Number `json:"amount"`
	Currency            string      `json:"currency"`
	ProcessedAt         string      `json:"processedAt,omitempty"`
	RefundStatus        string      `json:"refundStatus,omitempty"`
}

var cardpayRefundStatus = [...]string{
	stateProcessing: "processing",
	stateSucceeded:  "",
	stateDeclined:   "declined",
	stateFailed:     "failed",
	stateReversed:   "reversed",
}

func renderCardpay(r record) any {
	out := cardpayRefund{
		TransactionID:       r.payment,
		RefundTransactionID: r.id,
		// Transactions are not registered, so the original amount is unknown
		// and a refund never makes the original "refunded".
		Status:       "captured",
		Amount:       json.Number(twoDecimals(r.amount, r.currency)),
		Currency:     r.currency,
		RefundStatus: cardpayRefundStatus[r.state],
	}
	if r.state == stateSucceeded || r.state == stateReversed {
		out.ProcessedAt = r.updated.Format(time.RFC3339)
	}
	return out
}

// twoDecimals renders the refunded amount "formatted to 2 decimal places"
// (001): 1234 JPY is 1234.00.
func twoDecimals(minor int64, currency string) string {
	s, _ := providers.FormatDecimal(minor, currency, providers.CardpayAmountDecimals) // created only when it fits
	whole, frac, _ := strings.Cut(s, ".")
	return whole + "." + frac + strings.Repeat("0", providers.CardpayAmountDecimals-len(frac))
}

// parseCardpayAmount reads 001's amount: a JSON number, a multiple of 0.01,
// at least 0.01, and representable in the currency (no 12.50 JPY).
func parseCardpayAmount(raw json.RawMessage, currency string) (int64, bool) {
	s := string(raw)
	if s == "" || strings.HasPrefix(s, `"`) {
		return 0, false
	}
	if _, frac, _ := strings.Cut(s, "."); len(frac) > providers.CardpayAmountDecimals {
		return 0, false
	}
	amount, err := providers.ParseAmount(s, currency)
	return amount, err == nil && amount >= 1
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
	amount, ok := parseCardpayAmount(req.Amount, req.Currency)
	if !ok {
		a.fail(w, errValidation, "amount must be a JSON number, at least 0.01 and a multiple of 0.01, in "+req.Currency+"'s minor units")
		return
	}
	if kind, msg := paymentProblem(req.TransactionID); kind != errNone {
		a.fail(w, kind, msg)
		return
	}
	s.submit(w, r, createReq{api: a, payment: req.TransactionID, amount: amount, currency: req.Currency})
}
