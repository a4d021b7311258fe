package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/worker"
	"github.com/backflow/backflow/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// lines is a JSON log, safe for concurrent writers.
type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) all(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, raw := range bytes.Split(l.buf.Bytes(), []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("not a JSON log line: %s", raw)
		}
		out = append(out, m)
	}
	return out
}

// TestRefundLogLines: on the worker, every line at info and above about a
// refund (the SDK's included, which name its workflow) carries refundId,
// workflowId and merchantId, so the runbook's jq finds it; a provider's
// failure is logged once per attempt with the provider, its code and the
// attempt; another activity's failure once, by the interceptor; the SDK's
// own "Activity error." line only at debug.
func TestRefundLogLines(t *testing.T) {
	env := testenv.Get(t)
	log := &lines{}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tc, err := client.NewClientFromExisting(env.Temporal, client.Options{Logger: worker.Logger(logger)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tc.Close)
	r, err := rig.StartRig(rig.RigOptions{Store: env.Store, Temporal: tc, TaskQueue: env.TaskQueue + "-logs", Logger: logger, NoWorker: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	// The worker lacks paydesk: its refunds fail in the activity, not at the provider.
	cardpayOnly, err := providers.NewRegistry(providers.SandboxConfigs(r.SandboxURL)[:1], &http.Client{Timeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.Activities.Providers = cardpayOnly
	if err := r.StartWorker(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m, err := r.NewMerchant(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Client(m)
	refundOf := func(provider string, amount int64) string {
		t.Helper()
		tx, err := c.CreateTransaction(ctx, map[string]any{"provider": provider, "amount": 10000})
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.Refund(ctx, tx, amount)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	declined, transient, fine := refundOf("cardpay", 1001), refundOf("cardpay", 1002), refundOf("cardpay", 1000)
	unconfigured := refundOf("paydesk", 1000)
	t.Cleanup(func() {
		_ = tc.TerminateWorkflow(context.Background(), "refund-"+unconfigured, "", "test cleanup")
	})
	want := map[string]refund.Status{declined: refund.StatusDeclined, transient: refund.StatusSucceeded, fine: refund.StatusSucceeded}
	if err := rig.Poll(ctx, 30*time.Second, "refunds final", func(ctx context.Context) (bool, error) {
		for id, st := range want {
			if o, err := c.GetRefund(ctx, id); err != nil || o.Status != st {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := rig.Poll(ctx, 30*time.Second, "the unconfigured provider's failures logged", func(context.Context) (bool, error) {
		return len(find(log.all(t), "activity failed", unconfigured)) >= 2, nil
	}); err != nil {
		t.Fatal(err)
	}

	all := log.all(t)
	about := 0
	for _, l := range all {
		wid, _ := l["WorkflowID"].(string)
		if _, isRefund := workflows.RefundIDOf(wid); !isRefund && l["refundId"] == nil {
			continue
		}
		if l["level"] == "DEBUG" {
			continue
		}
		about++
		id, _ := l["refundId"].(string)
		if id == "" || l["workflowId"] != "refund-"+id || l["merchantId"] != m.ID.String() || (wid != "" && wid != "refund-"+id) {
			t.Errorf("a line about a refund lacks its ids: %v", l)
		}
	}
	if about == 0 {
		t.Fatal("no line about a refund at info or above")
	}
	for id, n := range map[string]int{declined: 1, transient: 2} {
		failed := find(all, "provider call failed", id)
		if len(failed) != n {
			t.Errorf("refund %s: %d provider failures logged, want %d: %v", id, len(failed), n, failed)
		}
		for i, l := range failed {
			if l["provider"] != "cardpay" || l["attempt"] != float64(i+1) || l["kind"] == "" || l["level"] != "WARN" {
				t.Errorf("provider failure line = %v", l)
			}
		}
		if again := find(all, "activity failed", id); len(again) != 0 {
			t.Errorf("a provider failure logged again: %v", again)
		}
	}
	for _, l := range find(all, "activity failed", unconfigured) {
		if l["activityType"] != "SubmitRefund" || !strings.Contains(l["error"].(string), "not configured on this worker") {
			t.Errorf("activity failure line = %v", l)
		}
	}
	for _, l := range all {
		if l["msg"] == "Activity error." && l["level"] != "DEBUG" {
			t.Errorf("the SDK's activity error at %v: %v", l["level"], l)
		}
	}
}

// find returns the lines with message msg about refund id.
func find(all []map[string]any, msg, id string) []map[string]any {
	var out []map[string]any
	for _, l := range all {
		if l["msg"] == msg && l["refundId"] == id {
			out = append(out, l)
		}
	}
	return out
}
