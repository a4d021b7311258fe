package integration

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// TestWebhookCostIndependentOfEndpoints: a refund's workflow history has
// the same number of events whatever number of webhook endpoints its
// merchant has (none, one, three of which one refuses connections), so a
// merchant's endpoints never slow its refunds. With
// BACKFLOW_RECORD_HISTORIES set it records the histories the replay test
// checks (workflows/history_test.go).
func TestWebhookCostIndependentOfEndpoints(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	cases := []struct {
		name       string
		live, dead int
	}{{"endpoints_0", 0, 0}, {"endpoints_1", 1, 0}, {"endpoints_3", 2, 1}}
	events := map[string]int{}
	for _, c := range cases {
		_, key := s.NewMerchantKey(t, nil)
		for range c.live {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			t.Cleanup(srv.Close)
			addEndpoint(t, s, key, srv.URL+"/hooks")
		}
		for range c.dead {
			addEndpoint(t, s, key, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(rig.FreePort(t)))+"/hooks")
		}
		id := refundWithKey(t, s, key)
		n := historyLength(t, s, id)
		events[c.name] = n
		recordHistory(t, s, id.String(), "cardpay_"+c.name)
	}
	for _, c := range cases {
		if events[c.name] != events["endpoints_0"] {
			t.Fatalf("history events per refund by endpoints: %v, want all equal", events)
		}
	}
}

func addEndpoint(t *testing.T, s *rig.Stack, key, url string) {
	t.Helper()
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/webhook-endpoints", map[string]any{"url": url}), http.StatusCreated)
}

// askRefund asks for a refund of a fresh captured cardpay payment of
// key's merchant (the sandbox's immediate success) and returns its id.
func askRefund(t *testing.T, s *rig.Stack, key string) uuid.UUID {
	t.Helper()
	var sess struct{ SessionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/sessions", map[string]any{}), http.StatusCreated).JSON(t, &sess)
	var tx struct{ TransactionID string }
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/transactions", map[string]any{"sessionId": sess.SessionID, "provider": "cardpay",
		"method": "card", "amount": 10000, "currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}),
		http.StatusCreated).JSON(t, &tx)
	var o refund.Object
	rig.Must(t, s.DoWithKey(t, key, "POST", "/v1/refunds", map[string]any{"originalTransactionId": tx.TransactionID,
		"refundValue": map[string]any{"amount": 1000, "currency": "EUR"}}), http.StatusAccepted).JSON(t, &o)
	return o.TransactionID
}

// refundWithKey is askRefund, then waits for the refund's workflow to complete.
func refundWithKey(t *testing.T, s *rig.Stack, key string) uuid.UUID {
	t.Helper()
	id := askRefund(t, s, key)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st workflows.RefundState
	if err := s.Temporal.GetWorkflow(ctx, workflows.RefundWorkflowID(id), "").Get(ctx, &st); err != nil {
		t.Fatalf("refund workflow: %v", err)
	}
	if st.Status != refund.StatusSucceeded {
		t.Fatalf("refund ended %s, want SUCCEEDED", st.Status)
	}
	return id
}

// historyLength counts the events of the refund's (completed) workflow history.
func historyLength(t *testing.T, s *rig.Stack, id uuid.UUID) int {
	t.Helper()
	iter := s.Temporal.GetWorkflowHistory(context.Background(), workflows.RefundWorkflowID(id), "", false, 0)
	n := 0
	for iter.HasNext() {
		if _, err := iter.Next(); err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}
