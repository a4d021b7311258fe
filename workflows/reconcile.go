package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
)

// ReconcileWorkflow runs on a Temporal Schedule: it starts the workflow of
// any refund left without one (a crash between the DB write and the start)
// and re-dispatches webhook events whose dispatch was lost.
func ReconcileWorkflow(ctx workflow.Context) (activities.ReconcileReport, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy:         &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
	})
	var report activities.ReconcileReport
	err := workflow.ExecuteActivity(ctx, a.Reconcile).Get(ctx, &report)
	return report, err
}
