package providers_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// TestProviderIdempotency sends one create many times at once: one object at
// the provider, one reference for every caller; the key reused for another
// amount is refused.
func TestProviderIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, f := range flows {
		t.Run(f.provider, func(t *testing.T) {
			t.Parallel()
			c := e.connector(t, f.provider)
			ctx := context.Background()
			key := f.provider + "-idem"
			const callers = 8
			refs := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					res, err := f.submit(ctx, c, key, 2500)
					if err != nil {
						t.Errorf("caller %d: %v", i, err)
					}
					refs[i] = res.ProviderReference
				})
			}
			wg.Wait()
			for i, ref := range refs {
				if ref == "" || ref != refs[0] {
					t.Fatalf("caller %d got reference %q, caller 0 got %q", i, ref, refs[0])
				}
			}
			wantCounts(t, e.sandbox, key, 1, callers)

			_, err := f.submit(ctx, c, key, 2600)
			// A reused key is a rejection (422) or a conflict (409): never a success.
			if pe := providerError(t, err); pe.Kind != providers.KindInvalid && pe.Kind != providers.KindUnknown {
				t.Errorf("key reused for another amount: %v, want invalid or unknown", err)
			}
			wantCounts(t, e.sandbox, key, 1, callers+1)
		})
	}
}

// TestErrorMapping checks how provider refusals and transport failures are classified.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := providers.RefundRequest{IdempotencyKey: "k", RefundID: "k", PaymentReference: "pay_1", Amount: 1000, Currency: "EUR"}
	with := func(mod func(*providers.RefundRequest)) providers.RefundRequest {
		r := base
		mod(&r)
		return r
	}
	withConfig := func(name string, mod func(*providers.Config)) providers.Connector {
		for _, cfg := range providers.SandboxConfigs(e.url) {
			if cfg.Name == name {
				mod(&cfg)
				reg, err := providers.NewRegistry([]providers.Config{cfg}, e.client)
				if err != nil {
					t.Fatalf("NewRegistry() = %v", err)
				}
				c, _ := reg.Get(name)
				return c
			}
		}
		t.Fatalf("no sandbox config %q", name)
		return nil
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		kind     providers.ErrorKind
		code     string
		status   int
		sentinel error
	}{
		{name: "paydesk payment.not-found", kind: providers.KindInvalid, code: "payment.not-found", status: 404,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.PaymentReference = "missing_pay" }))},
		{name: "paydesk amount.insufficient", kind: providers.KindDeclined, code: "amount.insufficient", status: 403,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.PaymentReference = "refunded_pay" }))},
		{name: "paydesk description too long", kind: providers.KindInvalid, code: "request.invalid", status: 422,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.Description = strings.Repeat("x", 81) }))},
		{name: "paydesk wrong API key", kind: providers.KindAuth, code: "authentication.failed", status: 401,
			call: refundCall(withConfig("paydesk", func(c *providers.Config) { c.APIKey = "test_wrong" }), base)},
		{name: "orchestra token without transactions.write", kind: providers.KindAuth, code: "forbidden", status: 403,
			call: refundCall(withConfig("orchestra", func(c *providers.Config) { c.APIKey = providers.SandboxOrchestraReadOnlyToken }), base)},
		{name: "orchestra unknown token", kind: providers.KindAuth, code: "unauthorized", status: 401,
			call: refundCall(withConfig("orchestra", func(c *providers.Config) { c.APIKey = "nope" }), base)},
		{name: "orchestra not captured", kind: providers.KindInvalid, code: "bad_request", status: 400,
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.PaymentReference = "authorized_tx" }))},
		{name: "orchestra gift card without target id", kind: providers.KindInvalid, code: "bad_request", status: 400,
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.TargetType = "GIFT_CARD_REDEMPTION" }))},
		{name: "orchestra unknown target type", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.TargetType = "WALLET" }))},
		{name: "cardpay gift-card target", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.TargetType, r.TargetID = "GIFT_CARD_REDEMPTION", "gc_1" }))},
		{name: "paydesk gift-card target", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.TargetType, r.TargetID = "GIFT_CARD_REDEMPTION", "gc_1" }))},
		{name: "cardpay wrong password", kind: providers.KindAuth, code: "unauthorized", status: 401,
			call: refundCall(withConfig("cardpay", func(c *providers.Config) { c.Password = "wrong" }), base)},
		{name: "cardpay transaction not found", kind: providers.KindInvalid, code: "transaction_not_found", status: 404,
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.PaymentReference = "missing_tx" }))},
		{name: "cardpay zero amount", kind: providers.KindInvalid, code: "validation_error", status: 422,
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.Currency = "JPY"; r.Amount = 0 }))},
		{name: "cardpay 1.234 KWD is refused before sending", kind: providers.KindInvalid, code: "amount_precision",
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.Currency = "KWD"; r.Amount = 1234 }))},
		{name: "momo without a mobile number", kind: providers.KindInvalid, code: "bad_destination",
			call: payoutCall(e.connector(t, "momo"), refund.PayoutDestination{Type: "mobile_money"})},
		{name: "bank invalid IBAN", kind: providers.KindInvalid, code: "validation_error", status: 422,
			call: payoutCall(e.connector(t, "banktransfer"), refund.PayoutDestination{AccountHolder: "A", IBAN: "DE00 3704 0044 0532 0130 00", Country: "DE"})},
		{name: "refund on a payout-only provider", kind: providers.KindInvalid, code: "unsupported", sentinel: providers.ErrUnsupported,
			call: refundCall(e.connector(t, "momo"), base)},
		{name: "payout on a refund-only provider", kind: providers.KindInvalid, code: "unsupported", sentinel: providers.ErrUnsupported,
			call: payoutCall(e.connector(t, "cardpay"), refund.PayoutDestination{MobileNumber: "256772123456"})},
		{name: "status of an unknown reference", kind: providers.KindRetryable, code: "not_found", status: 404, sentinel: providers.ErrNotFound,
			call: func(ctx context.Context) error {
				_, err := e.connector(t, "orchestra").RefundStatus(ctx, providers.Lookup{ProviderReference: "00000000-0000-0000-0000-000000000000"})
				return err
			}},
		{name: "status of an unknown key", kind: providers.KindRetryable, code: "not_found", sentinel: providers.ErrNotFound,
			call: func(ctx context.Context) error {
				_, err := e.connector(t, "banktransfer").PayoutStatus(ctx, providers.Lookup{RefundID: "never-sent"})
				return err
			}},
		{name: "connection refused", kind: providers.KindRetryable, code: "network",
			call: refundCall(withConfig("cardpay", func(c *providers.Config) { c.BaseURL = closed.URL }), base)},
		{name: "context canceled", kind: providers.KindRetryable, code: "network", sentinel: context.Canceled,
			call: func(context.Context) error {
				_, err := e.connector(t, "paydesk").Refund(canceled, base)
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(context.Background())
			pe := providerError(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.HTTPStatus != tt.status {
				t.Errorf("error %v: kind %s code %q status %d; want %s %q %d", err, pe.Kind, pe.Code, pe.HTTPStatus, tt.kind, tt.code, tt.status)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not match %v", err, tt.sentinel)
			}
		})
	}
}

func refundCall(c providers.Connector, req providers.RefundRequest) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Refund(ctx, req)
		return err
	}
}

func payoutCall(c providers.Connector, dest refund.PayoutDestination) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Payout(ctx, providers.PayoutRequest{IdempotencyKey: "p-" + dest.IBAN, RefundID: "r", Amount: 1000, Currency: "EUR", Destination: dest})
		return err
	}
}
