package server_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
)

// testAccessConformance calls the ops API's merchant and key operations
// and checks every answer against the document.
func testAccessConformance(t *testing.T, c *conformance) {
	var m ops.Merchant
	c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", headers: []string{"Idempotency-Key", uuid.NewString()},
		body: map[string]any{"name": "Conformance Shop", "approvalThreshold": 50000}, want: 201}).JSON(t, &m)
	c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: map[string]any{"name": "No Threshold"}, want: 201})
	var page ops.MerchantPage
	c.do(t, call{method: "GET", path: "/v1/ops/merchants?limit=1", auth: "ops", want: 200}).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" {
		t.Fatalf("first page = %+v", page)
	}
	c.do(t, call{method: "GET", path: "/v1/ops/merchants?limit=200&cursor=" + page.NextCursor, auth: "ops", want: 200})

	keys := "/v1/ops/merchants/" + m.MerchantID.String() + "/api-keys"
	idem := uuid.NewString()
	var k ops.APIKey
	c.do(t, call{method: "POST", path: keys, auth: "ops", headers: []string{"Idempotency-Key", idem}, body: map[string]any{"name": "backend"}, want: 201}).JSON(t, &k)
	if k.Key == "" {
		t.Fatalf("created key without its secret: %+v", k)
	}
	replay := c.do(t, call{method: "POST", path: keys, auth: "ops", headers: []string{"Idempotency-Key", idem}, body: map[string]any{"name": "backend"}, want: 201})
	if strings.Contains(string(replay.Body), k.Key) || replay.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s", replay.Body)
	}
	c.do(t, call{method: "POST", path: keys, auth: "ops", want: 201,
		body: map[string]any{"name": "platform", "scopes": []string{refund.ScopeTransactionsWrite, refund.ScopeRefundsRead}}})
	c.do(t, call{method: "GET", path: "/v1/refunds", auth: "bearer:" + k.Key, want: 200}) // lastUsedAt
	c.do(t, call{method: "GET", path: keys, auth: "ops", want: 200})
	c.do(t, call{method: "DELETE", path: "/v1/ops/api-keys/" + k.KeyID.String(), auth: "ops", want: 204})
	c.do(t, call{method: "GET", path: keys, auth: "ops", want: 200}) // revokedAt
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/refunds", auth: "bearer:" + k.Key, want: 401}), server.CodeUnauthorized)

	// Refusals.
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: map[string]any{"name": ""}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: map[string]any{"name": "x", "approvalThreshold": -5}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants", auth: "ops", body: map[string]any{"name": "x", "owner": "y"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, c.do(t, call{method: "POST", path: keys, auth: "ops", body: map[string]any{"name": "k", "scopes": []string{"ops"}}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/merchants/" + missing + "/api-keys", auth: "ops", body: map[string]any{"name": "k"}, want: 404}), refund.CodeMerchantNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/merchants/" + missing + "/api-keys", auth: "ops", want: 404}), refund.CodeMerchantNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/merchants/nope/api-keys", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, c.do(t, call{method: "DELETE", path: "/v1/ops/api-keys/" + missing, auth: "ops", want: 404}), refund.CodeAPIKeyNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/merchants?limit=0", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/merchants", want: 403}), server.CodeForbidden)
	problemOf(t, c.do(t, call{method: "DELETE", path: "/v1/ops/api-keys/" + missing, auth: "none", requestInvalid: true, want: 401}), server.CodeUnauthorized)

	// The answers' schemas catch drift.
	list := c.do(t, call{method: "GET", path: keys, auth: "ops", want: 200})
	c.rejectsDrift(t, "GET", keys, list, map[string]func(m map[string]any){
		"a listed key shows its secret": func(m map[string]any) { dig(m, "data", 0)["key"] = k.Key },
		"no scopes":                     func(m map[string]any) { dig(m, "data", 0)["scopes"] = []any{} },
		"unknown scope":                 func(m map[string]any) { dig(m, "data", 0)["scopes"] = []any{"refunds:delete"} },
		"missing prefix":                func(m map[string]any) { delete(dig(m, "data", 0), "prefix") },
	})
	one := c.do(t, call{method: "GET", path: "/v1/ops/merchants?limit=1", auth: "ops", want: 200})
	c.rejectsDrift(t, "GET", "/v1/ops/merchants?limit=1", one, map[string]func(m map[string]any){
		"threshold missing": func(m map[string]any) { delete(dig(m, "data", 0), "approvalThreshold") },
		"negative":          func(m map[string]any) { dig(m, "data", 0)["approvalThreshold"] = -1 },
	})
}

// testURLPolicyConformance: refusals of the webhook URL policy conform.
func testURLPolicyConformance(t *testing.T, c *conformance) {
	for _, u := range []string{"https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/", "https://nowhere.invalid/x"} {
		p := problemOf(t, c.do(t, call{method: "POST", path: "/v1/webhook-endpoints", body: map[string]any{"url": u}, want: 422}),
			refund.CodeWebhookURLNotAllowed)
		if len(p.Errors) != 1 || p.Errors[0].Field != "url" {
			t.Errorf("%s: errors = %+v", u, p.Errors)
		}
	}
}

// testRateLimitConformance: a key past its bucket gets the documented 429.
func testRateLimitConformance(t *testing.T, c *conformance) {
	api := httptest.NewServer(server.New(server.Deps{Service: rig.NewService(c.s.Store, c.s.Temporal, c.s.TaskQueue, c.s.Providers, c.s.Logger,
		refunds.Hooks{}), Logger: c.s.Logger, RateLimit: server.RateLimit{PerSecond: 0.1, Burst: 1}}).Handler())
	t.Cleanup(api.Close)
	c.do(t, call{base: api.URL, method: "GET", path: "/v1/refunds", want: 200})
	r := c.do(t, call{base: api.URL, method: "POST", path: "/v1/refunds", body: map[string]any{}, requestInvalid: true, want: 429})
	problemOf(t, r, server.CodeRateLimited)
	if r.Header.Get("Retry-After") != "10" {
		t.Errorf("Retry-After = %q, want 10", r.Header.Get("Retry-After"))
	}
	c.do(t, call{base: api.URL, method: "GET", path: "/v1/ops/audit", auth: "ops", want: 200}) // another key: its own bucket
}
