package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
)

func init() { register(TypeOrchestra, newOrchestra) }

// orchestra is the orchestration platform connector (source 003): a Bearer
// token with scope transactions.write, minor units 1..99,999,999, refunds to
// the payment method or to a gift-card redemption, and refund records whose
// status moves through processing to succeeded, declined, failed or voided.
type orchestra struct {
	base
	noPayouts
}

func newOrchestra(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("baseUrl", cfg.BaseURL, "apiKey", cfg.APIKey); err != nil {
		return nil, err
	}
	return &orchestra{base: base{
		name:   cfg.Name,
		caps:   Capabilities{RefundAPI: true, PartialRefunds: true, AsyncOutcome: true, GiftCards: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cfg.BaseURL,
			client:    client,
			authorize: bearer(cfg.APIKey),
			decodeErr: orchestraError,
		},
	}}, nil
}

type orchestraRefundRequest struct {
	Amount     int64  `json:"amount"`
	TargetType string `json:"target_type"`
	TargetID   string `json:"target_id,omitempty"`
}

// orchestraRefund is 003's refund record, as much of it as Backflow reads.
type orchestraRefund struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Status string `json:"status"`
}

var orchestraStatuses = map[string]Status{
	"processing": StatusProcessing,
	"succeeded":  StatusSucceeded,
	"declined":   StatusDeclined,
	"failed":     StatusFailed,
	"voided":     StatusCanceled, // voided before it was processed: nothing moved
	"reversed":   StatusReversed, // sandbox extension (outcome 08); 003 has no such status
}

// orchestraTargets maps Backflow target types to the API's.
var orchestraTargets = map[string]string{
	"":                       "payment-method",
	TargetPaymentMethod:      "payment-method",
	TargetGiftCardRedemption: "gift-card-redemption",
}

// result maps the record; it carries no failure reason, so a failure is named
// by its status (provider.declined, provider.voided, ...).
func (r orchestraRefund) result() Result {
	return statusResult(orchestraStatuses, r.Status, r.ID, "", "")
}

// orchestraError decodes {"type":"error","code","status","message"}. A token
// without the transactions.write scope gets 403, an invalid request.
func orchestraError(status int, header http.Header, body []byte) *Error {
	var e struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &e) // an unreadable body still classifies by status
	return classify(status, header, e.Code, e.Message, false)
}

// Refund refunds the transaction req.PaymentReference. The amount is always
// sent, also for full refunds, so the provider cannot refund more than
// Backflow reserved.
func (c *orchestra) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	if err := c.checkTarget(req); err != nil {
		return Result{}, err
	}
	in := orchestraRefundRequest{Amount: req.Amount, TargetType: orchestraTargets[req.TargetType], TargetID: req.TargetID}
	path := "/orchestra/transactions/" + pathEscape(req.PaymentReference) + "/refunds"
	var out orchestraRefund
	if err := c.api.doJSON(ctx, http.MethodPost, path, req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// RefundStatus reads the refund record by id or, failing that, by
// idempotency key.
func (c *orchestra) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	out, err := find[orchestraRefund](ctx, c.api, l.ProviderReference, l.RefundID,
		"/orchestra/refunds/"+pathEscape(l.ProviderReference),
		"/orchestra/refunds?idempotency_key="+url.QueryEscape(l.RefundID), "items")
	if err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes an event whose target is a refund
// record, named by its id.
func (c *orchestra) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	if err := verifySandboxCallback(header, body, c.secret); err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	var event struct {
		Target orchestraRefund `json:"target"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	if event.Target.Type != "refund" {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, ErrIgnoredCallback)
	}
	return callbackEvent("", event.Target.result())
}
