package worker

import (
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/workflows"
)

// registerWebhooks registers the webhook delivery workflow. Its activities
// (DeliverWebhook, WebhookDeliveryPolicy) are methods of
// activities.Activities and are registered with the others.
func registerWebhooks(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.WebhookDeliveryWorkflow, workflow.RegisterOptions{Name: workflows.WebhookWorkflowName})
}
