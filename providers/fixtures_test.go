package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/internal/fixture"
	"github.com/backflow/backflow/refund"
)

// exchange is one answer fixture a connector must parse and, unless
// sandboxOnly, the request fixture of the same name it must send exactly.
type exchange struct {
	name string
	call connectorCall
	// config changes the connector's configuration (e.g. a wrong password).
	config func(*providers.Config)
	// sandboxOnly: the request fixture is one the connector never sends (a
	// string amount); only the sandbox is checked against it.
	sandboxOnly bool
	want        providers.Result
	wantErr     *providers.Error // Kind, Code, HTTPStatus and RetryAfter are compared
	sentinel    error            // the error must also match it (ErrNotFound)
}

// Fixture values shared by the exchanges of each provider.
const (
	cardpayTransaction = "5b1f2c0e-8d4a-4f3e-9c1a-2e7d6b0a9f31"
	cardpayRefundID    = "0193b1e0-9c41-7d2a-8e5f-3a6b7c8d9e0f"
	paydeskPayment     = "tr_7Rq2NcQeWx"
	paydeskReference   = paydeskPayment + "/re_4qqhO89gsT"
	orchestraTx        = "fe26475d-ec3e-4884-9553-f7356683f7f9"
	orchestraRefundID  = "8724fd24-5489-4a5d-90fd-0604df7d3b83"
	orchestraGiftCard  = "c23ea83f-1b1c-4584-a0e8-78ef8c041949"
	momoPayoutID       = "mp_2xK9aLq0ZrT4Wc"
	bankPayoutID       = "bp_8dN3kQ1vYs0PzL"
	stripeRefundID     = "re_1Nispe2eZvKYlo2Cd31jOCgZ"
	stripePaymentID    = "pi_3MtwBwLkdIwHu7ix28a3tqPa"
	stripeChargeID     = "ch_3MtwBwLkdIwHu7ix0snN0B15"
)

// fixtureKey is the idempotency key (and Backflow refund id) of request n of
// a provider's fixtures; group tells the providers apart.
func fixtureKey(group string, n int) string {
	return fmt.Sprintf("0193b1e0-7a00-7c00-%s-%012d", group, n)
}

// connectorCall is what an exchange asks of the connector.
type connectorCall = func(context.Context, providers.Connector) (providers.Result, error)

func refundCallOf(req providers.RefundRequest) connectorCall {
	return func(ctx context.Context, c providers.Connector) (providers.Result, error) { return c.Refund(ctx, req) }
}

// refunds builds the refund calls of one provider's fixtures from template:
// request n has key(n) as idempotency key and refund id, and the amount.
func refunds(key func(int) string, template providers.RefundRequest) func(n int, amount int64, mods ...func(*providers.RefundRequest)) connectorCall {
	return func(n int, amount int64, mods ...func(*providers.RefundRequest)) connectorCall {
		r := template
		r.IdempotencyKey, r.RefundID, r.Amount = key(n), key(n), amount
		for _, m := range mods {
			m(&r)
		}
		return refundCallOf(r)
	}
}

// inCurrency sets the refund's currency.
func inCurrency(c string) func(*providers.RefundRequest) {
	return func(r *providers.RefundRequest) { r.Currency = c }
}

func refundStatusCall(l providers.Lookup) connectorCall {
	return func(ctx context.Context, c providers.Connector) (providers.Result, error) {
		return c.RefundStatus(ctx, l)
	}
}

func payoutCallOf(req providers.PayoutRequest) connectorCall {
	return func(ctx context.Context, c providers.Connector) (providers.Result, error) { return c.Payout(ctx, req) }
}

func payoutStatusCall(l providers.Lookup) connectorCall {
	return func(ctx context.Context, c providers.Connector) (providers.Result, error) {
		return c.PayoutStatus(ctx, l)
	}
}

func ok(status providers.Status, ref string) providers.Result {
	return providers.Result{Status: status, ProviderReference: ref}
}

func failed(status providers.Status, ref, code, msg string) providers.Result {
	return providers.Result{Status: status, ProviderReference: ref, FailureCode: code, FailureMessage: msg}
}

func errOf(kind providers.ErrorKind, code string, status int) *providers.Error {
	return &providers.Error{Kind: kind, Code: code, HTTPStatus: status}
}

func cardpayExchanges() []exchange {
	key := func(n int) string { return fixtureKey("a001", n) }
	refund := refunds(key, providers.RefundRequest{
		PaymentReference: cardpayTransaction, Currency: "EUR",
		Reason: "Customer requested", ReasonCode: "REQUESTED_BY_CUSTOMER", Description: "Partial refund for item X",
	})
	byRef := refundStatusCall(providers.Lookup{ProviderReference: cardpayRefundID, RefundID: key(2)})
	return []exchange{
		{name: "refund_full", call: refund(1, 10000, func(r *providers.RefundRequest) { r.Description = "Full refund of order 1042" }),
			want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "refund_partial", call: refund(2, 2550), want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "refund_jpy", call: refund(3, 1234, inCurrency("jpy")), want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "refund_kwd", call: refund(4, 1230, inCurrency("KWD")), want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "refund_processing", call: refund(5, 1004), want: ok(providers.StatusProcessing, cardpayRefundID)},
		{name: "refund_declined", call: refund(6, 1001), wantErr: errOf(providers.KindDeclined, "refund_declined", 402)},
		{name: "refund_transient", call: refund(7, 1002), wantErr: errOf(providers.KindRetryable, "service_unavailable", 503)},
		{name: "refund_rate_limited", call: refund(8, 1007),
			wantErr: &providers.Error{Kind: providers.KindRetryable, Code: "rate_limited", HTTPStatus: 429, RetryAfter: time.Second}},
		{name: "refund_transaction_not_found", call: refund(9, 1000, func(r *providers.RefundRequest) { r.PaymentReference = "missing-" + cardpayTransaction }),
			wantErr: errOf(providers.KindInvalid, "transaction_not_found", 404)},
		{name: "refund_unauthorized", call: refund(10, 1000), config: func(c *providers.Config) { c.Password = "wrong-password" },
			wantErr: errOf(providers.KindAuth, "unauthorized", 401)},
		{name: "refund_amount_as_string", sandboxOnly: true, call: refund(11, 1000), wantErr: errOf(providers.KindInvalid, "validation_error", 422)},
		{name: "refund_three_decimals", sandboxOnly: true, call: refund(12, 1230, inCurrency("KWD")), wantErr: errOf(providers.KindInvalid, "validation_error", 422)},
		{name: "status_by_key", call: refundStatusCall(providers.Lookup{RefundID: key(2), PaymentReference: cardpayTransaction}),
			want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "status_original_locked", call: byRef, want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "status_original_void", call: byRef, want: ok(providers.StatusSucceeded, cardpayRefundID)},
		{name: "status_failed", call: byRef,
			want: failed(providers.StatusFailed, cardpayRefundID, "provider.failed", "the provider reports the refund failed")},
		{name: "status_reversed", call: byRef,
			want: failed(providers.StatusReversed, cardpayRefundID, "provider.reversed", "the provider reports the refund reversed")},
		{name: "status_not_found", call: byRef, wantErr: errOf(providers.KindRetryable, "not_found", 404), sentinel: providers.ErrNotFound},
	}
}

func paydeskExchanges() []exchange {
	key := func(n int) string { return fixtureKey("b001", n) }
	refund := refunds(key, providers.RefundRequest{
		PaymentReference: paydeskPayment, Currency: "EUR",
		Reason: "the customer sent it back", ReasonCode: "RETURN", Description: "Partial refund for item X",
	})
	byRef := refundStatusCall(providers.Lookup{ProviderReference: paydeskReference, RefundID: key(2)})
	return []exchange{
		{name: "refund_full", call: refund(1, 10000, func(r *providers.RefundRequest) {
			r.Description, r.Reason, r.ReasonCode, r.FullAmountOfOrder = "", "", "REQUESTED_BY_CUSTOMER", true
		}), want: ok(providers.StatusSucceeded, paydeskReference)},
		{name: "refund_partial", call: refund(2, 2550), want: ok(providers.StatusSucceeded, paydeskReference)},
		{name: "refund_line_items_metadata_reference", call: refund(3, 4000, func(r *providers.RefundRequest) {
			r.Description, r.Reference = "Two items returned", "order-1042-r1"
			r.Metadata = map[string]string{"order": "1042", "channel": "web"}
			r.LineItems = []providers.LineItem{{ID: "odl_1.8kR4", Quantity: 1, Amount: 1500}, {ID: "odl_1.9mT2", Quantity: 2, Amount: 1250}}
		}), want: ok(providers.StatusSucceeded, paydeskReference)},
		{name: "refund_processing", call: refund(4, 1004), want: ok(providers.StatusProcessing, paydeskReference)},
		{name: "refund_declined", call: refund(5, 1001),
			want: failed(providers.StatusDeclined, paydeskReference, "refund.declined", "the refund was declined")},
		{name: "refund_payment_not_found", call: refund(6, 10000, func(r *providers.RefundRequest) {
			r.PaymentReference, r.Description, r.Reason, r.ReasonCode = "missing_"+paydeskPayment, "", "", "REQUESTED_BY_CUSTOMER"
		}), wantErr: errOf(providers.KindInvalid, "payment.not-found", 404)},
		{name: "refund_amount_insufficient", call: refund(7, 10000, func(r *providers.RefundRequest) {
			r.PaymentReference, r.Description, r.Reason, r.ReasonCode = "refunded_"+paydeskPayment, "", "", "REQUESTED_BY_CUSTOMER"
		}), wantErr: errOf(providers.KindDeclined, "amount.insufficient", 403)},
		{name: "refund_unauthorized", call: refund(8, 10000, func(r *providers.RefundRequest) {
			r.Description, r.Reason, r.ReasonCode = "", "", "REQUESTED_BY_CUSTOMER"
		}), config: func(c *providers.Config) { c.APIKey = "test_wrong_key" }, wantErr: errOf(providers.KindAuth, "authentication.failed", 401)},
		{name: "refund_description_too_long", call: refund(9, 2550, func(r *providers.RefundRequest) { r.Description = strings.Repeat("x", 81) }),
			wantErr: errOf(providers.KindInvalid, "request.invalid", 422)},
		{name: "refund_reason_outside_enum", sandboxOnly: true, call: refund(10, 2550), wantErr: errOf(providers.KindInvalid, "request.invalid", 422)},
		{name: "refund_transient", call: refund(11, 1002), wantErr: errOf(providers.KindRetryable, "service.unavailable", 503)},
		{name: "status_by_key", call: refundStatusCall(providers.Lookup{RefundID: key(2), PaymentReference: paydeskPayment}),
			want: ok(providers.StatusSucceeded, paydeskReference)},
		{name: "status_failed", call: byRef, want: failed(providers.StatusFailed, paydeskReference, "refund.failed", "the refund could not be processed")},
		{name: "status_reversed", call: byRef, want: failed(providers.StatusReversed, paydeskReference, "refund.reversed", "the refund was reversed")},
		{name: "status_not_found", call: byRef, wantErr: errOf(providers.KindRetryable, "not_found", 404), sentinel: providers.ErrNotFound},
	}
}

func orchestraExchanges() []exchange {
	key := func(n int) string { return fixtureKey("c001", n) }
	refund := refunds(key, providers.RefundRequest{
		PaymentReference: orchestraTx, Currency: "USD",
		Reason: "customer request", ReasonCode: "REQUESTED_BY_CUSTOMER", Description: "Refund", Reference: "order-7",
		Metadata: map[string]string{"order": "7"}, TargetType: providers.TargetPaymentMethod,
	})
	byRef := refundStatusCall(providers.Lookup{ProviderReference: orchestraRefundID, RefundID: key(2)})
	voided := failed(providers.StatusCanceled, orchestraRefundID, "provider.voided", "the provider reports the refund voided")
	return []exchange{
		{name: "refund_full", call: refund(1, 15000, func(r *providers.RefundRequest) { r.FullAmountOfOrder, r.TargetType = true, "" }),
			want: ok(providers.StatusSucceeded, orchestraRefundID)},
		{name: "refund_partial", call: refund(2, 1299), want: ok(providers.StatusSucceeded, orchestraRefundID)},
		{name: "refund_gift_card", call: refund(3, 500, func(r *providers.RefundRequest) {
			r.TargetType, r.TargetID = "GIFT_CARD_REDEMPTION", orchestraGiftCard
		}), want: ok(providers.StatusSucceeded, orchestraRefundID)},
		{name: "refund_processing", call: refund(4, 1004), want: ok(providers.StatusProcessing, orchestraRefundID)},
		{name: "refund_declined", call: refund(5, 1001),
			want: failed(providers.StatusDeclined, orchestraRefundID, "provider.declined", "the provider reports the refund declined")},
		{name: "refund_not_captured", call: refund(6, 1000, func(r *providers.RefundRequest) { r.PaymentReference = "authorized_" + orchestraTx }),
			wantErr: errOf(providers.KindInvalid, "bad_request", 400)},
		{name: "refund_forbidden", call: refund(7, 1000), config: func(c *providers.Config) { c.APIKey = providers.SandboxOrchestraReadOnlyToken },
			wantErr: errOf(providers.KindAuth, "forbidden", 403)},
		{name: "refund_unauthorized", call: refund(8, 1000), config: func(c *providers.Config) { c.APIKey = "not_a_token" },
			wantErr: errOf(providers.KindAuth, "unauthorized", 401)},
		{name: "refund_gift_card_without_target_id", call: refund(9, 500, func(r *providers.RefundRequest) { r.TargetType = "GIFT_CARD_REDEMPTION" }),
			wantErr: errOf(providers.KindInvalid, "bad_request", 400)},
		{name: "status_by_key", call: refundStatusCall(providers.Lookup{RefundID: key(2), PaymentReference: orchestraTx}),
			want: ok(providers.StatusSucceeded, orchestraRefundID)},
		{name: "status_failed", call: byRef,
			want: failed(providers.StatusFailed, orchestraRefundID, "provider.failed", "the provider reports the refund failed")},
		{name: "status_voided", call: byRef, want: voided},
		{name: "status_reversed", call: byRef,
			want: failed(providers.StatusReversed, orchestraRefundID, "provider.reversed", "the provider reports the refund reversed")},
		{name: "status_not_found", call: byRef, wantErr: errOf(providers.KindRetryable, "not_found", 404), sentinel: providers.ErrNotFound},
	}
}

func momoExchanges() []exchange {
	key := func(n int) string { return fixtureKey("d001", n) }
	payout := func(n int, amount int64) connectorCall {
		return payoutCallOf(providers.PayoutRequest{
			IdempotencyKey: key(n), RefundID: key(n), PaymentReference: "momo_tx_1", Amount: amount, Currency: "ugx",
			Description: "Refund for order 42",
			Destination: refund.PayoutDestination{Type: "mobile_money", MobileNumber: "+256 772 123456", Network: "MTN"},
		})
	}
	byRef := payoutStatusCall(providers.Lookup{ProviderReference: momoPayoutID, RefundID: key(1)})
	return []exchange{
		{name: "payout", call: payout(1, 50000), want: ok(providers.StatusSucceeded, momoPayoutID)},
		{name: "payout_processing", call: payout(2, 50004), want: ok(providers.StatusProcessing, momoPayoutID)},
		{name: "status_by_key", call: payoutStatusCall(providers.Lookup{RefundID: key(1)}), want: ok(providers.StatusSucceeded, momoPayoutID)},
		{name: "status_failed", call: byRef,
			want: failed(providers.StatusFailed, momoPayoutID, "INTERNAL_PROCESSING_ERROR", "the network could not complete the payout")},
		{name: "status_reversed", call: byRef, want: failed(providers.StatusReversed, momoPayoutID, "PAYOUT_REVERSED", "the network reversed the payout")},
	}
}

func banktransferExchanges() []exchange {
	key := func(n int) string { return fixtureKey("e001", n) }
	payout := func(n int, amount int64, currency string, dest refund.PayoutDestination) connectorCall {
		return payoutCallOf(providers.PayoutRequest{
			IdempotencyKey: key(n), RefundID: key(n), PaymentReference: "bank_tx_1", Amount: amount, Currency: currency,
			Description: "Refund for order 42", Destination: dest,
		})
	}
	iban := refund.PayoutDestination{Type: "bank_account", AccountHolder: "Ada Lovelace", IBAN: "de89 3704 0044 0532 0130 00", Country: "de"}
	account := refund.PayoutDestination{Type: "bank_account", AccountHolder: "Ada Lovelace", AccountNumber: "0123456789", BankCode: "058", Country: "NG"}
	byRef := payoutStatusCall(providers.Lookup{ProviderReference: bankPayoutID, RefundID: key(1)})
	return []exchange{
		{name: "payout_iban", call: payout(1, 8000, "EUR", iban), want: ok(providers.StatusSucceeded, bankPayoutID)},
		{name: "payout_account_number", call: payout(2, 8000, "NGN", account), want: ok(providers.StatusSucceeded, bankPayoutID)},
		{name: "payout_processing", call: payout(3, 8004, "EUR", iban), want: ok(providers.StatusProcessing, bankPayoutID)},
		{name: "status_by_key", call: payoutStatusCall(providers.Lookup{RefundID: key(1)}), want: ok(providers.StatusSucceeded, bankPayoutID)},
		{name: "status_failed", call: byRef,
			want: failed(providers.StatusFailed, bankPayoutID, "beneficiary_bank_error", "the beneficiary bank could not credit the account")},
		{name: "status_returned", call: byRef,
			want: failed(providers.StatusReversed, bankPayoutID, "payout_returned", "the beneficiary bank returned the payout")},
	}
}

func stripeExchanges() []exchange {
	const key = "0193b1e0-7a00-7c00-f001-000000000001"
	refund := providers.RefundRequest{
		IdempotencyKey: key, RefundID: key, PaymentReference: stripePaymentID, Amount: 1500, Currency: "USD",
		ReasonCode: "DUPLICATE", Metadata: map[string]string{"order": "1042"},
	}
	byRef := refundStatusCall(providers.Lookup{ProviderReference: stripeRefundID, RefundID: key, PaymentReference: stripePaymentID})
	return []exchange{
		{name: "refund_payment_intent", call: refundCallOf(refund), want: ok(providers.StatusSucceeded, stripeRefundID)},
		{name: "refund_charge", call: refundCallOf(modified(refund, func(r *providers.RefundRequest) {
			r.PaymentReference, r.ReasonCode, r.Metadata = stripeChargeID, "RETURN", nil
		})), want: ok(providers.StatusProcessing, stripeRefundID)},
		{name: "refund_card_error", call: refundCallOf(refund), wantErr: errOf(providers.KindDeclined, "expired_card", 402)},
		{name: "refund_already_refunded", call: refundCallOf(refund), wantErr: errOf(providers.KindDeclined, "charge_already_refunded", 400)},
		{name: "status_by_refund_id", call: refundStatusCall(providers.Lookup{RefundID: key, PaymentReference: stripePaymentID}),
			want: ok(providers.StatusSucceeded, stripeRefundID)},
		{name: "status_by_reference", call: byRef,
			want: failed(providers.StatusFailed, stripeRefundID, "expired_or_canceled_card", "the provider reports the refund failed")},
		{name: "status_canceled", call: byRef,
			want: failed(providers.StatusFailed, stripeRefundID, "provider.canceled", "the provider reports the refund canceled")},
		{name: "status_not_found", call: byRef, wantErr: errOf(providers.KindRetryable, "not_found", 404), sentinel: providers.ErrNotFound},
	}
}

// fixtureProviders are the providers with fixtures and their exchanges.
var fixtureProviders = map[string]func() []exchange{
	"cardpay":      cardpayExchanges,
	"paydesk":      paydeskExchanges,
	"orchestra":    orchestraExchanges,
	"momo":         momoExchanges,
	"banktransfer": banktransferExchanges,
	"stripe":       stripeExchanges,
}

// recorded is the request a connector sent.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// TestConnectorFixtures runs every exchange against a server that answers
// with the fixture: the connector must send the request fixture byte for
// byte (canonical JSON) and read the answer as expected.
func TestConnectorFixtures(t *testing.T) {
	t.Parallel()
	for provider, exchanges := range fixtureProviders {
		set := fixture.Open("testdata", provider)
		for _, ex := range exchanges() {
			t.Run(provider+"/"+ex.name, func(t *testing.T) {
				t.Parallel()
				answer, err := set.Response(ex.name)
				if err != nil {
					t.Fatal(err)
				}
				sent := make(chan recorded, 1)
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					select {
					case sent <- recorded{r.Method, r.URL.RequestURI(), r.Header.Clone(), body}:
					default:
						t.Errorf("a second request: %s %s", r.Method, r.URL)
					}
					for k, v := range answer.Headers {
						w.Header().Set(k, v)
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(answer.Status)
					w.Write(answer.Body)
				}))
				defer srv.Close()
				conn := fixtureConnector(t, provider, srv.URL, ex.config)

				res, err := ex.call(context.Background(), conn)
				checkOutcome(t, ex, res, err)
				if ex.sandboxOnly {
					return
				}
				want, err := set.Request(ex.name)
				if errors.Is(err, os.ErrNotExist) {
					return // an answer-only fixture
				}
				if err != nil {
					t.Fatal(err)
				}
				select {
				case got := <-sent:
					checkRequest(t, want, got)
				default:
					t.Fatal("the connector sent no request")
				}
			})
		}
	}
}

// TestFixturesAreCovered keeps fixtures and exchanges in step: every fixture
// file is exercised by an exchange, and every exchange has its answer.
func TestFixturesAreCovered(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		provider := filepath.Base(filepath.Dir(f))
		name, _, _ := strings.Cut(filepath.Base(f), ".")
		exchanges, ok := fixtureProviders[provider]
		if !ok || !slices.ContainsFunc(exchanges(), func(ex exchange) bool { return ex.name == name }) {
			t.Errorf("fixture %s is exercised by no exchange", f)
		}
	}
}

func fixtureConnector(t *testing.T, provider, baseURL string, mod func(*providers.Config)) providers.Connector {
	t.Helper()
	cfg := providers.Config{Name: provider, Type: providers.TypeStripe, BaseURL: baseURL, APIKey: "sk_test_backflow", CallbackSecret: "whsec_test"}
	for _, c := range providers.SandboxConfigs(baseURL) {
		if c.Name == provider {
			cfg = c
		}
	}
	if mod != nil {
		mod(&cfg)
	}
	reg, err := providers.NewRegistry([]providers.Config{cfg}, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	c, _ := reg.Get(provider)
	return c
}

func checkOutcome(t *testing.T, ex exchange, res providers.Result, err error) {
	t.Helper()
	if ex.wantErr == nil {
		if err != nil || res != ex.want {
			t.Fatalf("result %+v, %v; want %+v", res, err, ex.want)
		}
		return
	}
	pe := providerError(t, err)
	if pe.Kind != ex.wantErr.Kind || pe.Code != ex.wantErr.Code || pe.HTTPStatus != ex.wantErr.HTTPStatus || pe.RetryAfter != ex.wantErr.RetryAfter {
		t.Errorf("error %v (status %d, retry after %s); want %s %q status %d retry after %s",
			err, pe.HTTPStatus, pe.RetryAfter, ex.wantErr.Kind, ex.wantErr.Code, ex.wantErr.HTTPStatus, ex.wantErr.RetryAfter)
	}
	if ex.sentinel != nil && !errors.Is(err, ex.sentinel) {
		t.Errorf("error %v does not match %v", err, ex.sentinel)
	}
}

func checkRequest(t *testing.T, want fixture.Request, got recorded) {
	t.Helper()
	wantPath, err := fixture.CanonicalPath(want.Path)
	if err != nil {
		t.Fatal(err)
	}
	gotPath, err := fixture.CanonicalPath(got.path)
	if err != nil {
		t.Fatal(err)
	}
	if got.method != want.Method || gotPath != wantPath {
		t.Errorf("request %s %s, want %s %s", got.method, gotPath, want.Method, wantPath)
	}
	for _, h := range fixture.ComparedHeaders {
		if g, w := got.header.Get(h), want.Headers[h]; g != w {
			t.Errorf("header %s = %q, want %q", h, g, w)
		}
	}
	wantBody, err := want.CanonicalBody()
	if err != nil {
		t.Fatal(err)
	}
	var gotBody string
	switch {
	case want.Form != nil:
		gotBody, err = fixture.CanonicalForm(string(got.body))
	case len(got.body) > 0:
		gotBody, err = fixture.Canonical(got.body)
	}
	if err != nil {
		t.Fatalf("request body %q: %v", got.body, err)
	}
	if gotBody != wantBody {
		t.Errorf("request body\n got %s\nwant %s", gotBody, wantBody)
	}
}
