package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() { register(TypeCardpay, newCardpay) }

// CardpayAmountDecimals is the precision of cardpay amounts: a JSON number
// that is a multiple of 0.01 (source 001).
const CardpayAmountDecimals = 2

// cardpay is the card processor connector (source 001): HTTP Basic auth, the
// amount as a decimal JSON number, and a synchronous answer: a 2xx carrying
// refundTransactionId means the refund was processed.
type cardpay struct {
	base
	noPayouts
}

func newCardpay(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("baseUrl", cfg.BaseURL, "username", cfg.Username, "password", cfg.Password); err != nil {
		return nil, err
	}
	return &cardpay{base: base{
		name:   cfg.Name,
		caps:   Capabilities{RefundAPI: true, PartialRefunds: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cfg.BaseURL,
			client:    client,
			authorize: func(r *http.Request) { r.SetBasicAuth(cfg.Username, cfg.Password) },
			decodeErr: envelopeError,
		},
	}}, nil
}

// cardpayRefundRequest is 001's request body; every field is required.
type cardpayRefundRequest struct {
	TransactionID string      `json:"transactionId"`
	Amount        json.Number `json:"amount"`
	Currency      string      `json:"currency"`
	Reason        string      `json:"reason"`
	Description   string      `json:"description"`
}

// cardpayRefund is 001's answer. Status is the original transaction's status
// (locked, captured, void, refunded), not the refund's: 001 answers only
// processed refunds. RefundStatus is the sandbox's extension for its outcome
// controls (see providers/sandbox/README.md); 001 never sends it.
type cardpayRefund struct {
	TransactionID       string      `json:"transactionId"`
	RefundTransactionID string      `json:"refundTransactionId"`
	Status              string      `json:"status"`
	Amount              json.Number `json:"amount"`
	Currency            string      `json:"currency"`
	ProcessedAt         string      `json:"processedAt"`
	RefundStatus        string      `json:"refundStatus"`
}

// cardpayRefundStatuses maps the sandbox's refundStatus extension; an answer
// without it is 001's: processed.
var cardpayRefundStatuses = map[string]Status{
	"":           StatusSucceeded,
	"processing": StatusProcessing,
	"succeeded":  StatusSucceeded,
	"declined":   StatusDeclined,
	"failed":     StatusFailed,
	"reversed":   StatusReversed,
}

// result reads a 2xx answer. Without refundTransactionId it is no answer 001
// defines, so the outcome stays unknown.
func (r cardpayRefund) result(provider string) (Result, error) {
	if r.RefundTransactionID == "" {
		return Result{}, Retryable("bad_response", provider+" answer has no refundTransactionId", nil)
	}
	return statusResult(cardpayRefundStatuses, r.RefundStatus, r.RefundTransactionID, "", ""), nil
}

// Refund refunds the captured transaction req.PaymentReference.
func (c *cardpay) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	if err := c.checkTarget(req); err != nil {
		return Result{}, err
	}
	amount, err := FormatDecimal(req.Amount, req.Currency, CardpayAmountDecimals)
	if err != nil {
		return Result{}, Invalid("amount_precision", fmt.Sprintf("%s: %v", c.name, err))
	}
	in := cardpayRefundRequest{
		TransactionID: req.PaymentReference,
		Amount:        json.Number(amount),
		Currency:      strings.ToUpper(req.Currency),
		Reason:        reasonText(req),
		Description:   descriptionText(req),
	}
	var out cardpayRefund
	if err := c.api.doJSON(ctx, http.MethodPost, "/cardpay/v1/refunds", req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(c.name)
}

// RefundStatus reads the refund by its refundTransactionId or, failing that,
// by idempotency key (both look-ups are the sandbox's; 001 defines none).
func (c *cardpay) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	out, err := find[cardpayRefund](ctx, c.api, l.ProviderReference, l.RefundID,
		"/cardpay/v1/refunds/"+pathEscape(l.ProviderReference),
		"/cardpay/v1/refunds?idempotencyKey="+url.QueryEscape(l.RefundID), "refunds")
	if err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, err)
	}
	return out.result(c.name)
}

// ParseCallback verifies and decodes a refund.updated callback (a sandbox
// extension: 001 defines none), which names the refund by its
// refundTransactionId.
func (c *cardpay) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	r, err := parseSandboxCallback[cardpayRefund](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	res, _ := r.result(c.name) // without refundTransactionId, callbackEvent ignores it
	return callbackEvent("", res)
}
