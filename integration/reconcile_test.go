package integration

import (
	"context"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
)

// TestReconcilerStartsOrphanedRefund: the API committed the refund and its
// reservation, then died before starting the workflow. The reconciler starts
// it, and a second pass starts nothing more.
func TestReconcilerStartsOrphanedRefund(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
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
	report := rig.Reconcile(t, s.Rig)
	if report.WorkflowsStarted != 1 {
		t.Fatalf("reconciler started %d workflows, want 1", report.WorkflowsStarted)
	}
	got := s.WaitRefund(t, r.ID.String(), 20*time.Second, refund.StatusSucceeded)
	if got.Attempts < 1 {
		t.Fatalf("attempts = %d", got.Attempts)
	}
	if report := rig.Reconcile(t, s.Rig); report.WorkflowsStarted != 0 {
		t.Fatalf("second pass started %d workflows", report.WorkflowsStarted)
	}
	if n := s.Sandbox.Count(r.ID.String()); n != 1 {
		t.Fatalf("provider holds %d refunds", n)
	}
}
