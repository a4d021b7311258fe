package workflows

import (
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/store"
)

// StartOptions are the options every starter of a refund's workflow uses (the
// API and the reconciler): starting twice never creates a second execution.
// Eager start takes effect only when the starter's client runs a worker on
// the task queue (BACKFLOW_API_WORKER): the first workflow task then comes
// back in the start response instead of through matching.
func StartOptions(r store.Refund, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       RefundWorkflowID(r.ID),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		EnableEagerStart:         true,
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAMerchantID.ValueSet(r.MerchantID.String()),
			SAStatus.ValueSet(r.Status),
			SAProvider.ValueSet(r.Provider),
			SAMethod.ValueSet(r.Method),
			SAStuck.ValueSet(false),
			SAAmount.ValueSet(r.Amount),
		),
		Memo: map[string]any{
			"refund":              fmt.Sprintf("%d %s via %s (%s)", r.Amount, r.Currency, r.Provider, r.Method),
			"sessionId":           r.SessionID.String(),
			"originalTransaction": r.TransactionID.String(),
			"reference":           r.Reference,
		},
	}
}
