package workflows

import (
	"fmt"
	"time"

	"github.com/backflow/backflow/refund"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
)

// StartOptions are the options every starter of a refund's workflow uses (the
// API and the reconciler): starting twice never creates a second execution.
// Eager start takes effect only when the starter's client runs a worker on
// the task queue (BACKFLOW_API_WORKER): the first workflow task then comes
// back in the start response instead of through matching.
func StartOptions(r refund.Refund, taskQueue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       RefundWorkflowID(r.ID),
		TaskQueue:                taskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		EnableEagerStart:         true,
		StaticSummary:            Summary(r.Amount, r.Currency, r.Provider, r.Method),
		StaticDetails:            StaticDetails(r),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			SAMerchantID.ValueSet(r.MerchantID.String()),
			SAStatus.ValueSet(string(r.Status)),
			SAProvider.ValueSet(r.Provider),
			SAMethod.ValueSet(string(r.Method)),
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

// ResumeOptions start a new run of a refund whose last run closed without
// finishing it (failed, terminated, timed out): allowed only after such a
// run, never after one that completed, and never beside a running one.
func ResumeOptions(r refund.Refund, taskQueue string) client.StartWorkflowOptions {
	o := StartOptions(r, taskQueue)
	o.WorkflowIDReusePolicy = enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
	o.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL
	o.WorkflowExecutionErrorWhenAlreadyStarted = true // a running run is reported, not reused
	o.EnableEagerStart = false
	return o
}

// SignalResumeOptions are ResumeOptions for a signal-with-start: the signal
// goes to the running run, or starts a new one after a run that closed
// without finishing the refund.
func SignalResumeOptions(r refund.Refund, taskQueue string) client.StartWorkflowOptions {
	o := ResumeOptions(r, taskQueue)
	o.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	return o
}

// BrokenRunsQuery finds the refunds of a task queue whose last run closed
// since a time without finishing them while they were open (the visibility
// query the reconciler runs on recent closures; older ones it finds by
// sweeping Postgres).
func BrokenRunsQuery(taskQueue string, closedSince time.Time) string {
	return fmt.Sprintf(`WorkflowType = '%s' AND TaskQueue = '%s' AND ExecutionStatus IN ('Failed', 'Terminated', 'TimedOut', 'Canceled') `+
		`AND %s IN ('PENDING', 'PROCESSING') AND CloseTime > '%s'`,
		RefundWorkflowName, taskQueue, SAStatus.GetName(), closedSince.UTC().Format(time.RFC3339))
}
