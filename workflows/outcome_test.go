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

// The outcome rules of SPEC §12 as the workflow applies them: only an
// explicit final status or a definitive rejection of a first send ends a
// refund; every other answer leaves it PROCESSING.

// A status check that fails, whatever the error, says nothing about the
// refund: it is checked again, never finalized on it.
func TestRefundStatusCheckErrorsAreNeverFinal(t *testing.T) {
	for _, errType := range []string{activities.ErrTypeInvalid, activities.ErrTypeDeclined, "ProviderAuth", "OutcomeUnknown"} {
		t.Run(errType, func(t *testing.T) {
			h := newHarness(t)
			asyncPlan(h)
			h.onCheck(fail(temporal.NewNonRetryableApplicationError("provider answered 401", errType, nil, "unauthorized")),
				ok(providers.StatusSucceeded, "re_async"))

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			o := h.outcome()
			require.Equal(t, refund.StatusSucceeded, o.Status, "a failed status check must not end the refund")
			require.Equal(t, "re_async", o.ProviderReference)
		})
	}
}

// A refund whose provider never answers keeps re-sending (after a look-up)
// at a low rate; its history must stay bounded however long that lasts:
// each run continues as new, and 60 simulated days stay bounded per run.
func TestRefundStuckSubmitStaysBoundedFor60Days(t *testing.T) {
	const days = 60
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := start
	in := workflows.RefundInput{}
	runs, maxSubmits := 0, 0
	for at.Sub(start) < days*24*time.Hour {
		h := newHarness(t)
		h.env.SetStartTime(at)
		if runs > 0 {
			h.plan.Status = refund.StatusProcessing
		}
		h.onSubmit(fail(errTransient))
		in.RefundID = h.id

		h.run(in)

		in = continuedInput(t, h.env.GetWorkflowError())
		h.notFinalized()
		h.mu.Lock()
		submits := len(h.submits)
		h.mu.Unlock()
		require.Positive(t, submits)
		require.True(t, in.Resubmit, "the next run goes on re-sending")
		maxSubmits = max(maxSubmits, submits)
		require.NotNil(t, in.Resume)
		require.Equal(t, refund.StatusProcessing, in.Resume.Status, "a refund whose outcome is unknown stays PROCESSING")
		require.True(t, in.Resume.Stuck)
		require.LessOrEqual(t, len(in.Resume.Timeline), 20)
		took := h.env.Now().Sub(at)
		require.Positive(t, took)
		at = h.env.Now()
		runs++
		in.Resume.RefundID = h.id
	}
	// Bounded: every run makes at most a few hundred provider calls, so its
	// history stays far below Temporal's limits.
	require.LessOrEqual(t, maxSubmits, 300, "provider calls in one run")
	t.Logf("%d days stuck: %d runs, at most %d provider calls per run", days, runs, maxSubmits)
}

// An approval wait expires: the reservation is not held forever.
func TestRefundApprovalWaitExpires(t *testing.T) {
	h := newHarness(t)
	h.plan.RequiresApproval = true
	h.plan.Policy.ApprovalTimeout = 168 * time.Hour

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	o := h.outcome()
	require.Equal(t, refund.StatusCanceled, o.Status)
	require.Equal(t, "approval.expired", o.FailureCode)
	h.calls("MarkProcessing", 0)
	h.calls("SubmitRefund", 0)
	require.Equal(t, 168*time.Hour, h.env.Now().Sub(h.start), "expires after the approval timeout, not before")
}

// A provider that reports a refund failed after it succeeded (Stripe's
// refund.failed, Adyen's REFUNDED_REVERSED) reverses it: the refund was
// settled, then its amount is given back, once.
func TestRefundReversedAfterSuccess(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drive func(h *harness)
		code  string
	}{
		{"failed event while finalizing", func(h *harness) {
			h.finalizeDelay = 5 * time.Second
			h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
			h.eventAt(2*time.Second, providers.Result{Status: providers.StatusFailed, FailureCode: "expired_card"})
			h.eventAt(3*time.Second, providers.Result{Status: providers.StatusFailed, FailureCode: "expired_card"})
		}, "expired_card"},
		{"reversed status", func(h *harness) {
			asyncPlan(h)
			h.onCheck(ok(providers.StatusReversed, "re_async"))
		}, "provider.reversed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.reversalDeliveries = deliveries(2)
			tc.drive(h)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			require.Equal(t, refund.StatusSucceeded, h.outcome().Status, "settled first: the money moved")
			require.Len(t, h.reversed, 1, "reversed exactly once")
			require.Equal(t, tc.code, h.reversed[0].FailureCode)
			st := h.result()
			require.Equal(t, refund.StatusReversed, st.Status)
			require.Subset(t, h.handedOver(), childIDs(h.reversalDeliveries...), "refund.reversed is delivered")
			require.Equal(t, refund.StatusReversed, h.statusSA[len(h.statusSA)-1])
		})
	}
}

// A provider that voids a refund it had accepted cancels it.
func TestRefundVoidedByProvider(t *testing.T) {
	h := newHarness(t)
	asyncPlan(h)
	h.onCheck(ok(providers.StatusCanceled, "re_async"))

	h.run(workflows.RefundInput{RefundID: h.id})

	o := h.outcome()
	require.Equal(t, refund.StatusCanceled, o.Status)
	require.Equal(t, refund.FailureVoided, o.FailureCode)
	require.Empty(t, h.reversed)
}

// Ops resolve a refund whose outcome Backflow could not learn: accepted
// only while it waits with no provider call in flight, taken as the
// provider's answer, and never a reversal of a success.
func TestRefundResolvedByOps(t *testing.T) {
	exhausted := repeat(fail(errTransient), int(testPolicy.SubmitAttempts))
	t.Run("while stuck", func(t *testing.T) {
		h := newHarness(t)
		h.onSubmit(exhausted...)
		u := h.updateAt(20*time.Minute, workflows.UpdateResolve, workflows.Resolution{Actor: "ops:k1", Status: providers.StatusFailed,
			Reason: "cardpay support: no such refund"})

		h.run(workflows.RefundInput{RefundID: h.id})

		h.env.AssertExpectations(t)
		require.True(t, u.accepted, "rejected: %v", u.rejectErr)
		o := h.outcome()
		require.Equal(t, refund.StatusFailed, o.Status)
		require.Equal(t, "ops.resolved", o.FailureCode)
		require.Equal(t, "resolved by ops:k1: cardpay support: no such refund", o.FailureMessage)
		h.calls("SubmitRefund", int(testPolicy.SubmitAttempts))
	})
	t.Run("refused while a provider call is in flight", func(t *testing.T) {
		h := newHarness(t)
		h.submitDelay = 10 * time.Second
		h.onSubmit(ok(providers.StatusSucceeded, "re_1"))
		u := h.updateAt(5*time.Second, workflows.UpdateResolve, workflows.Resolution{Actor: "ops:k1", Status: providers.StatusFailed, Reason: "x"})

		h.run(workflows.RefundInput{RefundID: h.id})

		require.True(t, u.rejected)
		require.ErrorContains(t, u.rejectErr, "provider call in flight")
		require.Equal(t, refund.StatusSucceeded, h.outcome().Status)
		require.Empty(t, h.reversed, "a resolution never reverses a success")
	})
	t.Run("refused before the refund is sent", func(t *testing.T) {
		h := newHarness(t)
		h.plan.RequiresApproval = true
		h.plan.Policy.ApprovalTimeout = time.Hour
		u := h.updateAt(time.Minute, workflows.UpdateResolve, workflows.Resolution{Actor: "ops:k1", Status: providers.StatusSucceeded, Reason: "x"})

		h.run(workflows.RefundInput{RefundID: h.id})

		require.True(t, u.rejected)
		require.ErrorContains(t, u.rejectErr, "PENDING")
		require.Equal(t, refund.FailureApprovalExpired, h.outcome().FailureCode)
	})
}
