package providers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func init() { register(TypeStripe, newStripe) }

// StripeBaseURL is Stripe's API, used when a stripe config has no base URL.
const StripeBaseURL = "https://api.stripe.com"

// StripeSignatureHeader carries the signature of Stripe webhooks.
const StripeSignatureHeader = "Stripe-Signature"

// stripeRefundIDKey is the refund metadata key that carries the Backflow refund id.
const stripeRefundIDKey = "backflow_refund_id"

// stripeConnector speaks Stripe's public API: form-encoded POST /v1/refunds
// with an Idempotency-Key, and refund.updated webhooks.
type stripeConnector struct {
	base
	noPayouts
	extraParams url.Values // test hook: sent with every create to provoke validation errors
}

func newStripe(cfg Config, client *http.Client) (Connector, error) {
	if err := requireFields("apiKey", cfg.APIKey); err != nil {
		return nil, err
	}
	return &stripeConnector{base: base{
		name:   cfg.Name,
		caps:   Capabilities{RefundAPI: true, PartialRefunds: true, AsyncOutcome: true},
		secret: cfg.CallbackSecret,
		api: &httpAPI{
			provider:  cfg.Name,
			baseURL:   cmp.Or(cfg.BaseURL, StripeBaseURL),
			client:    client,
			authorize: bearer(cfg.APIKey),
			decodeErr: stripeError,
		},
	}}, nil
}

type stripeRefund struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	Status        string            `json:"status"`
	FailureReason string            `json:"failure_reason"`
	Metadata      map[string]string `json:"metadata"`
}

var stripeStatuses = map[string]Status{
	"pending":         StatusProcessing,
	"requires_action": StatusProcessing,
	"succeeded":       StatusSucceeded,
	"failed":          StatusFailed,
	"canceled":        StatusFailed,
}

// stripeReasons maps Backflow reason codes to Stripe's reason enum; other
// codes send no reason.
var stripeReasons = map[string]string{
	"DUPLICATE":             "duplicate",
	"FRAUDULENT":            "fraudulent",
	"REQUESTED_BY_CUSTOMER": "requested_by_customer",
}

func (r stripeRefund) result() Result {
	res := Result{Status: statusOf(stripeStatuses, r.Status), ProviderReference: r.ID}
	switch r.Status {
	case "failed":
		res.FailureCode = cmp.Or(r.FailureReason, "failed")
		res.FailureMessage = "refund failed at Stripe"
	case "canceled":
		res.FailureCode = "canceled"
		res.FailureMessage = "refund canceled at Stripe"
	}
	return res
}

// stripeError maps Stripe's {"error":{"type","code","message"}}: 409 (a
// concurrent request with the same idempotency key) is retryable; card
// errors, charge_already_refunded and amount_too_large are declines; other
// request errors, idempotency_error included, are invalid.
func stripeError(status int, header http.Header, body []byte) *Error {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e) // an unreadable body still classifies by status
	code := cmp.Or(e.Error.Code, e.Error.Type)
	switch {
	case status == http.StatusConflict || header.Get("Stripe-Should-Retry") == "true":
		err := classify(status, header, code, e.Error.Message, false)
		err.Kind = KindRetryable
		return err
	case e.Error.Type == "card_error" || code == "charge_already_refunded" || code == "amount_too_large":
		return classify(status, header, code, e.Error.Message, true)
	default:
		return classify(status, header, code, e.Error.Message, false)
	}
}

// Refund creates a refund of a PaymentIntent ("pi_...") or a charge ("ch_..." or "py_...").
func (c *stripeConnector) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	form := url.Values{}
	switch ref := req.PaymentReference; {
	case strings.HasPrefix(ref, "pi_"):
		form.Set("payment_intent", ref)
	case strings.HasPrefix(ref, "ch_"), strings.HasPrefix(ref, "py_"):
		form.Set("charge", ref)
	default:
		return Result{}, Invalid("bad_payment_reference", fmt.Sprintf("%s cannot refund %q: not a PaymentIntent or charge id", c.name, ref))
	}
	form.Set("amount", strconv.FormatInt(req.Amount, 10))
	if reason, ok := stripeReasons[req.ReasonCode]; ok {
		form.Set("reason", reason)
	}
	for k, v := range req.Metadata {
		form.Set("metadata["+k+"]", v)
	}
	if req.RefundID != "" {
		form.Set("metadata["+stripeRefundIDKey+"]", req.RefundID)
	}
	for k, v := range c.extraParams {
		form[k] = v
	}
	var out stripeRefund
	if err := c.api.doForm(ctx, http.MethodPost, "/v1/refunds", req.IdempotencyKey, form, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// RefundStatus reads the refund by id. Stripe cannot search by idempotency
// key: without a reference, resubmit the create with the same key, which
// Stripe answers with the original refund for 24 hours.
func (c *stripeConnector) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	providerReference := l.ProviderReference
	if providerReference == "" {
		return Result{}, fmt.Errorf("find %s refund by idempotency key: %w", c.name, ErrUnsupported)
	}
	var out stripeRefund
	if err := c.api.doJSON(ctx, http.MethodGet, "/v1/refunds/"+pathEscape(providerReference), "", nil, &out); err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, notFound(err))
	}
	return out.result(), nil
}

// stripeRefundEvents are the webhook events whose object is a refund.
var stripeRefundEvents = map[string]bool{
	"refund.created": true, "refund.updated": true, "refund.failed": true, "charge.refund.updated": true,
}

// ParseCallback verifies a webhook's Stripe-Signature and decodes a refund
// event; the refund id comes from the refund's metadata.
func (c *stripeConnector) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	if err := VerifySignature(header.Get(StripeSignatureHeader), body, c.secret, time.Now(), SignatureTolerance); err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s webhook: %w", c.name, err)
	}
	var event struct {
		Type string `json:"type"`
		Data struct {
			Object stripeRefund `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s webhook: %w", c.name, err)
	}
	if !stripeRefundEvents[event.Type] || event.Data.Object.Object != "refund" {
		return CallbackEvent{}, fmt.Errorf("parse %s webhook %q: %w", c.name, event.Type, ErrIgnoredCallback)
	}
	r := event.Data.Object
	return callbackEvent(r.Metadata[stripeRefundIDKey], r.result())
}
