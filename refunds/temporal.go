package refunds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// Gateway is the only way Backflow talks to Temporal about refunds and
// their webhook deliveries: the service, the reconciler's activities and
// the tests (with a fake) all go through it.
type Gateway interface {
	activities.Workflows // starts, resumes and lists (the reconciler's part)
	// SignalProviderEvent hands a provider's answer to the refund's
	// workflow, resuming one that closed without finishing the refund;
	// refund.ErrAlreadyStarted when its last run completed.
	SignalProviderEvent(ctx context.Context, r refund.Refund, res providers.Result) error
	// SignalRetry asks the workflow to re-drive the refund now;
	// refund.ErrWorkflowNotRunning when it does not run.
	SignalRetry(ctx context.Context, refundID uuid.UUID, actor string) error
	// Update runs a workflow update and waits for it; an update the
	// workflow refused is an *UpdateRejected.
	Update(ctx context.Context, refundID uuid.UUID, name string, arg any) error
	// Describe is the refund's workflow execution and its live status query.
	Describe(ctx context.Context, refundID uuid.UUID) workflows.Execution
	CheckHealth(ctx context.Context) error
}

// UpdateRejected is a workflow update the workflow's validator refused.
type UpdateRejected struct{ Reason string }

func (e *UpdateRejected) Error() string { return "update rejected: " + e.Reason }

// Deadlines of the gateway's calls made for an API request.
const (
	queryDeadline  = 3 * time.Second
	updateDeadline = 10 * time.Second
)

// TemporalGateway is the Gateway on a Temporal client: refunds on
// TaskQueue, webhook dispatchers (WebhookDispatchers of them, at least one)
// on WebhookTaskQueue.
type TemporalGateway struct {
	Client             client.Client
	TaskQueue          string
	WebhookTaskQueue   string
	WebhookDispatchers int
}

var _ Gateway = TemporalGateway{}

// StartRefund starts the refund's workflow with the options every start uses.
func (g TemporalGateway) StartRefund(ctx context.Context, r refund.Refund) error {
	_, err := g.Client.ExecuteWorkflow(ctx, workflows.StartOptions(r, g.TaskQueue), workflows.RefundWorkflowName,
		workflows.RefundInput{RefundID: r.ID})
	return started(err)
}

// ResumeRefund starts a new run after a run that closed without finishing the refund.
func (g TemporalGateway) ResumeRefund(ctx context.Context, r refund.Refund) error {
	_, err := g.Client.ExecuteWorkflow(ctx, workflows.ResumeOptions(r, g.TaskQueue), workflows.RefundWorkflowName,
		workflows.RefundInput{RefundID: r.ID})
	return started(err)
}

// SignalProviderEvent signals the workflow, or starts a new run with the
// signal after a run that closed without finishing the refund.
func (g TemporalGateway) SignalProviderEvent(ctx context.Context, r refund.Refund, res providers.Result) error {
	_, err := g.Client.SignalWithStartWorkflow(ctx, workflows.RefundWorkflowID(r.ID), workflows.SignalProviderEvent,
		workflows.ProviderEvent{Result: res}, workflows.SignalResumeOptions(r, g.TaskQueue), workflows.RefundWorkflowName,
		workflows.RefundInput{RefundID: r.ID})
	return started(err)
}

// SignalRetry signals retry.
func (g TemporalGateway) SignalRetry(ctx context.Context, refundID uuid.UUID, actor string) error {
	err := g.Client.SignalWorkflow(ctx, workflows.RefundWorkflowID(refundID), "", workflows.SignalRetry, actor)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return refund.ErrWorkflowNotRunning
	}
	return unavailable(err)
}

// Update runs an update to completion; the one place update errors map.
func (g TemporalGateway) Update(ctx context.Context, refundID uuid.UUID, name string, arg any) error {
	ctx, cancel := context.WithTimeout(ctx, updateDeadline)
	defer cancel()
	handle, err := g.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.RefundWorkflowID(refundID), UpdateName: name, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, nil)
	}
	var notFound *serviceerror.NotFound
	var rejected *temporal.ApplicationError
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &rejected):
		return &UpdateRejected{Reason: rejected.Message()}
	case errors.As(err, &notFound):
		return refund.ErrWorkflowNotRunning
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return refund.Unavailable("the refund's workflow did not answer in time (is a worker running?); retry the same call", err)
	}
	return unavailable(fmt.Errorf("%s update: %w", name, err))
}

// Describe describes the refund's workflow and asks it for its status.
func (g TemporalGateway) Describe(ctx context.Context, refundID uuid.UUID) workflows.Execution {
	wf := workflows.Execution{ID: workflows.RefundWorkflowID(refundID)}
	ctx, cancel := context.WithTimeout(ctx, queryDeadline)
	defer cancel()
	desc, err := g.Client.DescribeWorkflowExecution(ctx, wf.ID, "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		wf.Note = "workflow not found: it never started (the reconciler starts PENDING refunds without one) or its history is past the namespace's retention"
		return wf
	case err != nil:
		wf.Note = "temporal unavailable: " + err.Error()
		return wf
	}
	info := desc.GetWorkflowExecutionInfo()
	wf.RunID = info.GetExecution().GetRunId()
	wf.ExecutionStatus = info.GetStatus().String() // as Temporal UI and ExecutionStatus="Running" queries spell it
	if t := info.GetStartTime(); t != nil {
		st := t.AsTime().UTC()
		wf.StartTime = &st
	}
	if t := info.GetCloseTime(); t != nil {
		ct := t.AsTime().UTC()
		wf.CloseTime = &ct
	}
	wf.HistoryLength = info.GetHistoryLength()
	val, err := g.Client.QueryWorkflow(ctx, wf.ID, "", workflows.QueryStatus)
	if err == nil {
		var st workflows.RefundState
		if err = val.Get(&st); err == nil {
			wf.Status = &st
			return wf
		}
	}
	var deadline *serviceerror.DeadlineExceeded
	if errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) {
		wf.Note = fmt.Sprintf("no worker answered the status query within %s: is a worker polling the task queue?", queryDeadline)
	} else {
		wf.Note = "status query failed: " + err.Error()
	}
	return wf
}

// EnsureWebhookDispatchers starts every webhook dispatcher not running;
// starting a running one is a no-op.
func (g TemporalGateway) EnsureWebhookDispatchers(ctx context.Context) error {
	for n := range max(g.WebhookDispatchers, 1) {
		_, err := g.Client.ExecuteWorkflow(ctx, workflows.WebhookDispatcherStartOptions(g.WebhookTaskQueue, n),
			workflows.WebhookDispatcherWorkflowName)
		if err != nil {
			return unavailable(fmt.Errorf("start webhook dispatcher %d: %w", n, err))
		}
	}
	return nil
}

// BrokenRuns pages through visibility for refunds whose last run closed
// without finishing them since a time.
func (g TemporalGateway) BrokenRuns(ctx context.Context, since time.Time, limit int) ([]uuid.UUID, error) {
	seen := map[uuid.UUID]bool{}
	var out []uuid.UUID
	var page []byte
	for len(out) < limit {
		resp, err := g.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: workflows.BrokenRunsQuery(g.TaskQueue, since), PageSize: int32(limit), NextPageToken: page,
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

// RunClosed reports whether a refund's workflow is not running (any close
// status); a workflow Temporal does not know is closed too.
func (g TemporalGateway) RunClosed(ctx context.Context, refundID uuid.UUID) (bool, error) {
	desc, err := g.Client.DescribeWorkflowExecution(ctx, workflows.RefundWorkflowID(refundID), "")
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("describe workflow of refund %s: %w", refundID, unavailable(err))
	}
	return desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, nil
}

// CheckHealth asks the frontend whether it serves.
func (g TemporalGateway) CheckHealth(ctx context.Context) error {
	_, err := g.Client.CheckHealth(ctx, &client.CheckHealthRequest{})
	return unavailable(err)
}

// started maps a start's "a workflow with this id exists" to
// refund.ErrAlreadyStarted.
func started(err error) error {
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &already) {
		return fmt.Errorf("%w: %w", refund.ErrAlreadyStarted, err)
	}
	return unavailable(err)
}

// unavailable marks an error of Temporal not answering as refund.ErrUnavailable.
func unavailable(err error) error {
	var unavail *serviceerror.Unavailable
	var deadline *serviceerror.DeadlineExceeded
	if err != nil && (errors.As(err, &unavail) || errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded)) {
		return refund.Unavailable("Temporal is unavailable; retry later", err)
	}
	return err
}
