package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
)

// webhookDBSlack is added to the HTTP timeout for the attempt's database reads and writes.
const webhookDBSlack = 20 * time.Second

// Slices of a webhook dispatcher: each DispatchWebhooks activity runs for
// dispatchSlice, and a run continues as new after slicesPerRun of them, so
// its history stays small however long it lives.
const (
	dispatchSlice = 10 * time.Minute
	slicesPerRun  = 50
)

// WebhookDispatcherWorkflow is one webhook dispatcher: it runs the
// DispatchWebhooks activity, which delivers the outbox, forever, slice
// after slice. The activity heartbeats, so when its worker dies Temporal
// gives it to another worker of the webhooks task queue within
// dispatcherHeartbeat; it is retried without end (a database down stops
// deliveries, never the dispatcher). The webhooks worker and the
// reconciler start the dispatchers that do not run
// (refunds.TemporalGateway.EnsureWebhookDispatchers).
func WebhookDispatcherWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: dispatchSlice + 2*time.Minute,
		HeartbeatTimeout:    dispatcherHeartbeat,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute},
	})
	var run activities.DispatchReport
	since := workflow.Now(ctx)
	workflow.SetCurrentDetails(ctx, DispatcherDetails(0, since, run))
	for slice := range slicesPerRun {
		var rep activities.DispatchReport
		if err := workflow.ExecuteActivity(ctx, a.DispatchWebhooks, dispatchSlice).Get(ctx, &rep); err != nil {
			return fmt.Errorf("dispatch webhooks: %w", err)
		}
		run = run.Add(rep)
		workflow.SetCurrentDetails(ctx, DispatcherDetails(slice+1, since, run))
	}
	return workflow.NewContinueAsNewError(ctx, WebhookDispatcherWorkflow)
}

// dispatcherHeartbeat is how long a dispatcher's worker may be silent
// before Temporal hands the dispatcher to another worker.
const dispatcherHeartbeat = 10 * time.Second

// WebhookDeliveryWorkflow delivers one event to one endpoint, as the
// refund workflow of the previous release started it (one per event and
// endpoint); executions of it still running finish. It is a single
// DeliverWebhook activity that Temporal retries with exponential backoff
// (WebhookPolicy: 10 s doubling up to 1 h apart, for 3 days): retries add no
// history events, so the history stays a dozen events however many attempts
// it takes. Every attempt is logged by the activity in webhook_attempts.
//
// The refund workflow started it as an abandoned child.
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
	// Attempts show as the pending activity's attempt count.
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("Webhook delivery of event %s to endpoint %s", d.EventID, d.EndpointID))
	var res activities.DeliveryResult
	if err := workflow.ExecuteActivity(ctx, a.DeliverWebhook, d).Get(ctx, &res); err != nil {
		log.Error("webhook delivery gave up", "eventId", d.EventID, "endpointId", d.EndpointID, "error", err)
		return res, fmt.Errorf("deliver event %s to endpoint %s: %w", d.EventID, d.EndpointID, err)
	}
	log.Info("webhook delivery ended", "eventId", d.EventID, "endpointId", d.EndpointID, "outcome", res.Outcome)
	return res, nil
}

// DispatcherDetails are a dispatcher's current details in Temporal UI: the
// slices of this run and what they did (the slice in progress shows in its
// activity's heartbeat details).
func DispatcherDetails(slices int, since time.Time, r activities.DispatchReport) string {
	return fmt.Sprintf("Webhook dispatcher: delivers the outbox (webhook_deliveries)\n\n"+
		"%d of %d slices of this run since %s: **%d attempts**, %d delivered, %d to retry, %d failed, %d skipped",
		slices, slicesPerRun, since.UTC().Format(time.RFC3339), r.Attempts, r.Delivered, r.Retrying, r.Failed, r.Skipped)
}

// WebhookDispatcherStartOptions start dispatcher n of a webhooks task
// queue, or find it running: starting it again is a no-op.
func WebhookDispatcherStartOptions(webhookTaskQueue string, n int) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       WebhookDispatcherID(webhookTaskQueue, n),
		TaskQueue:                webhookTaskQueue,
		StaticSummary:            fmt.Sprintf("Webhook dispatcher %d · %s", n, webhookTaskQueue),
		StaticDetails:            "Claims due deliveries from the webhook outbox and posts them; see docs/webhooks.md.",
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
	}
}
