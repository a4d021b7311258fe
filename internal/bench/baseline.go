package bench

import (
	"context"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// Baseline names: the reference workflow the refund path is compared with.
const (
	BaselineWorkflowName = "BenchBaselineWorkflow"
	BaselineActivityName = "BenchNoop"
	BaselineTaskQueue    = "backflow-bench-baseline"
	// BaselineActivities is how many regular activities the baseline runs in
	// sequence: as many as the refund path has steps (begin, mark processing,
	// submit, finalize).
	BaselineActivities = 4
)

// BaselineWorkflow runs BaselineActivities no-op regular activities one after
// the other: the cost of Temporal alone for a four-step workflow.
func BaselineWorkflow(ctx workflow.Context) error {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	for i := 0; i < BaselineActivities; i++ {
		if err := workflow.ExecuteActivity(ctx, BaselineActivityName, i).Get(ctx, nil); err != nil {
			return err
		}
	}
	return nil
}

// noop is the baseline's activity: it does nothing.
func noop(context.Context, int) error { return nil }

// BaselineWorkerOptions are the options of the baseline worker. They must stay
// those of `backflow worker` (cmd/backflow/main.go, runWorker) so the
// comparison is fair: change both together.
func BaselineWorkerOptions() sdkworker.Options { return sdkworker.Options{} }

// NewBaselineWorker returns a worker on taskQueue with the baseline registered.
func NewBaselineWorker(c client.Client, taskQueue string) sdkworker.Worker {
	w := sdkworker.New(c, taskQueue, BaselineWorkerOptions())
	w.RegisterWorkflowWithOptions(BaselineWorkflow, workflow.RegisterOptions{Name: BaselineWorkflowName})
	w.RegisterActivityWithOptions(noop, activity.RegisterOptions{Name: BaselineActivityName})
	return w
}
