package integration

import (
	"context"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// TestReconcilerStartsOrphanedRefund: the API committed the refund and its
// reservation, then died before starting the workflow. The reconciler starts
// it, and a second pass starts nothing more.
func TestReconcilerStartsOrphanedRefund(t *testing.T) {
	s := testenv.StartStack(t, testenv.StackOptions{})
	ctx := context.Background()
	_, txID := s.Transaction(t, nil)
	r, err := s.Store.CreateRefund(ctx, refund.NewRefund{MerchantID: s.MerchantID, TransactionID: mustUUID(t, txID), Amount: 1200,
		Route: func(refund.Transaction, string) (refund.Method, error) { return refund.MethodProviderRefund, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// Older than the grace the API has to start it itself.
	if _, err := s.Pool.Exec(ctx, `UPDATE refunds SET created_at = now() - interval '5 minutes' WHERE id = $1`, r.ID); err != nil {
		t.Fatal(err)
	}
	report := reconcile(t, s)
	if report.WorkflowsStarted != 1 {
		t.Fatalf("reconciler started %d workflows, want 1", report.WorkflowsStarted)
	}
	got := s.WaitRefund(t, r.ID.String(), 20*time.Second, refund.StatusSucceeded)
	if got.Attempts < 1 {
		t.Fatalf("attempts = %d", got.Attempts)
	}
	if report := reconcile(t, s); report.WorkflowsStarted != 0 {
		t.Fatalf("second pass started %d workflows", report.WorkflowsStarted)
	}
	if n := s.Sandbox.Count(r.ID.String()); n != 1 {
		t.Fatalf("provider holds %d refunds", n)
	}
}

func reconcile(t *testing.T, s *testenv.Stack) activities.ReconcileReport {
	t.Helper()
	run, err := s.Temporal.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{TaskQueue: s.TaskQueue},
		workflows.ReconcileWorkflowName)
	if err != nil {
		t.Fatal(err)
	}
	var report activities.ReconcileReport
	if err := run.Get(context.Background(), &report); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return report
}
