package ops_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// TestOnboardMerchant is the README's onboarding with the CLI only: a
// merchant, a platform key that registers payments, a merchant key that
// refunds them; keys listed without secrets, revoked keys refused, other
// merchants' objects invisible, every change in the ops audit.
func TestOnboardMerchant(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	var m ops.Merchant
	cliJSON(t, s, &m, "merchants", "create", "--name", "Acme Shoes", "--approval-threshold", "50000")
	if m.Name != "Acme Shoes" || m.ApprovalThreshold == nil || *m.ApprovalThreshold != 50000 || m.CreatedAt.IsZero() {
		t.Fatalf("merchant = %+v", m)
	}
	if table := mustCLI(t, s, "merchants", "list"); !strings.Contains(table, m.MerchantID.String()) || !strings.Contains(table, "Acme Shoes") {
		t.Fatalf("merchants list:\n%s", table)
	}

	var backend, platform ops.APIKey
	cliJSON(t, s, &backend, "keys", "create", "--merchant", m.MerchantID.String(), "--name", "checkout-backend")
	if !slices.Equal(backend.Scopes, refund.DefaultMerchantScopes) || backend.Key == "" || !strings.HasPrefix(backend.Key, backend.Prefix) {
		t.Fatalf("default key = %+v", backend)
	}
	human := mustCLI(t, s, "keys", "create", "--merchant", m.MerchantID.String(), "--name", "payments-platform", "--scopes", "transactions:write")
	secret := lastLine(human)
	if !strings.Contains(human, "shown only now") || !strings.HasPrefix(secret, "bf_") {
		t.Fatalf("keys create:\n%s", human)
	}
	platform.Key = secret

	// The merchant key cannot register payments (nor mint balance); the platform key can.
	rig.AssertProblem(t, s.DoWithKey(t, backend.Key, "POST", "/v1/sessions", map[string]any{}), http.StatusForbidden, server.CodeForbidden)
	var sess struct{ SessionID string }
	rig.Must(t, s.DoWithKey(t, platform.Key, "POST", "/v1/sessions", map[string]any{}), http.StatusCreated).JSON(t, &sess)
	var tx struct{ TransactionID string }
	rig.Must(t, s.DoWithKey(t, platform.Key, "POST", "/v1/transactions", map[string]any{"sessionId": sess.SessionID, "provider": "cardpay",
		"method": "card", "amount": 10000, "currency": "EUR", "status": "CAPTURED", "providerReference": "ord_" + uuid.NewString()[:8]}),
		http.StatusCreated).JSON(t, &tx)
	rig.AssertProblem(t, s.DoWithKey(t, platform.Key, "POST", "/v1/refunds", map[string]any{"sessionId": sess.SessionID}),
		http.StatusForbidden, server.CodeForbidden)
	var created refund.Object
	rig.Must(t, s.DoWithKey(t, backend.Key, "POST", "/v1/refunds", map[string]any{"sessionId": sess.SessionID,
		"refundValue": map[string]any{"amount": 1000, "currency": "EUR"}}), http.StatusAccepted).JSON(t, &created)
	refundID := created.TransactionID.String()
	waitRefundAs(t, s, backend.Key, refundID, refund.StatusSucceeded)
	// Basic auth with the key id and the key (001_*).
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(backend.KeyID.String()+":"+backend.Key))
	rig.Must(t, s.DoWithKey(t, "", "GET", "/v1/refunds/"+refundID, nil, "Authorization", basic), http.StatusOK)

	// Listed without secrets, with their last use.
	var list ops.APIKeyList
	cliJSON(t, s, &list, "keys", "list", "--merchant", m.MerchantID.String())
	if len(list.Data) != 2 || list.Data[0].KeyID != backend.KeyID || list.Data[0].LastUsedAt == nil {
		t.Fatalf("keys list = %+v", list)
	}
	raw := mustCLI(t, s, "keys", "list", "--merchant", m.MerchantID.String(), "--json")
	if strings.Contains(raw, backend.Key) || strings.Contains(raw, platform.Key) || strings.Contains(raw, `"key"`) {
		t.Fatalf("keys list shows a secret:\n%s", raw)
	}

	// Another merchant's key sees none of this merchant's objects.
	var other ops.Merchant
	cliJSON(t, s, &other, "merchants", "create", "--name", "Other Shop")
	var otherKey ops.APIKey
	cliJSON(t, s, &otherKey, "keys", "create", "--merchant", other.MerchantID.String(), "--name", "backend")
	rig.AssertProblem(t, s.DoWithKey(t, otherKey.Key, "GET", "/v1/refunds/"+refundID, nil), http.StatusNotFound, refund.CodeRefundNotFound)
	rig.AssertProblem(t, s.DoWithKey(t, otherKey.Key, "GET", "/v1/transactions/"+tx.TransactionID, nil), http.StatusNotFound, refund.CodeTransactionNotFound)
	var otherList ops.APIKeyList
	cliJSON(t, s, &otherList, "keys", "list", "--merchant", other.MerchantID.String())
	if len(otherList.Data) != 1 || otherList.Data[0].KeyID != otherKey.KeyID {
		t.Fatalf("the other merchant's keys = %+v", otherList)
	}

	// Revoked: 401 from the next request on; revoking again changes nothing.
	out := mustCLI(t, s, "keys", "revoke", backend.KeyID.String())
	if !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %s", out)
	}
	rig.AssertProblem(t, s.DoWithKey(t, backend.Key, "GET", "/v1/refunds/"+refundID, nil), http.StatusUnauthorized, server.CodeUnauthorized)
	rig.AssertProblem(t, s.DoWithKey(t, "", "GET", "/v1/refunds/"+refundID, nil, "Authorization", basic), http.StatusUnauthorized, server.CodeUnauthorized)
	mustCLI(t, s, "keys", "revoke", backend.KeyID.String())
	cliJSON(t, s, &list, "keys", "list", "--merchant", m.MerchantID.String())
	if list.Data[0].RevokedAt == nil || list.Data[1].RevokedAt != nil {
		t.Fatalf("after revoke = %+v", list.Data)
	}
	rig.Must(t, s.DoWithKey(t, platform.Key, "GET", "/v1/refunds", nil), http.StatusForbidden) // still a valid key

	// Every change is audited, never with a secret.
	var page ops.AuditPage
	cliJSON(t, s, &page, "audit", "--limit", "200")
	got := map[string]int{}
	for _, e := range page.Data {
		got[e.Action]++
		for _, k := range []string{backend.Key, platform.Key, otherKey.Key} {
			if strings.Contains(string(e.Detail), k) {
				t.Fatalf("audit entry %s holds a key: %s", e.Action, e.Detail)
			}
		}
	}
	if got[refund.AuditCreateMerchant] < 2 || got[refund.AuditCreateAPIKey] < 3 || got[refund.AuditRevokeAPIKey] < 2 {
		t.Fatalf("audit actions = %v", got)
	}
	if table := mustCLI(t, s, "audit", "--limit", "5"); !strings.Contains(table, "api_key.revoke") || !strings.Contains(table, "keyId="+backend.KeyID.String()) {
		t.Fatalf("audit table:\n%s", table)
	}
}

// TestAccessRefusals: validation errors are problem+json, unknown
// merchants and keys 404, and each attempt is audited with its code.
func TestAccessRefusals(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	unknown := uuid.Must(uuid.NewV7()).String()
	for _, tc := range []struct {
		name, method, path string
		body               any
		status             int
		code, field        string
	}{
		{"empty merchant name", "POST", "/v1/ops/merchants", map[string]any{"name": " "}, 422, refund.CodeValidation, "name"},
		{"negative threshold", "POST", "/v1/ops/merchants", map[string]any{"name": "x", "approvalThreshold": -1}, 422, refund.CodeValidation, "approvalThreshold"},
		{"unknown field", "POST", "/v1/ops/merchants", map[string]any{"name": "x", "scopes": []string{}}, 400, server.CodeMalformed, ""},
		{"unknown scope", "POST", "/v1/ops/merchants/" + s.MerchantID.String() + "/api-keys", map[string]any{"name": "k", "scopes": []string{"refunds:delete"}},
			422, refund.CodeValidation, "scopes[0]"},
		{"ops scope for a merchant", "POST", "/v1/ops/merchants/" + s.MerchantID.String() + "/api-keys", map[string]any{"name": "k", "scopes": []string{"ops"}},
			422, refund.CodeValidation, "scopes[0]"},
		{"empty key name", "POST", "/v1/ops/merchants/" + s.MerchantID.String() + "/api-keys", map[string]any{"name": ""}, 422, refund.CodeValidation, "name"},
		{"key of an unknown merchant", "POST", "/v1/ops/merchants/" + unknown + "/api-keys", map[string]any{"name": "k"}, 404, refund.CodeMerchantNotFound, ""},
		{"keys of an unknown merchant", "GET", "/v1/ops/merchants/" + unknown + "/api-keys", nil, 404, refund.CodeMerchantNotFound, ""},
		{"bad merchant id", "GET", "/v1/ops/merchants/nope/api-keys", nil, 400, server.CodeMalformed, "merchantId"},
		{"revoke an unknown key", "DELETE", "/v1/ops/api-keys/" + unknown, nil, 404, refund.CodeAPIKeyNotFound, ""},
		{"bad cursor", "GET", "/v1/ops/merchants?cursor=nope", nil, 400, server.CodeMalformed, "cursor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rig.AssertProblem(t, s.DoWithKey(t, s.OpsKey, tc.method, tc.path, tc.body), tc.status, tc.code)
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Fatalf("errors = %+v, want field %s", p.Errors, tc.field)
			}
		})
	}
	// A merchant key reaches none of it.
	for _, path := range []string{"/v1/ops/merchants", "/v1/ops/merchants/" + s.MerchantID.String() + "/api-keys"} {
		rig.AssertProblem(t, s.Do(t, "GET", path, nil), http.StatusForbidden, server.CodeForbidden)
	}
	rig.AssertProblem(t, s.Do(t, "DELETE", "/v1/ops/api-keys/"+unknown, nil), http.StatusForbidden, server.CodeForbidden)

	var page ops.AuditPage
	cliJSON(t, s, &page, "audit", "--limit", "20")
	failed := map[string]int{}
	for _, e := range page.Data {
		var d map[string]any
		if err := json.Unmarshal(e.Detail, &d); err != nil {
			t.Fatal(err)
		}
		if d["outcome"] == "failed" {
			failed[e.Action+" "+d["code"].(string)]++
		}
	}
	want := map[string]int{"merchant.create validation.failed": 2, "api_key.create validation.failed": 3,
		"api_key.create merchant.not_found": 1, "api_key.revoke api_key.not_found": 1}
	for k, n := range want {
		if failed[k] != n {
			t.Errorf("audited failures %v, want %s × %d", failed, k, n)
		}
	}

	// The CLI checks its arguments before calling.
	for _, args := range [][]string{{"merchants"}, {"merchants", "delete"}, {"merchants", "create"}, {"keys", "create", "--merchant", unknown},
		{"keys", "list"}, {"keys", "revoke", "nope"}} {
		if _, err := cli(t, s, args...); err == nil {
			t.Errorf("ops %v: no error", args)
		}
	}
}

// TestKeyCreationReplayHasNoSecret: a retried create with the same
// Idempotency-Key answers the same key without its secret, which is stored
// nowhere in clear.
func TestKeyCreationReplayHasNoSecret(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	path := "/v1/ops/merchants/" + s.MerchantID.String() + "/api-keys"
	idem := uuid.NewString()
	var first, replay ops.APIKey
	rig.Must(t, s.DoWithKey(t, s.OpsKey, "POST", path, map[string]any{"name": "retried"}, "Idempotency-Key", idem), http.StatusCreated).JSON(t, &first)
	r := rig.Must(t, s.DoWithKey(t, s.OpsKey, "POST", path, map[string]any{"name": "retried"}, "Idempotency-Key", idem), http.StatusCreated)
	r.JSON(t, &replay)
	if first.Key == "" || replay.Key != "" || replay.KeyID != first.KeyID || r.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %+v, replay %+v", first, replay)
	}
	var stored int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys WHERE position($1::bytea in response_body) > 0`,
		[]byte(first.Key)).Scan(&stored); err != nil || stored != 0 {
		t.Fatalf("%d idempotency records hold the key (%v)", stored, err)
	}
}

// TestSeed: backflow seed makes the demo merchant and its keys through the
// service, the demo key with every merchant scope; a second run adds nothing.
func TestSeed(t *testing.T) {
	env := testenv.Get(t)
	apiKey, opsKey := "bf_demo_"+uuid.NewString(), "bf_ops_"+uuid.NewString()
	seed := func() string {
		cmd := exec.Command(testenv.BackflowBinary(t), "seed", "--api-key", apiKey, "--ops-key", opsKey)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+env.DBURL)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("seed: %v\n%s", err, out.String())
		}
		return out.String()
	}
	first := seed()
	if !strings.Contains(first, "demo merchant created") || strings.Count(first, "sample transaction:") != 5 {
		t.Fatalf("first seed:\n%s", first)
	}
	ctx := context.Background()
	demo, err := env.Store.Authenticate(ctx, apiKey)
	if err != nil || !slices.Equal(demo.Scopes, refund.MerchantScopes) {
		t.Fatalf("demo key = %+v %v", demo, err)
	}
	if p, err := env.Store.Authenticate(ctx, opsKey); err != nil || p.MerchantID != uuid.Nil || !p.HasScope(refund.ScopeOps) {
		t.Fatalf("ops key = %+v %v", p, err)
	}
	if again := seed(); strings.TrimSpace(again) != "" {
		t.Fatalf("second seed printed:\n%s", again)
	}
	keys, err := env.Store.ListAPIKeys(ctx, demo.MerchantID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("demo keys after two seeds = %+v %v", keys, err)
	}
}

// waitRefundAs polls a refund with key until it has status want.
func waitRefundAs(t *testing.T, s *rig.Stack, key, id string, want refund.Status) {
	t.Helper()
	eventually(t, "refund "+string(want), func() error {
		o, err := rig.NewClient(s.APIURL, key).GetRefund(context.Background(), id)
		if err == nil && o.Status != want {
			return errStatus(o.Status)
		}
		return err
	})
}

type errStatus refund.Status

func (e errStatus) Error() string { return "status " + string(e) }

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
