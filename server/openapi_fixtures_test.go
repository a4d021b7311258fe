package server_test

// Fixtures of TestOpenAPIConformance: each subtest makes the merchants,
// payments, refunds and webhook endpoints it needs, so none depends on
// another having run.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
)

// newMerchant is c calling as a new merchant, whose lists hold only what
// the subtest made.
func (c *conformance) newMerchant(t *testing.T) *conformance {
	t.Helper()
	m := *c
	m.merchantID, m.key = c.s.NewMerchantKey(t, nil)
	return &m
}

// client calls the API as c's merchant, for set-up the document need not check.
func (c *conformance) client() *rig.Client { return rig.NewClient(c.s.APIURL, c.key) }

// cardBasket is what the card payments of the fixtures bought: two items
// and a gift-card redemption.
var cardBasket = map[string]any{
	"lineItems":           []map[string]any{{"id": "sku-1", "amount": 2000, "quantity": 2}, {"id": "sku-2", "amount": 1000, "quantity": 1}},
	"giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 1500}},
}

// newCardTransaction registers a session and a captured cardpay payment of
// 10000 EUR with cardBasket.
func (c *conformance) newCardTransaction(t *testing.T) rig.Transaction {
	t.Helper()
	tx, err := c.client().CreateTransaction(context.Background(), cardBasket)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// newRefund creates a refund of amount on tx and returns its id.
func (c *conformance) newRefund(t *testing.T, tx rig.Transaction, amount int64) string {
	t.Helper()
	id, err := c.client().Refund(context.Background(), tx, amount)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// newSucceededRefund refunds 2000 of a new card payment and waits until the
// provider took it.
func (c *conformance) newSucceededRefund(t *testing.T) string {
	t.Helper()
	id := c.newRefund(t, c.newCardTransaction(t), 2000)
	c.waitSucceeded(t, id)
	return id
}

// waitSucceeded waits until the refund, of any merchant, is SUCCEEDED.
func (c *conformance) waitSucceeded(t *testing.T, id string) {
	t.Helper()
	waitOps(t, c.s, id, func(d ops.RefundDetail) bool { return d.Refund.Status == refund.StatusSucceeded })
}

// hookedMerchant is a new merchant with webhook endpoints on a receiver of
// its own: ok gets refund.created and refund.succeeded, flaky and gone get
// every type, canceledOnly gets refund.canceled only.
type hookedMerchant struct {
	*conformance // calls as the merchant
	recv         *hookReceiver

	ok, flaky, gone, canceledOnly server.WebhookEndpointObject
}

func (c *conformance) newHookedMerchant(t *testing.T) *hookedMerchant {
	t.Helper()
	m := &hookedMerchant{conformance: c.newMerchant(t), recv: newHookReceiver(t)}
	for _, ep := range []struct {
		into  *server.WebhookEndpointObject
		path  string
		types []string
	}{
		{&m.ok, "/ok", []string{refund.EventRefundCreated, refund.EventRefundSucceeded}},
		{&m.flaky, "/flaky", refund.EventTypes},
		{&m.gone, "/gone", refund.EventTypes},
		{&m.canceledOnly, "/canceled", []string{refund.EventRefundCanceled}},
	} {
		body := map[string]any{"url": m.recv.url(ep.path), "eventTypes": ep.types}
		rig.Must(t, c.s.DoWithKey(t, m.key, "POST", "/v1/webhook-endpoints", body), http.StatusCreated).JSON(t, ep.into)
	}
	return m
}

// deliveredRefund is a succeeded refund of a hooked merchant whose
// refund.created event reached ok, and flaky at its third attempt, and
// whose 410 disabled gone.
type deliveredRefund struct {
	*hookedMerchant
	refundID string
	created  server.EventObject // the refund's refund.created event
}

func (c *conformance) newDeliveredRefund(t *testing.T) deliveredRefund {
	t.Helper()
	m := c.newHookedMerchant(t)
	d := deliveredRefund{hookedMerchant: m, refundID: m.newSucceededRefund(t)}
	var page struct{ Data []server.EventObject }
	rig.Must(t, c.s.DoWithKey(t, m.key, "GET", "/v1/events?type="+refund.EventRefundCreated+"&refundId="+d.refundID, nil), http.StatusOK).JSON(t, &page)
	if len(page.Data) != 1 {
		t.Fatalf("refund.created events of the refund = %+v", page.Data)
	}
	d.created = page.Data[0]
	m.waitEvent(t, d.created.ID.String(), func(e server.EventDetail) bool {
		return len(rig.AttemptsTo(e, m.flaky.ID)) == 3 && len(rig.AttemptsTo(e, m.ok.ID)) == 1
	})
	m.waitEndpointDisabled(t, m.gone.ID.String())
	return d
}

// hookReceiver is a merchant's webhook receiver. Per path and event: /ok
// answers 200; /flaky first cuts the connection without an answer, then
// answers 500, then 200; /gone answers 410; anything else 200.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int // path + " " + event id → requests
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{seen: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		h.mu.Lock()
		key := r.URL.Path + " " + r.Header.Get(webhooks.EventIDHeader)
		h.seen[key]++
		n := h.seen[key]
		h.mu.Unlock()
		switch {
		case r.URL.Path == "/flaky" && n == 1:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		case r.URL.Path == "/flaky" && n == 2:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "receiver says no")
		case r.URL.Path == "/gone":
			w.WriteHeader(http.StatusGone)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url(path string) string { return h.srv.URL + path }

// requests counts the requests whose path and event id start with prefix
// ("path eventID", or "path " for every event).
func (h *hookReceiver) requests(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := 0
	for k, n := range h.seen {
		if strings.HasPrefix(k, prefix) {
			got += n
		}
	}
	return got
}

// wait waits until path got n requests for the event.
func (h *hookReceiver) wait(t *testing.T, path, eventID string, n int) {
	t.Helper()
	key := path + " " + eventID
	if err := rig.Poll(context.Background(), 30*time.Second, fmt.Sprintf("%d deliveries of event %s to %s", n, eventID, path),
		func(context.Context) (bool, error) { return h.requests(key) >= n, nil }); err != nil {
		t.Fatalf("%v: got %d", err, h.requests(key))
	}
}

// waitAny waits until path got a request.
func (h *hookReceiver) waitAny(t *testing.T, path string) {
	t.Helper()
	if err := rig.Poll(context.Background(), 30*time.Second, "a delivery to "+path,
		func(context.Context) (bool, error) { return h.requests(path+" ") > 0, nil }); err != nil {
		t.Fatal(err)
	}
}

// waitEvent polls GET /v1/events/{id} (c's merchant) until ok.
func (c *conformance) waitEvent(t *testing.T, id string, ok func(server.EventDetail) bool) server.EventDetail {
	t.Helper()
	var d server.EventDetail
	if err := rig.Poll(context.Background(), 30*time.Second, "event "+id, func(context.Context) (bool, error) {
		rig.Must(t, c.s.DoWithKey(t, c.key, "GET", "/v1/events/"+id, nil), http.StatusOK).JSON(t, &d)
		return ok(d), nil
	}); err != nil {
		t.Fatalf("%v: attempts = %+v", err, d.Attempts)
	}
	return d
}

// waitEndpointDisabled polls GET /v1/webhook-endpoints/{id} (c's merchant)
// until the endpoint is DISABLED, for 30 s at most; the caller checks.
func (c *conformance) waitEndpointDisabled(t *testing.T, id string) {
	t.Helper()
	_ = rig.Poll(context.Background(), 30*time.Second, "endpoint "+id+" disabled", func(context.Context) (bool, error) {
		var ep server.WebhookEndpointObject
		rig.Must(t, c.s.DoWithKey(t, c.key, "GET", "/v1/webhook-endpoints/"+id, nil), http.StatusOK).JSON(t, &ep)
		return ep.Status == "DISABLED", nil
	})
}

// waitOps polls GET /v1/ops/refunds/{id} until ok.
func waitOps(t *testing.T, s *rig.Stack, id string, ok func(ops.RefundDetail) bool) ops.RefundDetail {
	t.Helper()
	var d ops.RefundDetail
	if err := rig.Poll(context.Background(), 30*time.Second, "refund "+id, func(context.Context) (bool, error) {
		rig.Must(t, s.DoWithKey(t, s.OpsKey, "GET", "/v1/ops/refunds/"+id, nil), http.StatusOK).JSON(t, &d)
		return ok(d), nil
	}); err != nil {
		t.Fatalf("%v: status %s, workflow %+v", err, d.Refund.Status, d.Workflow)
	}
	return d
}
