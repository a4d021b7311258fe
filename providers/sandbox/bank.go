package sandbox

import (
	"net/http"
	"strings"
	"time"

	"github.com/backflow/backflow/providers"
)

// bankAPI is the bank payout provider (source 000): payouts to full account
// details, an IBAN or an account number with a bank code.
var bankAPI = &api{
	name:   providers.TypeBanktransfer,
	secret: providers.SandboxBanktransferCallbackSecret,
	auth:   bearerAuth(providers.SandboxBankAPIKey),
	newID:  func() string { return shortID("bp_") },
	render: renderBank,
	callback: func(r record, id string, at time.Time) any {
		return envelope("payout.updated", id, at, renderBank(r))
	},
	errs:    payoutErrors,
	errBody: snakeError,
}

func (s *Server) routeBank() {
	a := bankAPI
	s.mux.HandleFunc("POST /bank/v1/payouts", s.bankCreate)
	s.mux.HandleFunc("GET /bank/v1/payouts/{id}", s.handleGet(a, "id", nil))
	s.mux.HandleFunc("GET /bank/v1/payouts", s.handleFind(a, "idempotencyKey", payoutPage))
}

type bankRequest struct {
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	AccountHolder string `json:"accountHolder"`
	IBAN          string `json:"iban"`
	AccountNumber string `json:"accountNumber"`
	BankCode      string `json:"bankCode"`
	Country       string `json:"country"`
	Reference     string `json:"reference"`
	Description   string `json:"description"`
}

type bankPayout struct {
	ID             string `json:"id"`
	Reference      string `json:"reference"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	Currency       string `json:"currency"`
	AccountHolder  string `json:"accountHolder"`
	IBAN           string `json:"iban,omitempty"`
	AccountNumber  string `json:"accountNumber,omitempty"`
	BankCode       string `json:"bankCode,omitempty"`
	Country        string `json:"country"`
	FailureCode    string `json:"failureCode,omitempty"`
	FailureMessage string `json:"failureMessage,omitempty"`
	CreatedAt      string `json:"createdAt"`
	UpdatedAt      string `json:"updatedAt"`
}

var bankStatus = [...]string{
	stateProcessing: "processing",
	stateSucceeded:  "completed",
	stateDeclined:   "rejected",
	stateFailed:     "failed",
	stateReversed:   "returned",
}

func renderBank(r record) any {
	req := r.details.(bankRequest)
	out := bankPayout{
		ID:            r.id,
		Reference:     req.Reference,
		Status:        bankStatus[r.state],
		Amount:        r.amount,
		Currency:      r.currency,
		AccountHolder: req.AccountHolder,
		IBAN:          req.IBAN,
		AccountNumber: req.AccountNumber,
		BankCode:      req.BankCode,
		Country:       req.Country,
		CreatedAt:     r.created.Format(time.RFC3339),
		UpdatedAt:     r.updated.Format(time.RFC3339),
	}
	switch r.state {
	case stateDeclined:
		out.FailureCode, out.FailureMessage = "account_closed", "the beneficiary bank rejected the payout"
	case stateFailed:
		out.FailureCode, out.FailureMessage = "beneficiary_bank_error", "the beneficiary bank could not credit the account"
	case stateReversed:
		out.FailureCode, out.FailureMessage = "payout_returned", "the beneficiary bank returned the payout"
	}
	return out
}

func (s *Server) bankCreate(w http.ResponseWriter, r *http.Request) {
	a := bankAPI
	if !a.authorize(w, r, true) {
		return
	}
	var req bankRequest
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
	case req.AccountHolder == "":
		a.fail(w, errValidation, "accountHolder is required")
		return
	case len(req.Country) != 2:
		a.fail(w, errValidation, "country must be an ISO 3166 alpha-2 code")
		return
	case req.IBAN == "" && (req.AccountNumber == "" || req.BankCode == ""):
		a.fail(w, errValidation, "iban, or accountNumber with bankCode, is required")
		return
	case req.IBAN != "" && !validIBAN(req.IBAN):
		a.fail(w, errValidation, "iban is not valid")
		return
	case req.Reference == "":
		a.fail(w, errValidation, "reference is required")
		return
	}
	destination := req.IBAN
	if destination == "" {
		destination = req.BankCode + "/" + req.AccountNumber
	}
	s.submit(w, r, createReq{api: a, payment: destination, amount: req.Amount, currency: req.Currency, details: req})
}

// validIBAN checks an IBAN's length and ISO 13616 mod-97 check digits.
func validIBAN(iban string) bool {
	iban = strings.ToUpper(strings.ReplaceAll(iban, " ", ""))
	if len(iban) < 15 || len(iban) > 34 {
		return false
	}
	rem := 0
	for _, r := range iban[4:] + iban[:4] {
		switch {
		case r >= '0' && r <= '9':
			rem = (rem*10 + int(r-'0')) % 97
		case r >= 'A' && r <= 'Z':
			rem = (rem*100 + int(r-'A'+10)) % 97 // letters count as two digits
		default:
			return false
		}
	}
	return rem == 1
}
