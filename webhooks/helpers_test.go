package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/google/uuid"
)

// --- helpers ---

// received is one request a receiver got and the status it answered.
type received struct {
	body   []byte
	header http.Header
	status int
}

func (r received) event(t *testing.T) webhooks.Event {
	t.Helper()
	var e webhooks.Event
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("decode delivery %s: %v", r.body, err)
	}
	return e
}

// receiver is a merchant's webhook endpoint: it answers 500 while down, a
// fixed status when one is set, else 200, and records every request.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	down   bool
	status int
	got    []received
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		switch {
		case r.status != 0:
			status = r.status
		case r.down:
			status = http.StatusInternalServerError
		}
		r.got = append(r.got, received{body: body, header: req.Header.Clone(), status: status})
		r.mu.Unlock()
		w.WriteHeader(status)
		if status >= 300 {
			_, _ = io.WriteString(w, "receiver says no")
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/hooks/backflow" }

func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *receiver) setStatus(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) waitFor(t *testing.T, what string, cond func([]received) bool) []received {
	t.Helper()
	return r.waitForWithin(t, waitLimit, what, cond)
}

func (r *receiver) waitForWithin(t *testing.T, limit time.Duration, what string, cond func([]received) bool) []received {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := r.all()
		if cond(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s still waiting for %s; %d requests received", limit, what, len(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliveredTypes are the event types answered 2xx.
func deliveredTypes(ds []received) map[string]bool {
	out := map[string]bool{}
	for _, d := range ds {
		var e webhooks.Event
		if d.status/100 == 2 && json.Unmarshal(d.body, &e) == nil {
			out[e.Type] = true
		}
	}
	return out
}

func countEvent(t *testing.T, ds []received, id uuid.UUID) int {
	n := 0
	for _, d := range ds {
		if d.event(t).ID == id {
			n++
		}
	}
	return n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func createEndpoint(t *testing.T, s *rig.Stack, key, url string, types ...string) server.WebhookEndpointObject {
	t.Helper()
	body := map[string]any{"url": url}
	if len(types) > 0 {
		body["eventTypes"] = types
	}
	var ep server.WebhookEndpointObject
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", body), http.StatusCreated).JSON(t, &ep)
	return ep
}

// createRefund registers a captured card payment for key's merchant and
// refunds amount of it; it returns the refund id.
func createRefund(t *testing.T, s *rig.Stack, key string, amount int64) string {
	t.Helper()
	txID := createTransaction(t, s, key)
	var r refund.Object
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/refunds", map[string]any{
		"originalTransactionId": txID, "refundValue": map[string]any{"amount": amount, "currency": "EUR"},
	}), http.StatusAccepted).JSON(t, &r)
	return r.TransactionID.String()
}

// createTransaction registers a captured 100 EUR card payment for key's
// merchant; it returns the transaction id.
func createTransaction(t *testing.T, s *rig.Stack, key string) string {
	t.Helper()
	var sess struct{ SessionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/sessions", map[string]any{}), http.StatusCreated).JSON(t, &sess)
	var tx struct{ TransactionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/transactions", map[string]any{
		"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000, "currency": "EUR",
		"status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8],
	}), http.StatusCreated).JSON(t, &tx)
	return tx.TransactionID
}

func waitRefund(t *testing.T, s *rig.Stack, key, id string, status refund.Status) {
	t.Helper()
	var r refund.Object
	poll(t, "refund "+id+" "+string(status), func() bool {
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/refunds/"+id, nil), http.StatusOK).JSON(t, &r)
		return r.Status == status
	})
}

func listEvents(t *testing.T, s *rig.Stack, key, query string) []server.EventObject {
	t.Helper()
	var page struct{ Data []server.EventObject }
	rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events"+query, nil), http.StatusOK).JSON(t, &page)
	return page.Data
}

func waitAttempts(t *testing.T, s *rig.Stack, key string, eventID uuid.UUID, cond func([]server.WebhookAttemptObject) bool) server.EventDetail {
	t.Helper()
	var d server.EventDetail
	poll(t, "attempts of event "+eventID.String(), func() bool {
		rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/events/"+eventID.String(), nil), http.StatusOK).JSON(t, &d)
		return cond(d.Attempts)
	})
	return d
}

// waitDeliveryStatus waits for the outbox row of an event to an endpoint to reach status.
func waitDeliveryStatus(t *testing.T, s *rig.Stack, eventID, endpointID uuid.UUID, status string) {
	t.Helper()
	var got string
	poll(t, "delivery "+status, func() bool {
		statuses, err := s.Store.EventDeliveryStatuses(context.Background(), eventID)
		if err != nil {
			t.Fatal(err)
		}
		got = statuses[endpointID]
		return got == status
	})
}
