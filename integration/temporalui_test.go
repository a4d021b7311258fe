package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// TestTemporalUIExplainsTheRefund: on a real Temporal server the refund's
// execution carries the static summary and details Temporal UI and
// `temporal workflow describe` show, and its current details say where it
// stands.
func TestTemporalUIExplainsTheRefund(t *testing.T) {
	ctx := context.Background()
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1234, "EUR")
	s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded)
	wid := workflows.RefundWorkflowID(uuid.MustParse(id))
	desc, err := s.Temporal.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		t.Fatal(err)
	}
	md := desc.GetExecutionConfig().GetUserMetadata()
	var summary, details string
	dc := converter.GetDefaultDataConverter()
	if err := dc.FromPayload(md.GetSummary(), &summary); err != nil {
		t.Fatalf("summary: %v", err)
	}
	if err := dc.FromPayload(md.GetDetails(), &details); err != nil {
		t.Fatalf("details: %v", err)
	}
	if summary != "Refund 12.34 EUR · cardpay · PROVIDER_REFUND" {
		t.Fatalf("static summary %q", summary)
	}
	for _, want := range []string{"**Merchant** " + s.MerchantID.String(), "**Transaction** " + txID, "**Session** "} {
		if !strings.Contains(details, want) {
			t.Fatalf("static details %q lack %q", details, want)
		}
	}
	v, err := s.Temporal.QueryWorkflow(ctx, wid, "", "__temporal_workflow_metadata")
	if err != nil {
		t.Fatal(err)
	}
	var meta sdkpb.WorkflowMetadata
	if err := v.Get(&meta); err != nil {
		t.Fatal(err)
	}
	if cur := meta.GetCurrentDetails(); !strings.Contains(cur, "**SUCCEEDED** · step `done`") || !strings.Contains(cur, summary) {
		t.Fatalf("current details %q", cur)
	}
}
