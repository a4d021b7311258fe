// Package worker wires Backflow's workflows and activities to a Temporal
// worker, registers the search attributes and the reconciler schedule.
package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/workflows"
)

// New returns the refunds worker on taskQueue: refund workflows, the
// reconciler, and the delivery workflows of the previous release still
// running. The activities start workflows through the refunds gateway
// (webhook dispatchers on config.WebhookTaskQueueFor(taskQueue)) unless
// they have their own. Every worker has the logging Interceptor.
func New(c client.Client, taskQueue string, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	if acts.Workflows == nil {
		acts.Workflows = refunds.TemporalGateway{Client: c, TaskQueue: taskQueue, WebhookTaskQueue: config.WebhookTaskQueueFor(taskQueue)}
	}
	opts.Interceptors = append(opts.Interceptors, Interceptor())
	w := sdkworker.New(c, taskQueue, opts)
	registerRefunds(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	return w
}

// NewWebhooks returns the webhooks worker on webhookTaskQueue: it runs the
// webhook dispatchers (WebhookDispatcherWorkflow and its DispatchWebhooks
// activity), apart from the refunds worker so refunds never wait behind
// deliveries. Start the dispatchers with EnsureWebhookDispatchers.
func NewWebhooks(c client.Client, webhookTaskQueue string, acts *activities.Activities, opts sdkworker.Options) sdkworker.Worker {
	opts.Interceptors = append(opts.Interceptors, Interceptor())
	w := sdkworker.New(c, webhookTaskQueue, opts)
	registerWebhooks(w)
	w.RegisterActivityWithOptions(acts, activity.RegisterOptions{})
	return w
}

// RegisterWorkflows registers every workflow by its public name, on a
// replayer.
func RegisterWorkflows(r sdkworker.WorkflowRegistry) {
	registerRefunds(r)
	registerWebhooks(r)
}

func registerRefunds(r sdkworker.WorkflowRegistry) {
	r.RegisterWorkflowWithOptions(workflows.RefundWorkflow, workflow.RegisterOptions{Name: workflows.RefundWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ReconcileWorkflow, workflow.RegisterOptions{Name: workflows.ReconcileWorkflowName})
	// Delivery workflows the previous release started, until they finish.
	r.RegisterWorkflowWithOptions(workflows.WebhookDeliveryWorkflow, workflow.RegisterOptions{Name: workflows.WebhookWorkflowName})
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
