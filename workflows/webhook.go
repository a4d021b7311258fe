package workflows

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
)

// webhookDBSlack is added to the HTTP timeout for the attempt's database reads and writes.
const webhookDBSlack = 20 * time.Second

// WebhookDeliveryWorkflow delivers one event to one endpoint. It is a single
// DeliverWebhook activity that Temporal retries with exponential backoff
// (WebhookPolicy: 10 s doubling up to 1 h apart, for 3 days): retries add no
// history events, so the history stays a dozen events however many attempts
// it takes. Every attempt is logged by the activity in webhook_attempts.
//
// The refund workflow starts it as an abandoned child, so a slow or dead
// endpoint never delays a refund; the reconciler and redeliveries start it
// directly.
func WebhookDeliveryWorkflow(ctx workflow.Context, d activities.Delivery) (activities.DeliveryResult, error) {
	var p activities.WebhookPolicy
	if err := workflow.ExecuteLocalActivity(localCtx(ctx), a.WebhookDeliveryPolicy).Get(ctx, &p); err != nil {
		return activities.DeliveryResult{}, fmt.Errorf("read webhook policy: %w", err)
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    p.AttemptTimeout + webhookDBSlack,
		ScheduleToCloseTimeout: p.GiveUpAfter,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        p.InitialInterval,
			BackoffCoefficient:     p.BackoffCoefficient,
			MaximumInterval:        p.MaximumInterval,
			NonRetryableErrorTypes: []string{activities.ErrTypeWebhookInvalid},
		},
	})
	log := workflow.GetLogger(ctx)
	var res activities.DeliveryResult
	if err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, d).Get(ctx, &res); err != nil {
		log.Error("webhook delivery gave up", "eventId", d.EventID, "endpointId", d.EndpointID, "error", err)
		return res, fmt.Errorf("deliver event %s to endpoint %s: %w", d.EventID, d.EndpointID, err)
	}
	log.Info("webhook delivery ended", "eventId", d.EventID, "endpointId", d.EndpointID, "outcome", res.Outcome)
	return res, nil
}

// WebhookRedeliveryID is the workflow id of a redelivery: the delivery's
// own id with a unique suffix, so it never collides with the first delivery
// or another redelivery.
func WebhookRedeliveryID(eventID, endpointID, nonce uuid.UUID) string {
	return WebhookWorkflowID(eventID, endpointID) + "-redeliver-" + nonce.String()
}

// WebhookStartOptions are the options of a delivery workflow started from
// outside a workflow (a dispatch, a repair, a redelivery). A delivery
// whose id exists, running or closed, is reported, not started again.
func WebhookStartOptions(workflowID, taskQueue string, d activities.Delivery) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                                       workflowID,
		TaskQueue:                                taskQueue,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		Memo:                                     map[string]any{"eventId": d.EventID.String(), "endpointId": d.EndpointID.String()},
	}
}
