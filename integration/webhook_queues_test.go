package integration

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	sdkworker "go.temporal.io/sdk/worker"

	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/worker"
)

// TestRefundsAndWebhooksWorkersRunAlone: the refunds worker finishes
// refunds with no webhooks worker running (their webhooks wait in the
// outbox), and the webhooks worker delivers them with no refunds worker
// running, as `backflow worker --queues refunds` and `--queues webhooks`
// run them.
func TestRefundsAndWebhooksWorkersRunAlone(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	_, key := s.NewMerchantKey(t, nil)
	var mu sync.Mutex
	got := map[string]bool{} // refund id + event type
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev webhooks.Event
		var data struct{ Refund refund.Object }
		if json.Unmarshal(body, &ev) == nil && json.Unmarshal(ev.Data, &data) == nil {
			mu.Lock()
			got[data.Refund.TransactionID.String()+" "+ev.Type] = true
			mu.Unlock()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	addEndpoint(t, s, key, srv.URL+"/hooks")
	delivered := func(id, typ string) bool {
		mu.Lock()
		defer mu.Unlock()
		return got[id+" "+typ]
	}
	start := func(w sdkworker.Worker) sdkworker.Worker {
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		return w
	}

	// Refunds alone: the refund completes; its webhooks stay queued.
	refunds := start(worker.New(s.Temporal, s.TaskQueue, s.Activities, sdkworker.Options{}))
	first := refundWithKey(t, s, key).String()
	var pending int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM webhook_deliveries d JOIN refund_events e ON e.id = d.event_id
		WHERE e.refund_id = $1 AND d.status = 'PENDING' AND d.attempts = 0`, first).Scan(&pending); err != nil || pending != 2 {
		t.Fatalf("%d deliveries of the finished refund waiting in the outbox (%v), want 2", pending, err)
	}
	refunds.Stop()

	// Webhooks alone: the queued webhooks go out, and so does refund.created
	// of a refund no worker runs.
	hooks := start(worker.NewWebhooks(s.Temporal, config.WebhookTaskQueueFor(s.TaskQueue), s.Activities, sdkworker.Options{}))
	defer hooks.Stop()
	if err := s.Activities.Workflows.EnsureWebhookDispatchers(context.Background()); err != nil {
		t.Fatal(err)
	}
	second := askRefund(t, s, key).String()
	err := rig.Poll(context.Background(), time.Minute, "webhooks with no refunds worker", func(context.Context) (bool, error) {
		return delivered(first, refund.EventRefundCreated) && delivered(first, refund.EventRefundSucceeded) &&
			delivered(second, refund.EventRefundCreated), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var o refund.Object
	if rig.Must(t, s.DoWithKey(t, key, "GET", "/v1/refunds/"+second, nil), http.StatusOK).JSON(t, &o); o.Status != refund.StatusPending {
		t.Fatalf("second refund %s with no refunds worker", o.Status)
	}
}
