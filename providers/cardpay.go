package providers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() { register(TypeCardpay, newCardpay) }

// cardpay is the card processor connector (source 001): HTTP Basic auth,
// decimal amounts, a synchronous answer with the refund id and the original
// transaction's status.
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

type cardpayRefundRequest struct {
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
	ProcessedAt               string `json:"processedAt"`
	Status                    string `json:"status"`
	FailureCode               string `json:"failureCode"`
	FailureMessage            string `json:"failureMessage"`
	IdempotencyKey            string `json:"idempotencyKey"`
}

var cardpayStatuses = map[string]Status{
	"processing": StatusProcessing,
	"approved":   StatusSucceeded,
	"declined":   StatusDeclined,
	"failed":     StatusFailed,
}

func (r cardpayRefund) result() Result {
	return Result{
		Status:            statusOf(cardpayStatuses, r.Status),
		ProviderReference: r.RefundTransactionID,
		FailureCode:       r.FailureCode,
		FailureMessage:    r.FailureMessage,
	}
}

// Refund refunds the captured transaction req.PaymentReference.
func (c *cardpay) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	in := cardpayRefundRequest{
		TransactionID: req.PaymentReference,
		Amount:        FormatAmount(req.Amount, req.Currency),
		Currency:      strings.ToUpper(req.Currency),
		Reason:        reasonText(req),
		Description:   descriptionText(req),
	}
	var out cardpayRefund
	if err := c.api.doJSON(ctx, http.MethodPost, "/cardpay/v1/refunds", req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// RefundStatus reads the refund by its refundTransactionId or, failing that,
// by idempotency key.
func (c *cardpay) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	providerReference, idempotencyKey := l.ProviderReference, l.RefundID
	out, err := find[cardpayRefund](ctx, c.api, providerReference, idempotencyKey,
		"/cardpay/v1/refunds/"+pathEscape(providerReference),
		"/cardpay/v1/refunds?idempotencyKey="+url.QueryEscape(idempotencyKey), "refunds")
	if err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes a refund.updated callback.
func (c *cardpay) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	r, err := parseSandboxCallback[cardpayRefund](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	return callbackEvent(r.IdempotencyKey, r.result())
}
