package providers

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// base carries what every connector has: a name, capabilities, the HTTP
// plumbing and the callback secret.
type base struct {
	name   string
	caps   Capabilities
	api    *httpAPI
	secret string
}

// Name returns the configured provider name.
func (b *base) Name() string { return b.name }

// Capabilities returns what the provider supports.
func (b *base) Capabilities() Capabilities { return b.caps }

// Refund targets (RefundRequest.TargetType).
const (
	TargetPaymentMethod      = "PAYMENT_METHOD"
	TargetGiftCardRedemption = "GIFT_CARD_REDEMPTION"
)

// checkTarget refuses, before anything is sent, a refund aimed at a gift
// card by a provider without the capability: sent anyway, it would go back
// to the payment method instead.
func (b *base) checkTarget(req RefundRequest) error {
	switch {
	case req.TargetType == "" || req.TargetType == TargetPaymentMethod:
		return nil
	case req.TargetType == TargetGiftCardRedemption && b.caps.GiftCards:
		return nil
	}
	return Invalid("target_unsupported", fmt.Sprintf("%s cannot refund to target type %q", b.name, req.TargetType))
}

// noRefunds is embedded by payout-only connectors.
type noRefunds struct{}

// Refund is not offered by payout-only providers.
func (noRefunds) Refund(context.Context, RefundRequest) (Result, error) {
	return Result{}, ErrUnsupported
}

// RefundStatus is not offered by payout-only providers.
func (noRefunds) RefundStatus(context.Context, Lookup) (Result, error) {
	return Result{}, ErrUnsupported
}

// noPayouts is embedded by refund-only connectors.
type noPayouts struct{}

// Payout is not offered by refund-only providers.
func (noPayouts) Payout(context.Context, PayoutRequest) (Result, error) {
	return Result{}, ErrUnsupported
}

// PayoutStatus is not offered by refund-only providers.
func (noPayouts) PayoutStatus(context.Context, Lookup) (Result, error) {
	return Result{}, ErrUnsupported
}

// errNoReference is returned by look-ups given neither reference nor key.
var errNoReference = Invalid("missing_reference", "need a provider reference or an idempotency key")

// statusOf maps a provider status word through table; words the provider may
// add later count as still processing, never as an outcome.
func statusOf(table map[string]Status, word string) Status {
	if s, ok := table[strings.ToLower(word)]; ok {
		return s
	}
	return StatusProcessing
}

// statusResult is the Result for the provider object ref whose status word
// maps through table. A failure keeps the provider's own code and message
// when it gives them; otherwise the word names it (provider.voided).
func statusResult(table map[string]Status, word, ref, code, msg string) Result {
	res := Result{Status: statusOf(table, word), ProviderReference: ref}
	switch res.Status {
	case StatusDeclined, StatusFailed, StatusCanceled, StatusReversed:
		word = strings.ToLower(word)
		res.FailureCode = cmp.Or(code, "provider."+word)
		res.FailureMessage = cmp.Or(msg, "the provider reports the refund "+word)
	}
	return res
}

// parseSandboxCallback verifies a sandbox callback and decodes its
// {"id","type","createdAt","data"} envelope.
func parseSandboxCallback[T any](header http.Header, body []byte, secret string) (T, error) {
	var env struct {
		Data *T `json:"data"`
	}
	if err := verifySandboxCallback(header, body, secret); err != nil {
		return *new(T), err
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return *new(T), fmt.Errorf("decode callback: %w", err)
	}
	if env.Data == nil {
		return *new(T), fmt.Errorf("decode callback: %w", ErrIgnoredCallback)
	}
	return *env.Data, nil
}

// callbackEvent builds the event of a decoded callback, which must name the
// provider-side object.
func callbackEvent(refundID string, res Result) (CallbackEvent, error) {
	if res.ProviderReference == "" {
		return CallbackEvent{}, fmt.Errorf("decode callback: %w", ErrIgnoredCallback)
	}
	return CallbackEvent{RefundID: refundID, Result: res}, nil
}

// reasonText is the free-text reason for providers that require one.
func reasonText(req RefundRequest) string {
	switch {
	case req.Reason != "":
		return req.Reason
	case req.ReasonCode != "":
		return strings.ToLower(strings.ReplaceAll(req.ReasonCode, "_", " "))
	default:
		return "refund"
	}
}

// descriptionText is the description for providers that require one.
func descriptionText(req RefundRequest) string {
	switch {
	case req.Description != "":
		return req.Description
	case req.RefundID != "":
		return "Refund " + req.RefundID
	default:
		return "Refund"
	}
}
