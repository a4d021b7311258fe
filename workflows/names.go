// Package workflows holds Backflow's deterministic orchestration: the
// RefundWorkflow, webhook delivery and the reconciler. No I/O happens here;
// every side effect is an activity.
package workflows

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
	"go.temporal.io/sdk/temporal"
)

// Workflow type names, as Temporal UI shows them.
const (
	RefundWorkflowName = "RefundWorkflow"
	// WebhookWorkflowName delivered one event to one endpoint before the
	// webhook outbox; its executions still running finish on the refunds
	// task queue.
	WebhookWorkflowName = "WebhookDeliveryWorkflow"
	// WebhookDispatcherWorkflowName delivers the outbox, on the webhooks task queue.
	WebhookDispatcherWorkflowName = "WebhookDispatcherWorkflow"
	ReconcileWorkflowName         = "ReconcileWorkflow"
)

// WebhookDispatcherID names dispatcher n (0, 1, ...) of a webhooks task
// queue: starting one that runs is a no-op.
func WebhookDispatcherID(webhookTaskQueue string, n int) string {
	return fmt.Sprintf("backflow-webhook-dispatcher-%s-%d", webhookTaskQueue, n)
}

// ReconcileScheduleID names the reconciler's schedule: one per task queue,
// so deployments sharing a namespace each repair their own refunds.
func ReconcileScheduleID(taskQueue string) string { return "backflow-reconciler-" + taskQueue }

// Query, signal and update names of the RefundWorkflow.
const (
	QueryStatus         = "status"
	SignalProviderEvent = "provider-event"
	SignalRetry         = "retry"
	UpdateCancel        = "cancel"
	UpdateApprove       = "approve"
	UpdateReject        = "reject"
	UpdateResolve       = "resolve"
)

// Change ids of workflow.GetVersion: one per change of what an execution
// already in flight does next, never reused (docs/runbook.md).
const (
	changeStuckContinueAsNew = "stuck-continue-as-new"
	changeReversal           = "reversal-after-success"
	changeWebhookOutbox      = "webhook-outbox"
)

const refundWorkflowPrefix = "refund-"

// RefundWorkflowID is the workflow id of a refund: one refund, one workflow.
func RefundWorkflowID(refundID uuid.UUID) string { return refundWorkflowPrefix + refundID.String() }

// RefundIDOf is the refund id in a refund workflow's id; false for the ids
// of other workflows.
func RefundIDOf(workflowID string) (uuid.UUID, bool) {
	raw, ok := strings.CutPrefix(workflowID, refundWorkflowPrefix)
	if !ok {
		return uuid.Nil, false
	}
	id, err := uuid.Parse(raw)
	return id, err == nil
}

// WebhookWorkflowID is the workflow id of one event's delivery to one endpoint.
func WebhookWorkflowID(eventID, endpointID uuid.UUID) string {
	return "webhook-" + eventID.String() + "-" + endpointID.String()
}

// Custom search attributes ops filter on in Temporal UI.
var (
	SAMerchantID = temporal.NewSearchAttributeKeyKeyword("BackflowMerchantId")
	SAStatus     = temporal.NewSearchAttributeKeyKeyword("BackflowRefundStatus")
	SAProvider   = temporal.NewSearchAttributeKeyKeyword("BackflowProvider")
	SAMethod     = temporal.NewSearchAttributeKeyKeyword("BackflowMethod")
	SAStuck      = temporal.NewSearchAttributeKeyBool("BackflowStuck")
	SAAmount     = temporal.NewSearchAttributeKeyInt64("BackflowAmount")
)

// SearchAttributeKeys lists every custom search attribute, for registration.
var SearchAttributeKeys = []temporal.SearchAttributeKey{SAMerchantID, SAStatus, SAProvider, SAMethod, SAStuck, SAAmount}
