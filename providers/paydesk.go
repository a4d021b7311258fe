package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

func init() { register(TypePaydesk, newPaydesk) }

// paydesk is the payment platform connector (source 002): refunds on a
// payment with line items, metadata and a reference, Bearer API key, minor
// units, and an asynchronous outcome.
//
// Its refunds live under their payment, so the provider reference is
// "paymentId/refundId".
type paydesk struct {
	base
	noPayouts
}

func newPaydesk(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("baseUrl", cfg.BaseURL, "apiKey", cfg.APIKey); err != nil {
		return nil, err
	}
	return &paydesk{base: base{
		name:   cfg.Name,
		caps:   Capabilities{RefundAPI: true, PartialRefunds: true, AsyncOutcome: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cfg.BaseURL,
			client:    client,
			authorize: bearer(cfg.APIKey),
			decodeErr: paydeskError,
		},
	}}, nil
}

type paydeskAmount struct {
	Currency string `json:"currency"`
	Value    int64  `json:"value"`
}

type paydeskLineItem struct {
	ID       string `json:"id"`
	Quantity int64  `json:"quantity"`
}

type paydeskRefundRequest struct {
	Amount      paydeskAmount     `json:"amount"`
	Description string            `json:"description,omitempty"`
	Reference   string            `json:"reference,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	LineItems   []paydeskLineItem `json:"lineItems,omitempty"`
	Reason      string            `json:"reason"`
}

type paydeskRefund struct {
	ID             string        `json:"id"`
	PaymentID      string        `json:"paymentId"`
	Amount         paydeskAmount `json:"amount"`
	Status         string        `json:"status"`
	FailureCode    string        `json:"failureCode"`
	FailureMessage string        `json:"failureMessage"`
	IdempotencyKey string        `json:"idempotencyKey"`
}

var paydeskStatuses = map[string]Status{
	"pending":    StatusProcessing,
	"processing": StatusProcessing,
	"refunded":   StatusSucceeded,
	"declined":   StatusDeclined,
	"failed":     StatusFailed,
}

// paydeskReasons are the reason values the API accepts.
var paydeskReasons = map[string]bool{
	"requested_by_customer": true, "duplicate": true, "fraudulent": true, "return": true, "other": true,
}

func (r paydeskRefund) result() Result {
	return Result{
		Status:            statusOf(paydeskStatuses, r.Status),
		ProviderReference: r.PaymentID + "/" + r.ID,
		FailureCode:       r.FailureCode,
		FailureMessage:    r.FailureMessage,
	}
}

// paydeskError decodes {"status","code","description"}; amount.insufficient
// (the payment has too little left) is a decline.
func paydeskError(status int, header http.Header, body []byte) *Error {
	var e struct {
		Code        string `json:"code"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(body, &e) // an unreadable body still classifies by status
	return classify(status, header, e.Code, e.Description, e.Code == "amount.insufficient")
}

// Refund creates a refund on the payment req.PaymentReference.
func (c *paydesk) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	reason := strings.ToLower(req.ReasonCode)
	if !paydeskReasons[reason] {
		reason = "other"
	}
	in := paydeskRefundRequest{
		Amount:      paydeskAmount{Currency: strings.ToUpper(req.Currency), Value: req.Amount},
		Description: req.Description,
		Reference:   req.Reference,
		Metadata:    req.Metadata,
		Reason:      reason,
	}
	for _, li := range req.LineItems {
		in.LineItems = append(in.LineItems, paydeskLineItem{ID: li.ID, Quantity: li.Quantity})
	}
	path := "/paydesk/v2/payments/" + pathEscape(req.PaymentReference) + "/refunds"
	var out paydeskRefund
	if err := c.api.doJSON(ctx, http.MethodPost, path, req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// RefundStatus reads the refund by "paymentId/refundId" or, failing that, by
// idempotency key.
func (c *paydesk) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	providerReference, idempotencyKey := l.ProviderReference, l.RefundID
	var itemPath string
	if providerReference != "" {
		i := strings.LastIndex(providerReference, "/")
		if i <= 0 || i == len(providerReference)-1 {
			return Result{}, Invalid("bad_reference", fmt.Sprintf("%s reference %q is not paymentId/refundId", c.name, providerReference))
		}
		itemPath = "/paydesk/v2/payments/" + pathEscape(providerReference[:i]) + "/refunds/" + pathEscape(providerReference[i+1:])
	}
	out, err := find[paydeskRefund](ctx, c.api, providerReference, idempotencyKey,
		itemPath, "/paydesk/v2/refunds?idempotencyKey="+url.QueryEscape(idempotencyKey), "refunds")
	if err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes a refund.updated callback.
func (c *paydesk) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	r, err := parseSandboxCallback[paydeskRefund](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	if r.ID == "" {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, ErrIgnoredCallback)
	}
	return callbackEvent(r.IdempotencyKey, r.result())
}
