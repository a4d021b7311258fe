package worker

import (
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/workflows"
)

// registerWebhooks registers the webhook dispatcher workflow. Its
// activity (DispatchWebhooks) is a method of activities.Activities and is
// registered with the others.
func registerWebhooks(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.WebhookDispatcherWorkflow, workflow.RegisterOptions{Name: workflows.WebhookDispatcherWorkflowName})
}
