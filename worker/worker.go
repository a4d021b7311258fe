// Package worker wires Backflow's workflows and activities to a Temporal
// worker, registers the search attributes and the reconciler schedule.
package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// New returns a worker on taskQueue with every workflow and activity registered.
func New(c client.Client, taskQueue string, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	if acts.StartRefund == nil {
		acts.StartRefund = Starter(c, taskQueue)
	}
	if acts.StartDelivery == nil {
		acts.StartDelivery = DeliveryStarter(c, taskQueue)
	}
	if acts.ResumeRefund == nil {
		acts.ResumeRefund = Resumer(c, taskQueue)
	}
	if acts.BrokenRuns == nil {
		acts.BrokenRuns = BrokenRuns(c, taskQueue)
	}
	if acts.RunClosed == nil {
		acts.RunClosed = RunClosed(c)
	}
	w := sdkworker.New(c, taskQueue, opts)
	Register(w, acts)
	return w
}

// Register registers every workflow and activity on a worker.
func Register(r sdkworker.Registry, acts *activities.Activities) {
	RegisterWorkflows(r)
	r.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
}

// RegisterWorkflows registers the workflows by their public names, on a
// worker or on a replayer.
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.RefundWorkflow, workflow.RegisterOptions{Name: workflows.RefundWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReconcileWorkflow, workflow.RegisterOptions{Name: workflows.ReconcileWorkflowName})
	registerWebhooks(r)
}

// Starter starts refund workflows with the shared start options.
func Starter(c client.Client, taskQueue string) activities.StartRefundWorkflow {
	return func(ctx context.Context, r refund.Refund) error {
		_, err := c.ExecuteWorkflow(ctx, workflows.StartOptions(r, taskQueue), workflows.RefundWorkflowName,
			workflows.RefundInput{RefundID: r.ID})
		return err
	}
}

// Resumer starts a new run of a refund whose last run closed without
// finishing it; a running or completed workflow is left alone
// (WorkflowExecutionAlreadyStarted).
func Resumer(c client.Client, taskQueue string) activities.StartRefundWorkflow {
	return func(ctx context.Context, r refund.Refund) error {
		_, err := c.ExecuteWorkflow(ctx, workflows.ResumeOptions(r, taskQueue), workflows.RefundWorkflowName,
			workflows.RefundInput{RefundID: r.ID})
		return err
	}
}

// BrokenRuns lists refunds whose last run closed unfinished since a time,
// from Temporal's visibility, at most limit.
func BrokenRuns(c client.Client, taskQueue string) func(ctx context.Context, since time.Time, limit int) ([]uuid.UUID, error) {
	return func(ctx context.Context, since time.Time, limit int) ([]uuid.UUID, error) {
		seen := map[uuid.UUID]bool{}
		var out []uuid.UUID
		var page []byte
		for len(out) < limit {
			resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: workflows.BrokenRunsQuery(taskQueue, since), PageSize: int32(limit), NextPageToken: page,
			})
			if err != nil {
				return out, fmt.Errorf("list broken refund runs: %w", err)
			}
			for _, e := range resp.GetExecutions() {
				id, err := uuid.Parse(strings.TrimPrefix(e.GetExecution().GetWorkflowId(), "refund-"))
				if err == nil && !seen[id] && len(out) < limit {
					seen[id] = true
					out = append(out, id)
				}
			}
			if page = resp.GetNextPageToken(); len(page) == 0 {
				break
			}
		}
		return out, nil
	}
}

// RunClosed reports whether a refund's workflow is no longer running (any
// close status); a workflow Temporal does not know is closed too.
func RunClosed(c client.Client) func(ctx context.Context, refundID uuid.UUID) (bool, error) {
	return func(ctx context.Context, refundID uuid.UUID) (bool, error) {
		desc, err := c.DescribeWorkflowExecution(ctx, workflows.RefundWorkflowID(refundID), "")
		var notFound *serviceerror.NotFound
		if errors.As(err, &notFound) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("describe workflow of refund %s: %w", refundID, err)
		}
		return desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
	}
}

// DeliveryStarter starts webhook delivery workflows with the id the refund
// workflow uses for its children, so a delivery is never started twice.
func DeliveryStarter(c client.Client, taskQueue string) func(context.Context, activities.Delivery) error {
	return func(ctx context.Context, d activities.Delivery) error {
		_, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID:                    workflows.WebhookWorkflowID(d.EventID, d.EndpointID),
			TaskQueue:             taskQueue,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
			// A running delivery is reported, so the caller counts only new ones.
			WorkflowExecutionErrorWhenAlreadyStarted: true,
		}, workflows.WebhookWorkflowName, d)
		return err
	}
}

// EnsureSearchAttributes registers Backflow's custom search attributes on the
// namespace; already registered ones are left alone.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, k := range workflows.SearchAttributeKeys {
		if _, ok := resp.GetCustomAttributes()[k.GetName()]; !ok {
			missing[k.GetName()] = indexedType(k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) && !strings.Contains(err.Error(), "already") {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

func indexedType(k temporal.SearchAttributeKey) enumspb.IndexedValueType {
	switch k.GetValueType() {
	case enumspb.INDEXED_VALUE_TYPE_BOOL:
		return enumspb.INDEXED_VALUE_TYPE_BOOL
	case enumspb.INDEXED_VALUE_TYPE_INT:
		return enumspb.INDEXED_VALUE_TYPE_INT
	}
	return enumspb.INDEXED_VALUE_TYPE_KEYWORD
}

// EnsureReconcileSchedule creates the reconciler's Temporal Schedule, or
// updates its interval when it exists.
func EnsureReconcileSchedule(ctx context.Context, c client.Client, taskQueue string, every time.Duration) error {
	id := workflows.ReconcileScheduleID(taskQueue)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err := c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID: id, Workflow: workflows.ReconcileWorkflowName, TaskQueue: taskQueue,
			WorkflowRunTimeout: 5 * time.Minute,
		},
	})
	if errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		// Processes starting together (API and worker) race on the update's
		// conflict token: the loser tries again on a fresh description.
		for attempt := 1; ; attempt++ {
			err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
				DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
					in.Description.Schedule.Spec = &spec
					return &client.ScheduleUpdate{Schedule: &in.Description.Schedule}, nil
				},
			})
			if err == nil || attempt == 3 {
				return err
			}
		}
	}
	if err != nil {
		return fmt.Errorf("create reconcile schedule: %w", err)
	}
	return nil
}
