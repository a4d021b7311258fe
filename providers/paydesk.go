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

// paydesk is the payment platform connector (source 002): a refund on a
// payment named in the body, with a flat amount, line items, metadata and a
// reference; errors payment.not-found and amount.insufficient.
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

// paydeskLineItem names one line item of the original payment (002: "a list
// of the IDs of the Line Items").
type paydeskLineItem struct {
	ID string `json:"id"`
}

// paydeskRefundRequest is 002's body: paymentId, currency and reason are
// required. Amount is in minor units (002 gives no unit; Backflow always sends
// it, so the provider never picks "the full unrefunded amount" itself).
type paydeskRefundRequest struct {
	PaymentID   string            `json:"paymentId"`
	Amount      int64             `json:"amount"`
	Currency    string            `json:"currency"`
	Description string            `json:"description,omitempty"`
	LineItems   []paydeskLineItem `json:"lineItems,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Reason      string            `json:"reason"`
	Reference   string            `json:"reference,omitempty"`
}

// paydeskRefund is the refund object (002 shows none; the sandbox's shape).
type paydeskRefund struct {
	ID             string `json:"id"`
	PaymentID      string `json:"paymentId"`
	Status         string `json:"status"`
	FailureCode    string `json:"failureCode"`
	FailureMessage string `json:"failureMessage"`
}

var paydeskStatuses = map[string]Status{
	"pending":    StatusProcessing,
	"processing": StatusProcessing,
	"refunded":   StatusSucceeded,
	"declined":   StatusDeclined,
	"failed":     StatusFailed,
	"reversed":   StatusReversed, // sandbox extension: 002 says refunds are final
}

// PaydeskReasons are the values of 002's reason enum (the document's list is
// empty; these are Backflow's reason codes, which the sandbox accepts).
var PaydeskReasons = []string{"requested_by_customer", "duplicate", "fraudulent", "return", "other"}

// paydeskReason maps a Backflow reason code to the enum; anything else is "other".
func paydeskReason(code string) string {
	code = strings.ToLower(code)
	for _, r := range PaydeskReasons {
		if r == code {
			return r
		}
	}
	return "other"
}

func (r paydeskRefund) result() Result {
	return statusResult(paydeskStatuses, r.Status, r.PaymentID+"/"+r.ID, r.FailureCode, r.FailureMessage)
}

// paydeskError decodes 002's {"status","code","description"}; 403
// amount.insufficient (the payment has too little left) is a decline, and
// 404 payment.not-found an invalid request.
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
	if err := c.checkTarget(req); err != nil {
		return Result{}, err
	}
	in := paydeskRefundRequest{
		PaymentID:   req.PaymentReference,
		Amount:      req.Amount,
		Currency:    strings.ToUpper(req.Currency),
		Description: req.Description,
		Metadata:    req.Metadata,
		Reason:      paydeskReason(req.ReasonCode),
		Reference:   req.Reference,
	}
	for _, li := range req.LineItems {
		in.LineItems = append(in.LineItems, paydeskLineItem{ID: li.ID})
	}
	var out paydeskRefund
	if err := c.api.doJSON(ctx, http.MethodPost, "/paydesk/v2/refunds", req.IdempotencyKey, in, &out); err != nil {
		return Result{}, fmt.Errorf("create %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// RefundStatus reads the refund by "paymentId/refundId" or, failing that, by
// idempotency key.
func (c *paydesk) RefundStatus(ctx context.Context, l Lookup) (Result, error) {
	var itemPath string
	if ref := l.ProviderReference; ref != "" {
		i := strings.LastIndex(ref, "/")
		if i <= 0 || i == len(ref)-1 {
			return Result{}, Invalid("bad_reference", fmt.Sprintf("%s reference %q is not paymentId/refundId", c.name, ref))
		}
		itemPath = "/paydesk/v2/payments/" + pathEscape(ref[:i]) + "/refunds/" + pathEscape(ref[i+1:])
	}
	out, err := find[paydeskRefund](ctx, c.api, l.ProviderReference, l.RefundID,
		itemPath, "/paydesk/v2/refunds?idempotencyKey="+url.QueryEscape(l.RefundID), "refunds")
	if err != nil {
		return Result{}, fmt.Errorf("get %s refund: %w", c.name, err)
	}
	return out.result(), nil
}

// ParseCallback verifies and decodes a refund.updated callback; the refund is
// named by its payment and id.
func (c *paydesk) ParseCallback(header http.Header, body []byte) (CallbackEvent, error) {
	r, err := parseSandboxCallback[paydeskRefund](header, body, c.secret)
	if err != nil {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, err)
	}
	if r.ID == "" || r.PaymentID == "" {
		return CallbackEvent{}, fmt.Errorf("parse %s callback: %w", c.name, ErrIgnoredCallback)
	}
	return callbackEvent("", r.result())
}
