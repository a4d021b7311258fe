package reliability_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// Routes without tenant data: health, the API description, and provider
// callbacks (authenticated by the provider's signature, not a merchant key).
var untenanted = map[string]bool{
	"GET /healthz": true, "GET /readyz": true, "GET /openapi.json": true, "GET /openapi.yaml": true, "GET /metrics": true,
	"POST /v1/provider-callbacks/:provider": true,
}

type isolationCase struct {
	route string // "METHOD /path/:param" as registered
	name  string
	// The request, with {id} standing for target (A's object) or an unknown id.
	method, path string
	body         any
	target       string
	status       int
	code         string
}

// TestTenantIsolationEveryEndpoint: merchant B reaches for merchant A's
// refunds, transactions, sessions, webhook endpoints and events through
// every route of the API. A's object is always 404, answered exactly like an
// id that does not exist; lists never show it; nothing of A's changes; the
// same Idempotency-Key used by both never replays one's answer to the other.
// Every registered route must have a case here, so a new route cannot skip it.
func TestTenantIsolationEveryEndpoint(t *testing.T) {
	sc := begin(t, "10. Tenant isolation across every endpoint")
	ctx := context.Background()
	r := startRig(t, rigOptions{})
	threshold := int64(5000)
	a := must[rig.Merchant](t)(r.NewMerchant(ctx, &threshold))
	b := newMerchant(t, r)
	ca, cb := r.Client(a), r.Client(b)

	// A's objects: a finished refund, a refund waiting for approval, an endpoint, events.
	tx := must[rig.Transaction](t)(ca.CreateTransaction(ctx, nil))
	done := must[string](t)(ca.Refund(ctx, tx, 1000))
	waiting := must[string](t)(ca.Refund(ctx, tx, 6000))
	if err := rig.Poll(ctx, 30*time.Second, "A's first refund final", func(ctx context.Context) (bool, error) {
		o, err := ca.GetRefund(ctx, done)
		return o.Status == refund.StatusSucceeded, err
	}); err != nil {
		t.Fatal(err)
	}
	var ep server.WebhookEndpointObject
	resp := must[rig.Response](t)(ca.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": "http://127.0.0.1:9/hooks"}))
	if resp.Status != http.StatusCreated || resp.Decode(&ep) != nil {
		t.Fatalf("create endpoint: %d %s", resp.Status, resp.Body)
	}
	events := listAllEvents(t, ca)
	if len(events) == 0 {
		t.Fatal("A has no events")
	}
	eventID := events[0].ID.String()
	// B's own objects, to aim A's ids at.
	btx := must[rig.Transaction](t)(cb.CreateTransaction(ctx, nil))
	bRefund := must[string](t)(cb.Refund(ctx, btx, 1000))
	if err := rig.WaitSettled(ctx, r.Store, 30*time.Second, b.ID); err != nil {
		t.Fatal(err)
	}
	bEvent := listAllEvents(t, cb)[0].ID.String()

	const id = "{id}"
	cases := []isolationCase{
		{"POST /v1/sessions", "create session (B's own)", "POST", "/v1/sessions", map[string]any{}, "", http.StatusCreated, ""},
		{"POST /v1/transactions", "register a transaction in A's session", "POST", "/v1/transactions", map[string]any{"sessionId": id,
			"provider": "cardpay", "method": "card", "amount": 100, "currency": "EUR", "status": "CAPTURED", "providerReference": "x"},
			tx.SessionID, http.StatusNotFound, refund.CodeSessionNotFound},
		{"GET /v1/transactions/:id", "read A's transaction", "GET", "/v1/transactions/" + id, nil, tx.ID, http.StatusNotFound, refund.CodeTransactionNotFound},
		{"POST /v1/refunds", "refund A's transaction", "POST", "/v1/refunds", map[string]any{"originalTransactionId": id}, tx.ID,
			http.StatusNotFound, refund.CodeTransactionNotFound},
		{"POST /v1/refunds", "refund A's session", "POST", "/v1/refunds", map[string]any{"sessionId": id}, tx.SessionID,
			http.StatusNotFound, refund.CodeSessionNotFound},
		{"GET /v1/refunds/:id", "read A's refund", "GET", "/v1/refunds/" + id, nil, done, http.StatusNotFound, refund.CodeRefundNotFound},
		{"POST /v1/refunds/:id/cancel", "cancel A's waiting refund", "POST", "/v1/refunds/" + id + "/cancel", nil, waiting,
			http.StatusNotFound, refund.CodeRefundNotFound},
		{"GET /v1/webhook-endpoints/:id", "read A's endpoint", "GET", "/v1/webhook-endpoints/" + id, nil, ep.ID.String(),
			http.StatusNotFound, refund.CodeWebhookEndpointNotFound},
		{"DELETE /v1/webhook-endpoints/:id", "delete A's endpoint", "DELETE", "/v1/webhook-endpoints/" + id, nil, ep.ID.String(),
			http.StatusNotFound, refund.CodeWebhookEndpointNotFound},
		{"POST /v1/webhook-endpoints/:id/rotate-secret", "rotate A's secret", "POST", "/v1/webhook-endpoints/" + id + "/rotate-secret", nil,
			ep.ID.String(), http.StatusNotFound, refund.CodeWebhookEndpointNotFound},
		{"GET /v1/events/:id", "read A's event", "GET", "/v1/events/" + id, nil, eventID, http.StatusNotFound, refund.CodeEventNotFound},
		{"POST /v1/events/:id/redeliver", "redeliver A's event", "POST", "/v1/events/" + id + "/redeliver", nil, eventID,
			http.StatusNotFound, refund.CodeEventNotFound},
		{"POST /v1/events/:id/redeliver", "redeliver B's event to A's endpoint", "POST", "/v1/events/" + bEvent + "/redeliver",
			map[string]any{"endpointId": id}, ep.ID.String(), http.StatusNotFound, refund.CodeWebhookEndpointNotFound},
	}
	// The ops API is closed to merchant keys, whatever the id (B aims at A's
	// merchant and its own key alike).
	for _, route := range []string{"GET /v1/ops/refunds/:id", "POST /v1/ops/refunds/:id/retry", "POST /v1/ops/refunds/:id/cancel",
		"POST /v1/ops/refunds/:id/approve", "POST /v1/ops/refunds/:id/reject", "POST /v1/ops/refunds/:id/resolve",
		"POST /v1/ops/events/:id/redeliver", "GET /v1/ops/merchants/:merchantId/api-keys", "POST /v1/ops/merchants/:merchantId/api-keys",
		"DELETE /v1/ops/api-keys/:keyId"} {
		method, path, _ := strings.Cut(route, " ")
		target := waiting
		switch {
		case strings.Contains(path, ":merchantId"):
			target = a.ID.String()
		case strings.Contains(path, ":keyId"):
			target = must[refund.Principal](t)(r.Store.Authenticate(ctx, a.Key)).KeyID.String()
		}
		path = strings.NewReplacer(":id", id, ":merchantId", id, ":keyId", id).Replace(path)
		cases = append(cases, isolationCase{route, "ops route with a merchant key", method, path, map[string]any{"name": "stolen"},
			target, http.StatusForbidden, server.CodeForbidden})
	}
	for _, route := range []string{"GET /v1/ops/refunds", "GET /v1/ops/audit", "GET /v1/ops/merchants", "POST /v1/ops/merchants"} {
		method, path, _ := strings.Cut(route, " ")
		cases = append(cases, isolationCase{route, "ops list or create with a merchant key", method, path, map[string]any{"name": "mine"}, "",
			http.StatusForbidden, server.CodeForbidden})
	}
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.route] = true
		mine := sendCase(t, cb, tc, tc.target)
		if mine.Status != tc.status {
			t.Errorf("%s (%s): %d %s, want %d", tc.route, tc.name, mine.Status, mine.Body, tc.status)
			continue
		}
		if tc.code == "" || tc.target == "" {
			continue
		}
		p, ok := mine.Problem()
		if !ok || p.Code != tc.code {
			t.Errorf("%s (%s): %s, want code %s", tc.route, tc.name, mine.Body, tc.code)
			continue
		}
		// Indistinguishable from an id that does not exist.
		other := uuid.Must(uuid.NewV7()).String()
		unknown := sendCase(t, cb, tc, other)
		q, _ := unknown.Problem()
		if unknown.Status != mine.Status || q.Code != p.Code || strings.ReplaceAll(q.Detail, other, id) != strings.ReplaceAll(p.Detail, tc.target, id) {
			t.Errorf("%s (%s): A's object answers %d %q, an unknown id %d %q: existence leaks", tc.route, tc.name,
				mine.Status, p.Detail, unknown.Status, q.Detail)
		}
	}
	// Lists: B never sees A's objects.
	for _, path := range []string{"/v1/refunds", "/v1/refunds?sessionId=" + tx.SessionID, "/v1/refunds?originalTransactionId=" + tx.ID,
		"/v1/webhook-endpoints", "/v1/events", "/v1/events?refundId=" + done} {
		resp := must[rig.Response](t)(cb.Do(ctx, "GET", path, nil))
		for _, aid := range []string{done, waiting, tx.ID, ep.ID.String(), eventID} {
			if strings.Contains(string(resp.Body), aid) {
				t.Errorf("GET %s as B shows A's %s", path, aid)
			}
		}
		if resp.Status != http.StatusOK {
			t.Errorf("GET %s as B: %d %s", path, resp.Status, resp.Body)
		}
	}
	covered["GET /v1/refunds"], covered["GET /v1/webhook-endpoints"], covered["GET /v1/events"] = true, true, true
	// B's endpoint is invisible to A, and A cannot use B's session either.
	resp = must[rig.Response](t)(cb.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": "http://127.0.0.1:9/b"}))
	var bep server.WebhookEndpointObject
	if resp.Status != http.StatusCreated || resp.Decode(&bep) != nil {
		t.Fatalf("B creates an endpoint: %d %s", resp.Status, resp.Body)
	}
	covered["POST /v1/webhook-endpoints"] = true
	if resp := must[rig.Response](t)(ca.Do(ctx, "GET", "/v1/webhook-endpoints", nil)); strings.Contains(string(resp.Body), bep.ID.String()) {
		t.Error("A lists B's endpoint")
	}
	if resp := must[rig.Response](t)(ca.Do(ctx, "GET", "/v1/refunds/"+bRefund, nil)); resp.Status != http.StatusNotFound {
		t.Errorf("A reads B's refund: %d", resp.Status)
	}

	// One Idempotency-Key, two merchants: two refunds, no replay across tenants.
	key := "shared-" + uuid.NewString()
	ra := must[rig.Response](t)(ca.CreateRefund(ctx, rig.RefundBody(tx, 500), key))
	rb := must[rig.Response](t)(cb.CreateRefund(ctx, rig.RefundBody(btx, 700), key))
	var oa, ob refund.Object
	if ra.Status != http.StatusAccepted || rb.Status != http.StatusAccepted || ra.Decode(&oa) != nil || rb.Decode(&ob) != nil ||
		rb.Header.Get("Idempotent-Replayed") != "" || oa.TransactionID == ob.TransactionID {
		t.Errorf("one key, two merchants: A %d %s / B %d %s", ra.Status, ra.Body, rb.Status, rb.Body)
	}

	// Nothing of A's changed.
	if o := must[refund.Object](t)(ca.GetRefund(ctx, waiting)); o.Status != refund.StatusPending {
		t.Errorf("A's waiting refund is %s after B's attempts", o.Status)
	}
	var still server.WebhookEndpointObject
	resp = must[rig.Response](t)(ca.Do(ctx, "GET", "/v1/webhook-endpoints/"+ep.ID.String(), nil))
	// (Its deliveries may fail meanwhile: nothing listens there. B's attempts could only delete or rotate it.)
	if resp.Status != http.StatusOK || resp.Decode(&still) != nil || still.PreviousSecretExpiresAt != nil || still.Status == "DISABLED" {
		t.Errorf("A's endpoint after B's attempts: %d %s", resp.Status, resp.Body)
	}

	// Every route of the API has a case (or carries no tenant data).
	var missing []string
	for _, rt := range apiRoutes() {
		if !covered[rt] && !untenanted[rt] {
			missing = append(missing, rt)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("routes without a tenant-isolation case: %v", missing)
	}

	// A cancels its own waiting refund: the workflow ends, nothing stays reserved.
	if resp := must[rig.Response](t)(ca.Do(ctx, "POST", "/v1/refunds/"+waiting+"/cancel", nil)); resp.Status != http.StatusOK {
		t.Errorf("A cancels its refund: %d %s", resp.Status, resp.Body)
	}
	if err := rig.WaitSettled(ctx, r.Store, 30*time.Second, a.ID, b.ID); err != nil {
		t.Fatal(err)
	}
	sc.inject("merchant B calls %d routes with merchant A's ids (refund, transaction, session, endpoint, event), lists with A's filters, and reuses A's Idempotency-Key",
		len(covered))
	sc.verified("every case 404 (ops: 403) and identical to an unknown id; lists never show A's objects; A's refund and endpoint untouched; one key, two tenants → two refunds")
	rep := sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, a, b))
	sc.refunds = rep.Refunds
}

func sendCase(t *testing.T, c *rig.Client, tc isolationCase, id string) rig.Response {
	t.Helper()
	var body any
	if m, ok := tc.body.(map[string]any); ok {
		cp := map[string]any{}
		for k, v := range m {
			if v == "{id}" {
				v = id
			}
			cp[k] = v
		}
		body = cp
	}
	resp, err := c.Do(context.Background(), tc.method, strings.Replace(tc.path, "{id}", id, 1), body, "Idempotency-Key", uuid.NewString())
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// apiRoutes lists the routes the API registers, as "METHOD /path".
func apiRoutes() []string {
	e, ok := server.New(server.Deps{}).Handler().(*echo.Echo)
	if !ok {
		return nil
	}
	var out []string
	for _, rt := range e.Routes() {
		if strings.HasPrefix(rt.Method, "echo_") {
			continue
		}
		out = append(out, rt.Method+" "+rt.Path)
	}
	return out
}
