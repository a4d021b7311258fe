package workflows_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// The change id of the webhook outbox (workflows.changeWebhookOutbox).
const changeWebhookOutbox = "webhook-outbox"

// TestRefundWorkflowLeavesWebhooksToTheOutbox: today's local activities
// queue a refund's webhooks with its events and return none, so the
// workflow starts nothing and queues nothing itself.
func TestRefundWorkflowLeavesWebhooksToTheOutbox(t *testing.T) {
	h := newHarness(t)
	h.run(workflows.RefundInput{RefundID: h.id})
	h.env.AssertExpectations(t)
	require.Equal(t, refund.StatusSucceeded, h.outcome().Status)
	require.Empty(t, h.children)
	require.Empty(t, h.queued)
	h.calls("QueueDeliveries", 0)
}

// TestRefundWorkflowQueuesDeliveriesOfThePreviousRelease: a run that meets
// deliveries returned by a worker of the previous release (its local
// activity ran before the upgrade) queues them in the outbox in one local
// activity per result, whatever their number, and starts no child.
func TestRefundWorkflowQueuesDeliveriesOfThePreviousRelease(t *testing.T) {
	h := newHarness(t)
	h.plan.Deliveries = deliveries(3)
	h.finalDeliveries = deliveries(20)
	h.run(workflows.RefundInput{RefundID: h.id})
	h.env.AssertExpectations(t)
	require.Empty(t, h.children)
	require.ElementsMatch(t, append(h.plan.Deliveries, h.finalDeliveries...), h.queued)
	h.calls("QueueDeliveries", 2)
}

// TestRefundWorkflowReplaysTheChildFanOut: an execution that passed this
// point before the outbox (no version marker) starts one abandoned child
// per delivery, as its history says.
func TestRefundWorkflowReplaysTheChildFanOut(t *testing.T) {
	h := newHarness(t)
	h.env.OnGetVersion(changeWebhookOutbox, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	h.plan.Deliveries = deliveries(2)
	h.finalDeliveries = deliveries(3)
	h.run(workflows.RefundInput{RefundID: h.id})
	h.env.AssertExpectations(t)
	require.Empty(t, h.queued)
	require.ElementsMatch(t, childIDs(append(h.plan.Deliveries, h.finalDeliveries...)...), h.children)
}

// TestRecordedHistoryLengthIndependentOfEndpoints: in histories recorded
// from real runs (integration.TestWebhookCostIndependentOfEndpoints), a
// refund of a merchant with no endpoint, one, or three of which one is
// dead has the same number of events; the child-per-delivery history of
// the previous release, recorded with three endpoints, had many more.
func TestRecordedHistoryLengthIndependentOfEndpoints(t *testing.T) {
	length := func(name string) int {
		h, err := client.HistoryFromJSON(mustOpen(t, filepath.Join("testdata", name+".json")), client.HistoryJSONOptions{})
		require.NoError(t, err)
		return len(h.GetEvents())
	}
	none := length("refund_cardpay_endpoints_0")
	require.Equal(t, none, length("refund_cardpay_endpoints_1"), "one endpoint")
	require.Equal(t, none, length("refund_cardpay_endpoints_3"), "three endpoints, one dead")
	require.Greater(t, length("refund_cardpay_fanout_children_3"), none+20, "the previous release's fan-out, for scale")
}

// TestWebhookDispatcherRunsSlicesThenContinuesAsNew: a dispatcher runs
// DispatchWebhooks slice after slice, retrying a failed slice, and
// continues as new before its history grows large.
func TestWebhookDispatcherRunsSlicesThenContinuesAsNew(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{})
	calls := 0
	env.OnActivity(acts.DispatchWebhooks, mock.Anything, mock.Anything).Return(
		func(_ context.Context, slice time.Duration) (activities.DispatchReport, error) {
			calls++
			require.Positive(t, slice)
			if calls == 2 {
				return activities.DispatchReport{}, errors.New("database unavailable")
			}
			return activities.DispatchReport{Delivered: 1}, nil
		})
	env.ExecuteWorkflow(workflows.WebhookDispatcherWorkflow)
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	require.Equal(t, workflows.WebhookDispatcherWorkflowName, can.WorkflowType.Name)
	require.Greater(t, calls, 10, "slices before continuing as new, the failed one retried")
	// Temporal UI shows what the run's slices did.
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	require.Contains(t, md.GetCurrentDetails(), "50 of 50 slices of this run")
	require.Contains(t, md.GetCurrentDetails(), "**0 attempts**, 50 delivered")
}

func TestDispatcherStartOptionsExplainThemselves(t *testing.T) {
	o := workflows.WebhookDispatcherStartOptions("backflow-refunds-webhooks", 1)
	require.Equal(t, "Webhook dispatcher 1 · backflow-refunds-webhooks", o.StaticSummary)
	require.Contains(t, o.StaticDetails, "webhook outbox")
}
