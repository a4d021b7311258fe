package providers

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() { register(TypeBanktransfer, newBanktransfer) }

// banktransfer is the bank connector (source 000, payout refund): when full
// account details of the original payer are held, the refund goes back as a
// bank payout to that account.
type banktransfer struct {
	base
	noRefunds
}

func newBanktransfer(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("baseUrl", cfg.BaseURL, "apiKey", cfg.APIKey); err != nil {
		return nil, err
	}
	return &banktransfer{base: base{
		name:   cfg.Name,
		caps:   Capabilities{Payouts: true, AsyncOutcome: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cfg.BaseURL,
			client:    client,
			authorize: bearer(cfg.APIKey),
			decodeErr: envelopeError,
		},
	}}, nil
}

type bankPayoutRequest struct {
	Amount        int64  `json:"amount"`
	Currency      string `json:"currency"`
	AccountHolder string `json:"accountHolder"`
	IBAN          string `json:"iban,omitempty"`
	AccountNumber string `json:"accountNumber,omitempty"`
	BankCode      string `json:"bankCode,omitempty"`
	Country       string `json:"country"`
	Reference     string `json:"reference"`
	Description   string `json:"description,omitempty"`
}

type bankPayout struct {
	ID             string `json:"id"`
	Reference      string `json:"reference"`
	Status         string `json:"status"`
	FailureCode    string `json:"failureCode"`
	FailureMessage string `json:"failureMessage"`
}

var bankStatuses = map[string]Status{
	"processing": StatusProcessing,
	"completed":  StatusSucceeded,
	"rejected":   StatusDeclined,
	"failed":     StatusFailed,
	"returned":   StatusReversed, // the beneficiary bank sent a completed payout back
}

func (p bankPayout) result() Result {
	return statusResult(bankStatuses, p.Status, p.ID, p.FailureCode, p.FailureMessage)
}

// Payout sends the amount to the account in req.Destination: an IBAN, or an
// account number with a bank code. The reference is the Backflow refund id.
func (c *banktransfer) Payout(ctx context.Context, req PayoutRequest) (Result, error) {
	d := req.Destination
	if d.AccountHolder == "" || d.Country == "" || (d.IBAN == "" && (d.AccountNumber == "" || d.BankCode == "")) {
		return Result{}, Invalid("bad_destination", c.name+" payouts need the account holder, country and an IBAN or account number with bank code")
	}
	in := bankPayoutRequest{
		Amount:        req.Amount,
		Currency:      strings.ToUpper(req.Currency),
		AccountHolder: d.AccountHolder,
		IBAN:          strings.ToUpper(strings.ReplaceAll(d.IBAN, " ", "")),
		AccountNumber: d.AccountNumber,
		BankCode:      d.BankCode,
		Country:       strings.ToUpper(d.Country),
		Reference:     cmp.Or(req.RefundID, req.IdempotencyKey),
		Description:   req.Description,
	}
	var out bankPayout
	if err := c.api.doJSON(ctx, http.MethodPost, "/bank/v1/payouts", req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s payout: %w", c.name, err)
	}
	return out.result(), nil
}

// PayoutStatus reads the payout by id or, failing that, by idempotency key.
func (c *banktransfer) PayoutStatus(ctx context.Context, l Lookup) (Result, error) {
	out, err := find[bankPayout](ctx, c.api, l.ProviderReference, l.RefundID,
		"/bank/v1/payouts/"+pathEscape(l.ProviderReference),
		"/bank/v1/payouts?idempotencyKey="+url.QueryEscape(l.RefundID), "payouts")
	if err != nil {
		return Result{}, fmt.Errorf("get %s payout: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes a payout.updated callback; the payout's
// reference is the Backflow refund id Payout sent.
func (c *banktransfer) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	p, err := parseSandboxCallback[bankPayout](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	return callbackEvent(p.Reference, p.result())
}
