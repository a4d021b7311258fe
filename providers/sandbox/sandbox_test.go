package sandbox_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/sandbox"
)

func newServer(t *testing.T) (*sandbox.Server, *httptest.Server) {
	t.Helper()
	sb := sandbox.New(sandbox.Options{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(sb.Close)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	return sb, srv
}

func basic(user, pass string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(user, pass) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// call sends one request and decodes the JSON answer.
func call(t *testing.T, srv *httptest.Server, method, path string, auth func(*http.Request), body, key string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()      // 12.00 stays 12.00
	_ = dec.Decode(&out) // some answers have no body
	return resp.StatusCode, out
}

// TestValidation pins the document rules the fixtures do not cover, and
// the status codes and error shapes of each sandbox API.
func TestValidation(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t)
	cardpay := basic(providers.SandboxCardpayUsername, providers.SandboxCardpayPassword)
	paydesk := bearer(providers.SandboxPaydeskAPIKey)
	orchestra := bearer(providers.SandboxOrchestraToken)
	readOnly := bearer(providers.SandboxOrchestraReadOnlyToken)
	momo := bearer(providers.SandboxMomoAPIKey)
	bank := bearer(providers.SandboxBankAPIKey)
	cardpayBody := func(amount, currency string) string {
		return `{"transactionId":"tx1","amount":` + amount + `,"currency":"` + currency + `","reason":"r","description":"d"}`
	}
	paydeskBody := func(extra string) string {
		return `{"paymentId":"pay_1","amount":1000,"currency":"EUR","reason":"other"` + extra + `}`
	}

	tests := []struct {
		name         string
		method, path string
		auth         func(*http.Request)
		body         string
		status       int
		want         map[string]any // top-level fields the answer must carry
		wantErr      map[string]any // fields of the nested "error" object
	}{
		{name: "cardpay 12.50 JPY", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay, body: cardpayBody("12.50", "JPY"),
			status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "cardpay 12.00 JPY", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay, body: cardpayBody("12.00", "JPY"),
			status: 200, want: map[string]any{"amount": json.Number("12.00"), "currency": "JPY"}},
		{name: "cardpay below 0.01", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay, body: cardpayBody("0.00", "EUR"),
			status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "cardpay exponent", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay, body: cardpayBody("1e3", "EUR"),
			status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "cardpay unknown field", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay, body: `{"transactionId":"t","bogus":1}`,
			status: 400, wantErr: map[string]any{"code": "invalid_request"}},
		{name: "cardpay without reason", method: "POST", path: "/cardpay/v1/refunds", auth: cardpay,
			body: `{"transactionId":"tx1","amount":1,"currency":"EUR","reason":"","description":"d"}`, status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "paydesk 21 metadata pairs", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: paydeskBody(`,"metadata":{` + metadataPairs(21) + `}`), status: 422, want: map[string]any{"code": "request.invalid"}},
		{name: "paydesk 20 metadata pairs", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: paydeskBody(`,"metadata":{` + metadataPairs(20) + `}`), status: 201, want: map[string]any{"status": "refunded"}},
		{name: "paydesk reference over 40", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: paydeskBody(`,"reference":"` + strings.Repeat("r", 41) + `"`), status: 422, want: map[string]any{"code": "request.invalid"}},
		{name: "paydesk empty description", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: paydeskBody(`,"description":""`), status: 422, want: map[string]any{"code": "request.invalid"}},
		{name: "paydesk without currency", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: `{"paymentId":"pay_1","amount":1000,"reason":"other"}`, status: 422, want: map[string]any{"code": "request.invalid"}},
		{name: "paydesk without paymentId", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: `{"amount":1000,"currency":"EUR","reason":"other"}`, status: 422, want: map[string]any{"code": "request.invalid"}},
		{name: "paydesk nested amount", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body:   `{"paymentId":"pay_1","amount":{"currency":"EUR","value":1000},"currency":"EUR","reason":"other"}`,
			status: 400, want: map[string]any{"code": "request.malformed"}},
		{name: "paydesk line item with quantity", method: "POST", path: "/paydesk/v2/refunds", auth: paydesk,
			body: paydeskBody(`,"lineItems":[{"id":"li_1","quantity":2}]`), status: 400, want: map[string]any{"code": "request.malformed"}},
		{name: "orchestra read-only token can read", method: "GET", path: "/orchestra/refunds?idempotency_key=none", auth: readOnly,
			status: 200, want: map[string]any{"items": []any{}}},
		{name: "orchestra amount above 99,999,999", method: "POST", path: "/orchestra/transactions/tx1/refunds", auth: orchestra,
			body: `{"amount":100000000}`, status: 400, want: map[string]any{"code": "bad_request"}},
		{name: "orchestra idempotency_key is not a field", method: "POST", path: "/orchestra/transactions/tx1/refunds", auth: orchestra,
			body: `{"amount":100,"idempotency_key":"k"}`, status: 400, want: map[string]any{"code": "bad_request"}},
		{name: "momo bad msisdn", method: "POST", path: "/momo/v1/payouts", auth: momo,
			body:   `{"amount":5000,"currency":"UGX","msisdn":"+256 772","reference":"rf1"}`,
			status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "bank payout without account", method: "POST", path: "/bank/v1/payouts", auth: bank,
			body:   `{"amount":5000,"currency":"EUR","accountHolder":"Ada","country":"DE","reference":"rf1"}`,
			status: 422, wantErr: map[string]any{"code": "validation_error"}},
		{name: "bank unknown payout", method: "GET", path: "/bank/v1/payouts/bp_nope", auth: bank,
			status: 404, wantErr: map[string]any{"code": "payout_not_found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, got := call(t, srv, tt.method, tt.path, tt.auth, tt.body, "")
			if status != tt.status {
				t.Fatalf("status %d, want %d; answer %v", status, tt.status, got)
			}
			for k, v := range tt.want {
				if g, _ := json.Marshal(got[k]); string(g) != mustJSON(v) {
					t.Errorf("%s = %s, want %s; answer %v", k, g, mustJSON(v), got)
				}
			}
			nested, _ := got["error"].(map[string]any)
			for k, v := range tt.wantErr {
				if nested[k] != v {
					t.Errorf("error.%s = %v, want %v; answer %v", k, nested[k], v, got)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func metadataPairs(n int) string {
	pairs := make([]string, n)
	for i := range pairs {
		pairs[i] = `"k` + strings.Repeat("x", i) + `":"v"`
	}
	return strings.Join(pairs, ",")
}

// TestNestedLookup checks that a paydesk refund is only found under its own payment.
func TestNestedLookup(t *testing.T) {
	t.Parallel()
	_, srv := newServer(t)
	auth := bearer(providers.SandboxPaydeskAPIKey)
	status, created := call(t, srv, "POST", "/paydesk/v2/refunds", auth, `{"paymentId":"pay_A","amount":700,"currency":"EUR","reason":"other"}`, "nested")
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, created)
	}
	id := created["id"].(string)
	if status, _ := call(t, srv, "GET", "/paydesk/v2/payments/pay_A/refunds/"+id, auth, "", ""); status != http.StatusOK {
		t.Errorf("GET under its payment: %d", status)
	}
	if status, got := call(t, srv, "GET", "/paydesk/v2/payments/pay_B/refunds/"+id, auth, "", ""); status != http.StatusNotFound || got["code"] != "refund.not-found" {
		t.Errorf("GET under another payment: %d %v", status, got)
	}
}

// TestWithoutIdempotencyKey checks that requests without a key are all new.
func TestWithoutIdempotencyKey(t *testing.T) {
	t.Parallel()
	sb, srv := newServer(t)
	auth := bearer(providers.SandboxMomoAPIKey)
	const body = `{"amount":5000,"currency":"UGX","msisdn":"256772123456","reference":"rf1"}`
	_, first := call(t, srv, "POST", "/momo/v1/payouts", auth, body, "")
	_, second := call(t, srv, "POST", "/momo/v1/payouts", auth, body, "")
	if first["id"] == second["id"] {
		t.Errorf("two key-less payouts share id %v", first["id"])
	}
	if s := sb.Stats(); s.Created != 2 || s.Replayed != 0 {
		t.Errorf("Stats() = %+v, want 2 created", s)
	}
}
