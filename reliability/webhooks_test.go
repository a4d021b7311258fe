package reliability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
)

// hookReceiver is a merchant's webhook endpoint that verifies every
// delivery and can answer 503.
type hookReceiver struct {
	srv    *httptest.Server
	secret string

	mu        sync.Mutex
	failing   bool
	requests  int
	delivered map[uuid.UUID]int // event id → 2xx deliveries
	types     map[uuid.UUID]string
	badSig    int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{delivered: map[uuid.UUID]int{}, types: map[uuid.UUID]string{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		if h.failing {
			http.Error(w, "receiver overloaded", http.StatusServiceUnavailable)
			return
		}
		if err := webhooks.Verify(body, r.Header.Get(webhooks.SignatureHeader), h.secret, 0, time.Now()); err != nil {
			h.badSig++
			http.Error(w, "bad signature", http.StatusBadRequest)
			return
		}
		var ev webhooks.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID.String() != r.Header.Get(webhooks.EventIDHeader) {
			h.badSig++
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		h.delivered[ev.ID]++
		h.types[ev.ID] = ev.Type
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) setFailing(on bool) {
	h.mu.Lock()
	h.failing = on
	h.mu.Unlock()
}

func (h *hookReceiver) stats() (requests, distinct, total, badSig int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.delivered {
		total += n
	}
	return h.requests, len(h.delivered), total, h.badSig
}

// TestWebhookReceiverDownForALongTime: the merchant's endpoint is
// unreachable (connections cut), then answers 503, across many retries and
// a worker restart, while refunds complete; once it is back, every event is
// delivered, signed, at least once; the refunds never waited for it.
func TestWebhookReceiverDownForALongTime(t *testing.T) {
	sc := begin(t, "8. Webhook receiver down for a long time")
	ctx := context.Background()
	policy := activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second,
		GiveUpAfter: 10 * time.Minute, AttemptTimeout: 2 * time.Second}
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{WebhookPolicy: &policy}})
	m := newMerchant(t, r)
	c := r.Client(m)

	recv := newHookReceiver(t)
	front := startTCPProxy(t, recv.srv.Listener.Addr().String())
	var ep server.WebhookEndpointObject
	resp := must[rig.Response](t)(c.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": "http://" + front.addr() + "/hooks"},
		"Idempotency-Key", uuid.NewString()))
	if resp.Status != http.StatusCreated || resp.Decode(&ep) != nil || ep.Secret == "" {
		t.Fatalf("create webhook endpoint: %d %s", resp.Status, resp.Body)
	}
	recv.mu.Lock()
	recv.secret = ep.Secret
	recv.mu.Unlock()

	// Phase 1: the endpoint is unreachable while the refunds complete.
	front.setMode("refuse")
	const n = 20
	suffixes := []int64{0, 1, 4, 5, 10}
	for i := range n {
		p := rig.Providers[i%len(rig.Providers)]
		tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, p.Fields))
		must[string](t)(c.Refund(ctx, tx, 1000+100*int64(i)+suffixes[i%len(suffixes)]))
	}
	sc.refunds = n
	if err := rig.WaitSettled(ctx, r.Store, 60*time.Second, m.ID); err != nil {
		t.Fatalf("refunds waited for their webhooks: %v", err)
	}
	events := listAllEvents(t, c)
	if len(events) != 2*n {
		t.Fatalf("%d events for %d finished refunds, want %d", len(events), n, 2*n)
	}
	// The endpoint fails attempt after attempt, probed on its own backoff
	// rather than once per pending event; the worker is restarted in the
	// middle of it (its dispatcher moves to the new one).
	waitFailedAttempts(t, r, events, 3)
	r.StopWorker()
	if err := r.StartWorker(); err != nil {
		t.Fatal(err)
	}
	// Phase 2: reachable, but answering 503.
	front.setMode("pass")
	recv.setFailing(true)
	waitFailedAttempts(t, r, events, countAttempts(t, r, events, false)+3)
	failedAttempts := countAttempts(t, r, events, false)
	if failedAttempts >= 3*len(events) {
		t.Errorf("%d failed attempts for %d events: the failing endpoint was not held back as a whole", failedAttempts, len(events))
	}

	// Back up: everything arrives.
	recv.setFailing(false)
	err := rig.Poll(ctx, 60*time.Second, "every event delivered", func(context.Context) (bool, error) {
		_, distinct, _, _ := recv.stats()
		return distinct == len(events), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The dispatcher logs an attempt after the receiver has answered it.
	waitDelivered(t, r, events)
	requests, distinct, total, badSig := recv.stats()
	if badSig != 0 {
		t.Errorf("%d deliveries failed signature or id checks", badSig)
	}
	recv.mu.Lock()
	for _, e := range events {
		if recv.types[e.ID] != e.Type {
			t.Errorf("event %s (%s) delivered as %q", e.ID, e.Type, recv.types[e.ID])
		}
	}
	recv.mu.Unlock()
	sc.inject("endpoint unreachable (connections cut) then answering 503 across %d failed attempts (probes on the endpoint's backoff, not one per pending event) and a worker restart; retry 200ms doubling to 1s",
		failedAttempts)
	sc.verified("refunds finished without waiting; all %d events delivered after recovery (%d deliveries, %d requests in all), every one signed and verified",
		distinct, total, requests)
	o := fullCheck(r, nil, m)
	o.Webhooks, o.WebhookGrace = true, time.Millisecond
	sc.invariants(ctx, r.Store.Pool(), o)
}

func listAllEvents(t *testing.T, c *rig.Client) []server.EventObject {
	t.Helper()
	var out []server.EventObject
	cursor := ""
	for {
		var page struct {
			Data       []server.EventObject
			NextCursor string
		}
		path := "/v1/events?limit=100"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		resp := must[rig.Response](t)(c.Do(context.Background(), "GET", path, nil))
		if resp.Status != http.StatusOK || resp.Decode(&page) != nil {
			t.Fatalf("list events: %d %s", resp.Status, resp.Body)
		}
		out = append(out, page.Data...)
		if page.NextCursor == "" {
			return out
		}
		cursor = page.NextCursor
	}
}

// countAttempts counts the logged delivery attempts of events that succeeded (or failed).
func countAttempts(t *testing.T, r *rig.Rig, events []server.EventObject, succeeded bool) int {
	t.Helper()
	n := 0
	for _, e := range events {
		as, err := r.Store.ListWebhookAttempts(context.Background(), e.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range as {
			if a.Succeeded == succeeded {
				n++
			}
		}
	}
	return n
}

// waitDelivered waits until every event has a succeeded attempt logged.
func waitDelivered(t *testing.T, r *rig.Rig, events []server.EventObject) {
	t.Helper()
	err := rig.Poll(context.Background(), 30*time.Second, "every delivery logged", func(ctx context.Context) (bool, error) {
		for _, e := range events {
			as, err := r.Store.ListWebhookAttempts(ctx, e.ID)
			if err != nil {
				return false, err
			}
			if !slices.ContainsFunc(as, func(a refund.WebhookAttempt) bool { return a.Succeeded }) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitFailedAttempts waits until the events have at least k failed
// attempts logged in all, none succeeded.
func waitFailedAttempts(t *testing.T, r *rig.Rig, events []server.EventObject, k int) {
	t.Helper()
	err := rig.Poll(context.Background(), 60*time.Second, fmt.Sprintf("%d failed attempts", k), func(ctx context.Context) (bool, error) {
		failed := 0
		for _, e := range events {
			as, err := r.Store.ListWebhookAttempts(ctx, e.ID)
			if err != nil {
				return false, err
			}
			for _, a := range as {
				if a.Succeeded {
					return false, fmt.Errorf("event %s delivered while the endpoint was down", e.ID)
				}
				failed++
			}
		}
		return failed >= k, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
