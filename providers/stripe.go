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

// result maps the refund; a failure is named by its failure_reason.
func (r stripeRefund) result() Result {
	return statusResult(stripeStatuses, r.Status, r.ID, r.FailureReason, "")
}

// stripeError maps Stripe's {"error":{"type","code","message"}}: an answer
// marked Stripe-Should-Retry is retryable; card errors,
// charge_already_refunded and amount_too_large are declines; the rest follows
// classify (a 409 concurrent use of the idempotency key leaves the outcome
// unknown; idempotency_error and other request errors are invalid).
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
	declined := e.Error.Type == "card_error" || code == "charge_already_refunded" || code == "amount_too_large"
	err := classify(status, header, code, e.Error.Message, declined)
	if header.Get("Stripe-Should-Retry") == "true" {
		err.Kind = KindRetryable
	}
	return err
}

// stripePayment names the original payment as Stripe's create and list
// parameters do: payment_intent for "pi_...", charge for "ch_..." and "py_...".
func (c *stripeConnector) stripePayment(ref string) (param string, err error) {
	switch {
	case strings.HasPrefix(ref, "pi_"):
		return "payment_intent", nil
	case strings.HasPrefix(ref, "ch_"), strings.HasPrefix(ref, "py_"):
		return "charge", nil
	}
	return "", Invalid("bad_payment_reference", fmt.Sprintf("%s: payment %q is not a PaymentIntent or charge id", c.name, ref))
}

// Refund creates a refund of a PaymentIntent ("pi_...") or a charge ("ch_..." or "py_...").
func (c *stripeConnector) Refund(ctx context.Context, req RefundRequest) (Result, error) {
	if err := c.checkTarget(req); err != nil {
		return Result{}, err
	}
	param, err := c.stripePayment(req.PaymentReference)
	if err != nil {
		return Result{}, err
	}
	form := url.Values{param: {req.PaymentReference}}
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

// stripeListPageSize is the largest page Stripe's list endpoints serve.
const stripeListPageSize = 100

// stripeMaxListPages bounds a look-up by Backflow id; a payment does not
// have that many refunds, so more pages mean a misbehaving answer.
const stripeMaxListPages = 50

// RefundStatus reads the refund by id or, without one, finds it among the
// refunds of the original payment by its metadata backflow_refund_id
// (Stripe cannot search by idempotency key, and keeps keys only 24 hours).
func (c *stripeConnector) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	if l.ProviderReference != "" {
		var out stripeRefund
		if err := c.api.doJSON(ctx, http.MethodGet, "/v1/refunds/"+pathEscape(l.ProviderReference), "", nil, &out); err != nil {
			return Result{}, fmt.Errorf("get %s refund: %w", c.name, notFound(err))
		}
		return out.result(), nil
	}
	out, err := c.findByRefundID(ctx, l.PaymentReference, l.RefundID)
	if err != nil {
		return Result{}, fmt.Errorf("find %s refund of %s by %s: %w", c.name, l.PaymentReference, stripeRefundIDKey, err)
	}
	return out.result(), nil
}

// findByRefundID pages through GET /v1/refunds?payment_intent= (or charge=)
// for the refund whose metadata carries refundID.
func (c *stripeConnector) findByRefundID(ctx context.Context, payment, refundID string) (stripeRefund, error) {
	if refundID == "" {
		return stripeRefund{}, errNoReference
	}
	param, err := c.stripePayment(payment)
	if err != nil {
		return stripeRefund{}, err
	}
	query := url.Values{param: {payment}, "limit": {strconv.Itoa(stripeListPageSize)}}
	for range stripeMaxListPages {
		var page struct {
			Data    []stripeRefund `json:"data"`
			HasMore bool           `json:"has_more"`
		}
		if err := c.api.doJSON(ctx, http.MethodGet, "/v1/refunds?"+query.Encode(), "", nil, &page); err != nil {
			return stripeRefund{}, notFound(err) // no such payment: no such refund either
		}
		for _, r := range page.Data {
			if r.Metadata[stripeRefundIDKey] == refundID {
				return r, nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return stripeRefund{}, ErrNotFound
		}
		query.Set("starting_after", page.Data[len(page.Data)-1].ID)
	}
	return stripeRefund{}, Retryable("too_many_pages", fmt.Sprintf("more than %d pages of refunds", stripeMaxListPages), nil)
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
