package worker

import sdkworker "go.temporal.io/sdk/worker"

// registerWebhooks registers the webhook delivery workflow.
func registerWebhooks(r sdkworker.WorkflowRegistry) {}
