package workflows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

func TestRefundAsyncProviderEvent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		event      providers.Result
		wantStatus refund.Status
		wantCode   string
	}{
		{"succeeded", providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_async"}, refund.StatusSucceeded, ""},
		{"failed", providers.Result{Status: providers.StatusFailed, FailureCode: "account_closed", FailureMessage: "closed"}, refund.StatusFailed, "account_closed"},
		{"declined", providers.Result{Status: providers.StatusDeclined, FailureCode: "limit"}, refund.StatusDeclined, "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			asyncPlan(h)
			h.finalDeliveries = deliveries(1)
			waiting := h.queryAt(2 * time.Second)
			// A non-final event keeps waiting; the final one ends the refund.
			h.eventAt(3*time.Second, providers.Result{Status: providers.StatusProcessing})
			h.eventAt(5*time.Second, tc.event)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			require.Equal(t, refund.StatusProcessing, waiting.Status)
			require.Equal(t, workflows.StepAwaitingOutcome, waiting.Step)
			require.Equal(t, "re_async", waiting.ProviderReference)
			require.NotNil(t, waiting.NextRetryAt)
			require.False(t, waiting.Stuck)

			h.calls("CheckRefund", 0) // the first poll would be at 10s
			o := h.outcome()
			require.Equal(t, tc.wantStatus, o.Status)
			require.Equal(t, tc.wantCode, o.FailureCode)
			require.Equal(t, tc.event.ProviderReference, o.ProviderReference)
			require.Equal(t, 1, o.Attempts)
			require.ElementsMatch(t, childIDs(h.finalDeliveries...), h.handedOver())
			st := h.result()
			require.Equal(t, tc.wantStatus, st.Status)
			require.Equal(t, workflows.StepDone, st.Step)
			require.Equal(t, "re_async", st.ProviderReference, "the reference from the first answer is kept")
		})
	}
}

func TestRefundAsyncPolling(t *testing.T) {
	declined := answer{res: providers.Result{Status: providers.StatusDeclined, FailureCode: "bank_refused"}}
	for _, tc := range []struct {
		name       string
		checks     []answer
		wantChecks int
		wantStatus refund.Status
		wantCode   string
		wantRef    string
	}{
		{"succeeds on second poll", []answer{ok(providers.StatusProcessing, ""), ok(providers.StatusSucceeded, "re_final")},
			2, refund.StatusSucceeded, "", "re_final"},
		// A poll activity exhausting its 3 attempts is recorded and polling goes on.
		{"poll errors then success", append(repeat(fail(errTransient), 3), ok(providers.StatusSucceeded, "re_final")),
			4, refund.StatusSucceeded, "", "re_final"},
		{"declined on poll", []answer{declined}, 1, refund.StatusDeclined, "bank_refused", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			asyncPlan(h)
			h.onCheck(tc.checks...)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			h.calls("CheckRefund", tc.wantChecks)
			for _, ref := range h.checkRefs {
				require.Equal(t, "re_async", ref, "polls use the provider reference")
			}
			o := h.outcome()
			require.Equal(t, tc.wantStatus, o.Status)
			require.Equal(t, tc.wantCode, o.FailureCode)
			require.Equal(t, tc.wantRef, o.ProviderReference)
			require.Equal(t, 1, o.Attempts)
			h.calls("SetStuck", 0)
			st := h.result()
			require.Equal(t, tc.wantStatus, st.Status)
			require.Equal(t, nonEmpty(tc.wantRef, "re_async"), st.ProviderReference)
			if tc.wantChecks == 4 {
				require.Contains(t, st.LastError, errTransient.Error(), "a failed poll is recorded")
			}
		})
	}
}

func TestRefundProcessingPastSLAFlaggedStuck(t *testing.T) {
	h := newHarness(t)
	asyncPlan(h)
	h.onCheck(ok(providers.StatusProcessing, "re_async"))
	before := h.queryAt(testPolicy.StuckAfter - time.Minute)
	after := h.queryAt(testPolicy.StuckAfter + 15*time.Minute)
	h.eventAt(testPolicy.StuckAfter+20*time.Minute, providers.Result{Status: providers.StatusSucceeded})

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	require.False(t, before.Stuck)
	require.True(t, after.Stuck)
	require.Equal(t, refund.StatusProcessing, after.Status)
	require.Equal(t, workflows.StepStuck, after.Step)
	require.Equal(t, []bool{true}, h.stuckSet)
	o := h.outcome()
	require.Equal(t, refund.StatusSucceeded, o.Status)
	st := h.result()
	require.False(t, st.Stuck)
	require.Equal(t, []bool{true, false}, h.stuckSA)
}

func TestRefundDuplicateProviderEventsFinalizeOnce(t *testing.T) {
	h := newHarness(t)
	asyncPlan(h)
	h.finalDeliveries = deliveries(1)
	h.finalizeDelay = 5 * time.Second
	event := func(status providers.Status) func() {
		return func() {
			h.env.SignalWorkflow(workflows.SignalProviderEvent, workflows.ProviderEvent{Result: providers.Result{Status: status}})
		}
	}
	// Duplicates in the same batch, then late ones while finalizing.
	h.at(5*time.Second, func() {
		event(providers.StatusSucceeded)()
		event(providers.StatusSucceeded)()
		event(providers.StatusProcessing)()
	})
	h.at(7*time.Second, event(providers.StatusSucceeded))
	h.at(8*time.Second, event(providers.StatusProcessing))

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	o := h.outcome()
	require.Equal(t, refund.StatusSucceeded, o.Status)
	h.calls("FinalizeRefund", 1)
	h.calls("CheckRefund", 0)
	require.Len(t, h.handedOver(), 1)
	st := h.result()
	require.Equal(t, refund.StatusSucceeded, st.Status)
	require.Equal(t, []refund.Status{refund.StatusProcessing, refund.StatusSucceeded}, h.statusSA)
}

func continuedInput(t *testing.T, err error) workflows.RefundInput {
	t.Helper()
	require.True(t, workflow.IsContinueAsNewError(err), "want continue-as-new, got %v", err)
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(err, &can))
	require.Equal(t, workflows.RefundWorkflowName, can.WorkflowType.Name)
	var in workflows.RefundInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &in))
	return in
}

func TestRefundContinuesAsNewAfterManyPolls(t *testing.T) {
	h := newHarness(t)
	h.plan.Policy.StuckAfter = 1000 * time.Hour
	asyncPlan(h)
	h.onCheck(ok(providers.StatusProcessing, "re_async"))

	h.run(workflows.RefundInput{RefundID: h.id})

	in := continuedInput(t, h.env.GetWorkflowError())
	h.calls("CheckRefund", 200)
	h.calls("SubmitRefund", 1)
	h.notFinalized()
	require.Equal(t, h.id, in.RefundID)
	require.NotNil(t, in.Resume)
	require.Equal(t, refund.StatusProcessing, in.Resume.Status)
	require.Equal(t, "re_async", in.Resume.ProviderReference)
	require.Equal(t, 1, in.Resume.Attempts)
	require.NotNil(t, in.Resume.SubmittedAt)
	require.Nil(t, in.Resume.NextRetryAt)
	require.LessOrEqual(t, len(in.Resume.Timeline), 20)
}

func TestRefundContinueAsNewSuggested(t *testing.T) {
	t.Run("continues as new", func(t *testing.T) {
		h := newHarness(t)
		asyncPlan(h)
		h.env.SetContinueAsNewSuggested(true)

		h.run(workflows.RefundInput{RefundID: h.id})

		in := continuedInput(t, h.env.GetWorkflowError())
		require.Equal(t, "re_async", in.Resume.ProviderReference)
		h.calls("CheckRefund", 0)
		h.notFinalized()
	})
	t.Run("final event buffered is not lost", func(t *testing.T) {
		h := newHarness(t)
		h.submitDelay = 3 * time.Second
		asyncPlan(h)
		h.env.SetContinueAsNewSuggested(true)
		h.eventAt(time.Second, providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_cb"})

		h.run(workflows.RefundInput{RefundID: h.id})

		h.env.AssertExpectations(t)
		o := h.outcome()
		require.Equal(t, refund.StatusSucceeded, o.Status)
		require.Equal(t, "re_cb", o.ProviderReference)
	})
}

// The run after continue-as-new resumes polling: it never sends the refund again.
func TestRefundResumedRunPolls(t *testing.T) {
	h := newHarness(t)
	h.plan.Status = refund.StatusProcessing
	h.beginDelay = 2 * time.Second
	submitted := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.env.SetStartTime(submitted.Add(time.Hour))
	h.onCheck(ok(providers.StatusSucceeded, "re_async"))
	cancel := h.updateAt(time.Second, workflows.UpdateCancel, workflows.Decision{Actor: "ops"})
	resume := &workflows.RefundState{
		RefundID: h.id, Status: refund.StatusProcessing, Step: workflows.StepAwaitingOutcome,
		Method: refund.MethodProviderRefund, Provider: "stripe", Attempts: 2, ProviderReference: "re_async",
		SubmittedAt: &submitted,
	}

	h.run(workflows.RefundInput{RefundID: h.id, Resume: resume})

	h.env.AssertExpectations(t)
	require.True(t, cancel.rejected, "a refund already sent cannot be canceled, even while its next run begins")
	h.calls("MarkProcessing", 0)
	h.calls("SubmitRefund", 0)
	h.calls("CheckRefund", 1)
	require.Equal(t, []string{"re_async"}, h.checkRefs)
	o := h.outcome()
	require.Equal(t, refund.StatusSucceeded, o.Status)
	require.Equal(t, 2, o.Attempts)
	st := h.result()
	require.Equal(t, submitted, st.SubmittedAt.UTC())
}
