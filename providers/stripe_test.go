package providers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
)

// stripeMock is the official stripe-mock server, started once for the
// package's tests and killed by TestMain.
var stripeMock struct {
	once sync.Once
	url  string
	cmd  *exec.Cmd
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cmd := stripeMock.cmd; cmd != nil {
		_ = cmd.Process.Kill() // it has no graceful shutdown to wait for
		_ = cmd.Wait()
	}
	os.Exit(code)
}

// stripeMockURL returns the base URL of a running stripe-mock, starting it on
// first use. A missing binary fails the test: the contract test is not optional.
func stripeMockURL(t *testing.T) string {
	t.Helper()
	stripeMock.once.Do(func() {
		stripeMock.url, stripeMock.cmd, stripeMock.err = testenv.StartStripeMock()
	})
	if stripeMock.err != nil {
		t.Fatalf("stripe-mock: %v", stripeMock.err)
	}
	return stripeMock.url
}

func stripeConnector(t *testing.T, baseURL, apiKey string) providers.Connector {
	t.Helper()
	reg, err := providers.NewRegistry([]providers.Config{{
		Name: "stripe", Type: providers.TypeStripe, BaseURL: baseURL, APIKey: apiKey, CallbackSecret: "whsec_test",
	}}, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	c, _ := reg.Get("stripe")
	return c
}

// TestStripeContract sends the connector's requests to stripe-mock, which
// validates them against Stripe's OpenAPI specification and answers 400 to
// anything Stripe would refuse.
func TestStripeContract(t *testing.T) {
	t.Parallel()
	base := stripeMockURL(t)
	ok := stripeConnector(t, base, "sk_test_backflow")
	ctx := context.Background()
	refund := providers.RefundRequest{
		IdempotencyKey: "contract-1", RefundID: "0190f1a2-7c3e-7b1a-9d1e-2f3a4b5c6d7e",
		PaymentReference: "pi_3MtwBwLkdIwHu7ix28a3tqPa", Amount: 1500, Currency: "USD",
		ReasonCode: "DUPLICATE", Metadata: map[string]string{"order": "42"},
	}

	t.Run("refund a PaymentIntent, then read it", func(t *testing.T) {
		t.Parallel()
		res, err := ok.Refund(ctx, refund)
		if err != nil {
			t.Fatalf("Refund() = %v", err)
		}
		if !strings.HasPrefix(res.ProviderReference, "re_") || !res.Status.Final() && res.Status != providers.StatusProcessing {
			t.Fatalf("Refund() = %+v, want a re_ reference and a known status", res)
		}
		got, err := ok.RefundStatus(ctx, providers.Lookup{ProviderReference: res.ProviderReference, RefundID: refund.RefundID})
		if err != nil || got.ProviderReference != res.ProviderReference {
			t.Fatalf("RefundStatus() = %+v, %v", got, err)
		}
	})

	tests := []struct {
		name   string
		conn   providers.Connector
		req    providers.RefundRequest
		kind   providers.ErrorKind // "" for success
		status int                 // of an error answer; 0 when refused before sending
	}{
		{name: "charge, reason requested_by_customer", conn: ok, req: modified(refund, func(r *providers.RefundRequest) {
			r.PaymentReference, r.ReasonCode, r.IdempotencyKey = "ch_3MtwBwLkdIwHu7ix0snN0B15", "REQUESTED_BY_CUSTOMER", "contract-2"
		})},
		{name: "reason without a Stripe equivalent is omitted", conn: ok, req: modified(refund, func(r *providers.RefundRequest) {
			r.ReasonCode, r.IdempotencyKey = "RETURN", "contract-3"
		})},
		{name: "fraudulent, no metadata", conn: ok, req: modified(refund, func(r *providers.RefundRequest) {
			r.ReasonCode, r.Metadata, r.RefundID, r.IdempotencyKey = "FRAUDULENT", nil, "", "contract-4"
		})},
		{name: "unknown parameter", conn: withExtraParam(t, base, "refund_everything", "true"), req: refund, kind: providers.KindInvalid, status: 400},
		{name: "reason outside Stripe's enum", conn: withExtraParam(t, base, "reason", "customer_changed_mind"), req: refund, kind: providers.KindInvalid, status: 400},
		{name: "not a secret key", conn: stripeConnector(t, base, "pk_not_secret"), req: refund, kind: providers.KindAuth, status: 401},
		{name: "not a Stripe payment id", conn: ok, req: modified(refund, func(r *providers.RefundRequest) {
			r.PaymentReference = "pay_4711"
		}), kind: providers.KindInvalid},
		{name: "gift-card target", conn: ok, req: modified(refund, func(r *providers.RefundRequest) {
			r.TargetType, r.TargetID = providers.TargetGiftCardRedemption, "gc_1"
		}), kind: providers.KindInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := tt.conn.Refund(ctx, tt.req)
			if tt.kind == "" {
				if err != nil || !strings.HasPrefix(res.ProviderReference, "re_") {
					t.Fatalf("Refund() = %+v, %v; want a refund", res, err)
				}
				return
			}
			if pe := providerError(t, err); pe.Kind != tt.kind || pe.HTTPStatus != tt.status {
				t.Fatalf("Refund() = %+v, %v; want a %s error with status %d", res, err, tt.kind, tt.status)
			}
		})
	}

	// stripe-mock validates the list request and answers its fixture list,
	// whose one refund carries no backflow_refund_id: not found.
	for _, payment := range []string{"pi_3MtwBwLkdIwHu7ix28a3tqPa", "ch_3MtwBwLkdIwHu7ix0snN0B15"} {
		t.Run("look-up by Backflow id among the refunds of "+payment, func(t *testing.T) {
			t.Parallel()
			_, err := ok.RefundStatus(ctx, providers.Lookup{RefundID: refund.RefundID, PaymentReference: payment})
			if !errors.Is(err, providers.ErrNotFound) {
				t.Fatalf("RefundStatus(no reference) = %v, want ErrNotFound", err)
			}
		})
	}
}

// TestStripeLookUpByRefundID pages through a payment's refunds, as Stripe
// lists them, for the one whose metadata names the Backflow refund.
func TestStripeLookUpByRefundID(t *testing.T) {
	t.Parallel()
	refund := func(id, refundID, status string) string {
		return `{"id":"` + id + `","object":"refund","status":"` + status + `","metadata":{"backflow_refund_id":"` + refundID + `"}}`
	}
	page := func(hasMore bool, refunds ...string) string {
		return fmt.Sprintf(`{"object":"list","url":"/v1/refunds","has_more":%t,"data":[%s]}`, hasMore, strings.Join(refunds, ","))
	}
	tests := []struct {
		name      string
		payment   string
		pages     map[string]string // starting_after → page
		want      providers.Result
		wantErr   error
		wantQuery []string // the queries sent, in order
	}{
		{name: "found on the second page", payment: "pi_1",
			pages: map[string]string{
				"":     page(true, refund("re_3", "rf-other", "succeeded"), refund("re_2", "rf-other", "failed")),
				"re_2": page(false, refund("re_1", "rf-1", "pending")),
			},
			want:      providers.Result{Status: providers.StatusProcessing, ProviderReference: "re_1"},
			wantQuery: []string{"limit=100&payment_intent=pi_1", "limit=100&payment_intent=pi_1&starting_after=re_2"}},
		{name: "a charge's refunds", payment: "ch_1",
			pages:     map[string]string{"": page(false, refund("re_1", "rf-1", "succeeded"))},
			want:      providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_1"},
			wantQuery: []string{"charge=ch_1&limit=100"}},
		{name: "none of them", payment: "pi_1",
			pages:     map[string]string{"": page(false, refund("re_3", "rf-other", "succeeded"))},
			wantErr:   providers.ErrNotFound,
			wantQuery: []string{"limit=100&payment_intent=pi_1"}},
		{name: "no refunds at all", payment: "py_1",
			pages:     map[string]string{"": page(false)},
			wantErr:   providers.ErrNotFound,
			wantQuery: []string{"charge=py_1&limit=100"}},
		{name: "not a Stripe payment", payment: "pay_4711", wantErr: &providers.Error{Kind: providers.KindInvalid, Code: "bad_payment_reference"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var queries []string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				queries = append(queries, r.URL.RawQuery)
				mu.Unlock()
				body, ok := tt.pages[r.URL.Query().Get("starting_after")]
				if r.Method != http.MethodGet || r.URL.Path != "/v1/refunds" || !ok {
					http.Error(w, `{"error":{"type":"invalid_request_error"}}`, http.StatusBadRequest)
					return
				}
				io.WriteString(w, body)
			}))
			defer srv.Close()
			c := stripeConnector(t, srv.URL, "sk_test_backflow")
			got, err := c.RefundStatus(context.Background(), providers.Lookup{RefundID: "rf-1", PaymentReference: tt.payment})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("RefundStatus() = %+v, %v; want %v", got, err, tt.wantErr)
				}
			} else if err != nil || got != tt.want {
				t.Fatalf("RefundStatus() = %+v, %v; want %+v", got, err, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if !slices.Equal(queries, tt.wantQuery) {
				t.Errorf("queries %q, want %q", queries, tt.wantQuery)
			}
		})
	}
}

func modified(r providers.RefundRequest, mod func(*providers.RefundRequest)) providers.RefundRequest {
	mod(&r)
	return r
}

func withExtraParam(t *testing.T, base, key, value string) providers.Connector {
	t.Helper()
	c := stripeConnector(t, base, "sk_test_backflow")
	providers.SetStripeExtraParam(c, key, value)
	return c
}

// TestStripeRequestAndErrors checks the exact request the connector sends and
// how Stripe's error answers are classified.
func TestStripeRequestAndErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		kind       providers.ErrorKind
		code       string
		retryAfter time.Duration
		result     providers.Status
	}{
		{name: "pending refund", status: 200, body: `{"id":"re_1","object":"refund","status":"pending"}`, result: providers.StatusProcessing},
		{name: "failed refund", status: 200, body: `{"id":"re_1","object":"refund","status":"failed","failure_reason":"lost_or_stolen_card"}`, result: providers.StatusFailed},
		{name: "api_error", status: 500, body: `{"error":{"type":"api_error","message":"boom"}}`, kind: providers.KindRetryable, code: "api_error"},
		{name: "rate limit", status: 429, header: map[string]string{"Retry-After": "2"},
			body: `{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow down"}}`, kind: providers.KindRetryable, code: "rate_limit", retryAfter: 2 * time.Second},
		{name: "concurrent use of the key", status: 409, body: `{"error":{"type":"idempotency_error","message":"in progress"}}`, kind: providers.KindUnknown, code: "idempotency_error"},
		{name: "Stripe-Should-Retry", status: 400, header: map[string]string{"Stripe-Should-Retry": "true"},
			body: `{"error":{"type":"invalid_request_error","code":"lock_timeout"}}`, kind: providers.KindRetryable, code: "lock_timeout"},
		{name: "card_error", status: 402, body: `{"error":{"type":"card_error","code":"expired_card"}}`, kind: providers.KindDeclined, code: "expired_card"},
		{name: "charge_already_refunded", status: 400, body: `{"error":{"type":"invalid_request_error","code":"charge_already_refunded"}}`, kind: providers.KindDeclined, code: "charge_already_refunded"},
		{name: "amount_too_large", status: 400, body: `{"error":{"type":"invalid_request_error","code":"amount_too_large"}}`, kind: providers.KindDeclined, code: "amount_too_large"},
		{name: "invalid_request_error", status: 400, body: `{"error":{"type":"invalid_request_error","code":"parameter_unknown"}}`, kind: providers.KindInvalid, code: "parameter_unknown"},
		{name: "idempotency_error", status: 400, body: `{"error":{"type":"idempotency_error","message":"different parameters"}}`, kind: providers.KindInvalid, code: "idempotency_error"},
		{name: "authentication", status: 401, body: `{"error":{"type":"invalid_request_error","message":"bad key"}}`, kind: providers.KindAuth, code: "invalid_request_error"},
		{name: "not JSON", status: 502, body: `<html>bad gateway</html>`, kind: providers.KindRetryable, code: "http_502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type request struct {
				method, path string
				header       http.Header
				form         url.Values
			}
			requests := make(chan request, 1)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				form, _ := url.ParseQuery(string(body))
				requests <- request{r.Method, r.URL.Path, r.Header.Clone(), form}
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := stripeConnector(t, srv.URL, "sk_test_backflow")
			res, err := c.Refund(context.Background(), providers.RefundRequest{
				IdempotencyKey: "key-1", RefundID: "rf-1", PaymentReference: "pi_1", Amount: 1234,
				ReasonCode: "DUPLICATE", Metadata: map[string]string{"order": "42"},
			})

			want := url.Values{
				"payment_intent": {"pi_1"}, "amount": {"1234"}, "reason": {"duplicate"},
				"metadata[order]": {"42"}, "metadata[backflow_refund_id]": {"rf-1"},
			}
			got := <-requests
			if got.method != http.MethodPost || got.path != "/v1/refunds" || got.form.Encode() != want.Encode() ||
				got.header.Get("Idempotency-Key") != "key-1" || got.header.Get("Authorization") != "Bearer sk_test_backflow" ||
				got.header.Get("Content-Type") != "application/x-www-form-urlencoded" {
				t.Errorf("request %s %s %v headers %v; want POST /v1/refunds %v", got.method, got.path, got.form, got.header, want)
			}
			if tt.kind == "" {
				if err != nil || res.Status != tt.result || res.ProviderReference != "re_1" {
					t.Fatalf("Refund() = %+v, %v; want %s", res, err, tt.result)
				}
				return
			}
			pe := providerError(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.RetryAfter != tt.retryAfter || pe.HTTPStatus != tt.status {
				t.Errorf("error %+v; want %s %q retry after %s", pe, tt.kind, tt.code, tt.retryAfter)
			}
		})
	}
}

// TestStripeWebhook parses signed refund events and rejects forged ones.
func TestStripeWebhook(t *testing.T) {
	t.Parallel()
	const secret = "whsec_test"
	c := stripeConnector(t, "http://stripe.invalid", "sk_test_backflow")
	event := func(typ, refund string) []byte {
		return []byte(`{"id":"evt_1","object":"event","type":"` + typ + `","data":{"object":` + refund + `}}`)
	}
	const succeeded = `{"id":"re_1","object":"refund","status":"succeeded","metadata":{"backflow_refund_id":"rf-1"}}`
	signed := func(secret string, at time.Time, body []byte) http.Header {
		h := http.Header{}
		h.Set(providers.StripeSignatureHeader, providers.SignCallback(secret, at, body))
		return h
	}
	now := time.Now()
	tests := []struct {
		name    string
		header  http.Header
		body    []byte
		want    providers.CallbackEvent
		wantErr error
	}{
		{name: "refund.updated succeeded", header: signed(secret, now, event("refund.updated", succeeded)), body: event("refund.updated", succeeded),
			want: providers.CallbackEvent{RefundID: "rf-1", Result: providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_1"}}},
		{name: "charge.refund.updated failed",
			header: signed(secret, now, event("charge.refund.updated", `{"id":"re_2","object":"refund","status":"failed","failure_reason":"expired_or_canceled_card","metadata":{"backflow_refund_id":"rf-2"}}`)),
			body:   event("charge.refund.updated", `{"id":"re_2","object":"refund","status":"failed","failure_reason":"expired_or_canceled_card","metadata":{"backflow_refund_id":"rf-2"}}`),
			want: providers.CallbackEvent{RefundID: "rf-2", Result: providers.Result{
				Status: providers.StatusFailed, ProviderReference: "re_2", FailureCode: "expired_or_canceled_card", FailureMessage: "the provider reports the refund failed"}}},
		{name: "canceled", header: signed(secret, now, event("refund.updated", `{"id":"re_3","object":"refund","status":"canceled","metadata":{}}`)),
			body: event("refund.updated", `{"id":"re_3","object":"refund","status":"canceled","metadata":{}}`),
			want: providers.CallbackEvent{Result: providers.Result{Status: providers.StatusFailed, ProviderReference: "re_3", FailureCode: "provider.canceled", FailureMessage: "the provider reports the refund canceled"}}},
		{name: "other event", header: signed(secret, now, event("charge.succeeded", `{"id":"ch_1","object":"charge"}`)),
			body: event("charge.succeeded", `{"id":"ch_1","object":"charge"}`), wantErr: providers.ErrIgnoredCallback},
		{name: "tampered", header: signed(secret, now, event("refund.updated", succeeded)),
			body: event("refund.updated", strings.Replace(succeeded, "rf-1", "rf-9", 1)), wantErr: providers.ErrInvalidSignature},
		{name: "wrong secret", header: signed("whsec_other", now, event("refund.updated", succeeded)),
			body: event("refund.updated", succeeded), wantErr: providers.ErrInvalidSignature},
		{name: "old timestamp", header: signed(secret, now.Add(-time.Hour), event("refund.updated", succeeded)),
			body: event("refund.updated", succeeded), wantErr: providers.ErrInvalidSignature},
		{name: "sandbox header is not Stripe's", header: http.Header{providers.SandboxSignatureHeader: {providers.SignCallback(secret, now, event("refund.updated", succeeded))}},
			body: event("refund.updated", succeeded), wantErr: providers.ErrInvalidSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := c.ParseCallback(tt.header, tt.body)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseCallback() = %+v, %v; want %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCallback() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
