package workflows_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// beforeSubmit are the moments before the refund is sent at which a cancel
// must release it.
var beforeSubmit = []struct {
	name  string
	setup func(h *harness)
}{
	{"awaiting approval", func(h *harness) { h.plan.RequiresApproval = true }},
	{"while beginning", func(h *harness) { h.beginDelay = 5 * time.Second }},
}

func TestRefundCancelUpdateBeforeSubmit(t *testing.T) {
	for _, tc := range beforeSubmit {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			h.finalDeliveries = deliveries(1)
			u := h.updateAt(time.Second, workflows.UpdateCancel, workflows.Decision{Actor: "ops"})

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			require.True(t, u.accepted)
			require.False(t, u.rejected)
			require.True(t, u.completed)
			require.NoError(t, u.err)
			require.Equal(t, string(refund.StatusCanceled), u.value)
			o := h.outcome()
			require.Equal(t, refund.StatusCanceled, o.Status)
			require.Equal(t, "canceled", o.FailureCode)
			require.Equal(t, 0, o.Attempts)
			h.calls("MarkProcessing", 0)
			h.calls("SubmitRefund", 0)
			require.ElementsMatch(t, childIDs(h.finalDeliveries...), h.handedOver())
			st := h.result()
			require.Equal(t, refund.StatusCanceled, st.Status)
			require.Nil(t, st.SubmittedAt)
			require.Equal(t, []refund.Status{refund.StatusCanceled}, h.statusSA)
		})
	}
}

func TestRefundCancelUpdateRejectedOnceSubmitted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
	}{
		{"awaiting outcome", func(h *harness) {
			asyncPlan(h)
			h.eventAt(time.Minute, providers.Result{Status: providers.StatusSucceeded})
		}},
		{"stuck", func(h *harness) {
			h.onSubmit(append(repeat(fail(errTransient), 3), ok(providers.StatusSucceeded, "re_1"))...)
			h.signalAt(time.Minute, workflows.SignalRetry, "ops")
		}},
		{"being sent", func(h *harness) {
			h.submitDelay = 3 * time.Second
			h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			u := h.updateAt(2*time.Second, workflows.UpdateCancel, workflows.Decision{Actor: "ops"})

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			require.True(t, u.rejected)
			require.False(t, u.accepted)
			require.ErrorContains(t, u.rejectErr, "only a refund not yet sent can be canceled")
			o := h.outcome()
			require.Equal(t, refund.StatusSucceeded, o.Status)
			require.Equal(t, refund.StatusSucceeded, h.result().Status)
		})
	}
}

func TestRefundApproval(t *testing.T) {
	h := newHarness(t)
	h.plan.RequiresApproval = true
	h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
	waiting := h.queryAt(30 * time.Second)
	approve := h.updateAt(time.Minute, workflows.UpdateApprove, workflows.Decision{Actor: "alice"})
	again := h.updateAt(time.Minute, workflows.UpdateApprove, workflows.Decision{Actor: "bob"})

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	require.Equal(t, workflows.StepAwaitingApproval, waiting.Step)
	require.Equal(t, refund.StatusPending, waiting.Status)
	h.calls("MarkProcessing", 1)
	h.calls("SubmitRefund", 1)
	require.True(t, approve.accepted)
	require.True(t, approve.completed)
	require.NoError(t, approve.err)
	require.True(t, again.rejected, "a refund is approved once")
	require.ErrorContains(t, again.rejectErr, "not awaiting approval")
	o := h.outcome()
	require.Equal(t, refund.StatusSucceeded, o.Status)
	st := h.result()
	require.True(t, hasNote(st, "approved by alice"), "timeline: %+v", st.Timeline)
	require.False(t, hasNote(st, "approved by bob"))
	require.False(t, st.SubmittedAt.Before(h.start.Add(time.Minute)), "sent only after approval")
}

func TestRefundApprovalUpdatesRejectedWhenNotAwaiting(t *testing.T) {
	h := newHarness(t)
	asyncPlan(h)
	approve := h.updateAt(2*time.Second, workflows.UpdateApprove, workflows.Decision{Actor: "alice"})
	reject := h.updateAt(2*time.Second, workflows.UpdateReject, workflows.Decision{Actor: "alice"})
	h.eventAt(time.Minute, providers.Result{Status: providers.StatusSucceeded})

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	require.True(t, approve.rejected)
	require.True(t, reject.rejected)
	require.Equal(t, refund.StatusSucceeded, h.outcome().Status)
}

func TestRefundApprovalRejected(t *testing.T) {
	h := newHarness(t)
	h.plan.RequiresApproval = true
	h.finalDeliveries = deliveries(2)
	reject := h.updateAt(time.Minute, workflows.UpdateReject, workflows.Decision{Actor: "bob", Reason: "too large"})

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	require.True(t, reject.accepted)
	require.NoError(t, reject.err)
	o := h.outcome()
	require.Equal(t, refund.StatusCanceled, o.Status)
	require.Equal(t, "approval.rejected", o.FailureCode)
	require.Equal(t, "rejected by bob: too large", o.FailureMessage)
	require.Equal(t, 0, o.Attempts)
	h.calls("MarkProcessing", 0)
	h.calls("SubmitRefund", 0)
	require.ElementsMatch(t, childIDs(h.finalDeliveries...), h.handedOver())
	st := h.result()
	require.Equal(t, refund.StatusCanceled, st.Status)
	require.Equal(t, "rejected by bob: too large", st.LastError)
}

// Workflow cancellation before the refund is sent releases it (the CANCELED
// finalize runs on a disconnected context).
func TestRefundWorkflowCanceledBeforeSubmit(t *testing.T) {
	for _, tc := range beforeSubmit {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			h.plan.Deliveries = deliveries(1)
			h.finalDeliveries = deliveries(1)
			h.at(time.Second, h.env.CancelWorkflow)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			o := h.outcome()
			require.Equal(t, refund.StatusCanceled, o.Status)
			require.Equal(t, "canceled", o.FailureCode)
			h.calls("MarkProcessing", 0)
			h.calls("SubmitRefund", 0)
			require.ElementsMatch(t, childIDs(append(h.plan.Deliveries, h.finalDeliveries...)...), h.handedOver(),
				"webhooks are started even though the workflow was canceled")
			require.Equal(t, refund.StatusCanceled, h.query().Status)
			require.Equal(t, workflows.StepDone, h.query().Step)
		})
	}
}

// Once the refund may exist at the provider, workflow cancellation is
// ignored: it is never released, only finalized by the provider's answer.
func TestRefundWorkflowCanceledAfterSubmit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
	}{
		{"awaiting outcome", func(h *harness) {
			asyncPlan(h)
			h.eventAt(time.Minute, providers.Result{Status: providers.StatusSucceeded})
		}},
		{"being sent", func(h *harness) {
			h.submitDelay = 3 * time.Second
			h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
		}},
		{"marking processing", func(h *harness) {
			h.markDelay = 5 * time.Second
			h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
		}},
		{"stuck", func(h *harness) {
			h.onSubmit(append(repeat(fail(errTransient), 3), ok(providers.StatusSucceeded, "re_1"))...)
			h.signalAt(time.Minute, workflows.SignalRetry, "ops")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			tc.setup(h)
			h.at(time.Second, h.env.CancelWorkflow)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			h.calls("MarkProcessing", 1)
			o := h.outcome()
			require.Equal(t, refund.StatusSucceeded, o.Status, "never released once sent")
			require.Equal(t, refund.StatusSucceeded, h.query().Status)
		})
	}
}

// A cancel update waiting for the outcome must not keep the workflow open
// when the run fails.
func TestRefundCancelUpdateWhenFinalizeFails(t *testing.T) {
	h := newHarness(t)
	h.plan.RequiresApproval = true
	h.finalizeErr = temporal.NewNonRetryableApplicationError("refund is PROCESSING", activities.ErrTypeRule, nil)
	u := h.updateAt(time.Second, workflows.UpdateCancel, workflows.Decision{Actor: "ops"})

	h.run(workflows.RefundInput{RefundID: h.id})

	require.True(t, u.accepted)
	require.True(t, u.completed)
	require.Error(t, u.err)
	err := h.env.GetWorkflowError()
	require.ErrorContains(t, err, "finalize refund")
	h.calls("FinalizeRefund", 1)
	h.calls("SubmitRefund", 0)
}
