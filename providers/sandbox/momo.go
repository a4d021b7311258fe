package sandbox

import (
	"net/http"
	"time"

	"github.com/backflow/backflow/providers"
)

// momoAPI is the mobile-money provider (source 000): no refund API, payouts
// to a wallet, outcome usually by callback.
var momoAPI = &api{
	name:   providers.TypeMomo,
	secret: providers.SandboxMomoCallbackSecret,
	auth:   bearerAuth(providers.SandboxMomoAPIKey),
	newID:  func() string { return shortID("mp_") },
	render: renderMomo,
	callback: func(r record, id string, at time.Time) any {
		return envelope("payout.updated", id, at, renderMomo(r))
	},
	errs:    payoutErrors,
	errBody: snakeError,
}

// payoutErrors are the error codes of the payout APIs.
var payoutErrors = map[errKind]apiError{
	errMalformed:      {code: "invalid_request"},
	errValidation:     {code: "validation_error"},
	errUnauthorized:   {code: "unauthorized"},
	errForbidden:      {code: "forbidden"},
	errObjectNotFound: {code: "payout_not_found"},
	errMismatch:       {code: "idempotency_key_reused"},
	errDuplicate:      {code: "duplicate_request"},
	errRateLimited:    {code: "rate_limited"},
	errUnavailable:    {code: "service_unavailable"},
}

// bearerAuth accepts one API key as a Bearer token.
func bearerAuth(key string) func(*http.Request, bool) errKind {
	return func(r *http.Request, _ bool) errKind {
		if bearerToken(r) != key {
			return errUnauthorized
		}
		return errNone
	}
}

func (s *Server) routeMomo() {
	a := momoAPI
	s.mux.HandleFunc("POST /momo/v1/payouts", s.momoCreate)
	s.mux.HandleFunc("GET /momo/v1/payouts/{id}", s.handleGet(a, "id", nil))
	s.mux.HandleFunc("GET /momo/v1/payouts", s.handleFind(a, "idempotencyKey", payoutPage))
}

func payoutPage(items []any) any { return map[string]any{"payouts": items} }

type momoRequest struct {
	Amount      int64  `json:"amount"`
	Currency    string `json:"currency"`
	MSISDN      string `json:"msisdn"`
	Network     string `json:"network"`
	Reference   string `json:"reference"`
	Description string `json:"description"`
}

type momoPayout struct {
	ID             string `json:"id"`
	Reference      string `json:"reference"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	MSISDN         string `json:"msisdn"`
	Network        string `json:"network,omitempty"`
	FailureCode    string `json:"failureCode,omitempty"`
	FailureMessage string `json:"failureMessage,omitempty"`
	CreatedAt      string `json:"createdAt"`
	UpdatedAt      string `json:"updatedAt"`
}

var momoStatus = [...]string{
	stateProcessing: "pending",
	stateSucceeded:  "successful",
	stateDeclined:   "rejected",
	stateFailed:     "failed",
	stateReversed:   "reversed",
}

func renderMomo(r record) any {
	req := r.details.(momoRequest)
	out := momoPayout{
		ID:        r.id,
		Reference: req.Reference,
		Status:    momoStatus[r.state],
		Amount:    r.amount,
		Currency:  r.currency,
		MSISDN:    req.MSISDN,
		Network:   req.Network,
		CreatedAt: r.created.Format(time.RFC3339),
		UpdatedAt: r.updated.Format(time.RFC3339),
	}
	switch r.state {
	case stateDeclined:
		out.FailureCode, out.FailureMessage = "PAYEE_NOT_ALLOWED", "the wallet cannot receive this payout"
	case stateFailed:
		out.FailureCode, out.FailureMessage = "INTERNAL_PROCESSING_ERROR", "the network could not complete the payout"
	case stateReversed:
		out.FailureCode, out.FailureMessage = "PAYOUT_REVERSED", "the network reversed the payout"
	}
	return out
}

func (s *Server) momoCreate(w http.ResponseWriter, r *http.Request) {
	a := momoAPI
	if !a.authorize(w, r, true) {
		return
	}
	var req momoRequest
	if err := decodeBody(w, r, &req); err != nil {
		a.fail(w, errMalformed, err.Error())
		return
	}
	switch {
	case req.Amount < 1:
		a.fail(w, errValidation, "amount must be a positive number of minor units")
		return
	case !validCurrency(req.Currency):
		a.fail(w, errValidation, "currency must be an ISO 4217 code")
		return
	case len(req.MSISDN) < 8 || len(req.MSISDN) > 15 || !allDigits(req.MSISDN):
		a.fail(w, errValidation, "msisdn must be 8 to 15 digits in international format")
		return
	case req.Reference == "":
		a.fail(w, errValidation, "reference is required")
		return
	}
	s.submit(w, r, createReq{api: a, payment: req.MSISDN, amount: req.Amount, currency: req.Currency, details: req})
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
