package server_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/workflows"
)

func TestRefundEndToEnd(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	sessionID, txID := s.Transaction(t, map[string]any{"amount": 10000})

	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{
		"sessionId": sessionID, "refundValue": map[string]any{"amount": 2500, "currency": "EUR"},
		"reason": "customer asked", "description": "partial refund",
	}), http.StatusAccepted)
	var created refund.Object
	r.JSON(t, &created)
	if created.Status != refund.StatusPending || created.OriginalTransactionID.String() != txID || created.Method != refund.MethodProviderRefund {
		t.Fatalf("created = %+v", created)
	}
	// The balance is reserved before 202.
	var tx server.TransactionObject
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if tx.ReservedAmount+tx.RefundedAmount != 2500 || tx.RefundableAmount != 7500 {
		t.Fatalf("after accept: %+v", tx)
	}

	done := s.WaitRefund(t, created.TransactionID.String(), 20*time.Second, refund.StatusSucceeded)
	if done.ProviderReference == "" || done.CompletedAt == nil {
		t.Fatalf("succeeded refund lacks provider reference or completedAt: %+v", done)
	}
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if tx.Status != refund.TxPartiallyRefunded || tx.RefundedAmount != 2500 || tx.ReservedAmount != 0 {
		t.Fatalf("after success: %+v", tx)
	}
	ledger, err := s.Store.ListLedger(context.Background(), created.TransactionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ledger) != 2 || ledger[0].Kind != "RESERVE" || ledger[1].Kind != "SETTLE" {
		t.Fatalf("ledger = %+v", ledger)
	}
	if n := s.Sandbox.Count(created.TransactionID.String()); n != 1 {
		t.Fatalf("sandbox holds %d refunds for the key, want 1", n)
	}
	// The workflow answers the status query.
	val, err := s.Temporal.QueryWorkflow(context.Background(), workflows.RefundWorkflowID(created.TransactionID), "", workflows.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.RefundState
	if err := val.Get(&st); err != nil || st.Status != refund.StatusSucceeded || st.Step != workflows.StepDone {
		t.Fatalf("query = %+v, %v", st, err)
	}

	// The rest is refunded with the amount omitted → the full remaining amount.
	r = rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID}), http.StatusAccepted)
	r.JSON(t, &created)
	if created.RefundValue.Amount != 7500 {
		t.Fatalf("full remaining refund amount = %d, want 7500", created.RefundValue.Amount)
	}
	s.WaitRefund(t, created.TransactionID.String(), 20*time.Second, refund.StatusSucceeded)
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if tx.Status != refund.TxRefunded || tx.RefundableAmount != 0 {
		t.Fatalf("after full refund: %+v", tx)
	}
	r = s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID})
	rig.AssertProblem(t, r, http.StatusConflict, refund.CodeFullyRefunded)
}
