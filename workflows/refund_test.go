package workflows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

func TestRefundSucceedsSynchronously(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   refund.Method
		provider string
	}{
		{"provider refund", refund.MethodProviderRefund, "stripe"},
		{"payout", refund.MethodPayoutRefund, "momo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.plan.Method, h.plan.Provider = tc.method, tc.provider
			h.plan.Submit.Method, h.plan.Submit.Provider = tc.method, tc.provider
			if tc.method == refund.MethodPayoutRefund {
				h.plan.Submit.Refund = providers.RefundRequest{}
				h.plan.Submit.Payout = providers.PayoutRequest{IdempotencyKey: h.id.String(), RefundID: h.id.String(), Amount: 4200, Currency: "EUR"}
			}
			created := deliveries(2)
			h.plan.Deliveries = created
			h.finalDeliveries = deliveries(1)
			h.onSubmit(ok(providers.StatusSucceeded, "re_1"))

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			o := h.outcome()
			require.Equal(t, refund.StatusSucceeded, o.Status)
			require.Equal(t, "re_1", o.ProviderReference)
			require.Empty(t, o.FailureCode)
			require.Equal(t, 1, o.Attempts)
			h.calls("MarkProcessing", 1)
			h.calls("SubmitRefund", 1)
			h.calls("CheckRefund", 0)
			h.calls("SetStuck", 0)
			require.Equal(t, tc.method, h.submits[0].Method)
			require.Equal(t, h.plan.Submit, h.submits[0], "the submit request (and its idempotency key) comes from the plan")

			// Deliveries a worker of the previous release returned are queued:
			// the refund.created ones, then the final one.
			require.ElementsMatch(t, childIDs(append(created, h.finalDeliveries...)...), h.handedOver())
			require.ElementsMatch(t, append(created, h.finalDeliveries...), h.queued)

			st := h.result()
			require.Equal(t, refund.StatusSucceeded, st.Status)
			require.Equal(t, workflows.StepDone, st.Step)
			require.Equal(t, tc.method, st.Method)
			require.Equal(t, tc.provider, st.Provider)
			require.Equal(t, "re_1", st.ProviderReference)
			require.Equal(t, 1, st.Attempts)
			require.False(t, st.Stuck)
			require.NotNil(t, st.SubmittedAt)
			require.Nil(t, st.NextRetryAt)
			require.Equal(t, []string{workflows.StepBegin, workflows.StepSubmitting, workflows.StepSubmitting,
				workflows.StepFinalizing, workflows.StepDone}, steps(st))
			require.Equal(t, st, h.query(), "the query shows the final state")

			require.Equal(t, []refund.Status{refund.StatusProcessing, refund.StatusSucceeded}, h.statusSA)
			require.Equal(t, []bool{false}, h.stuckSA)
		})
	}
}

func TestRefundProviderRefusesFinally(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus refund.Status
		wantCode   string
	}{
		{"declined with code", temporal.NewNonRetryableApplicationError("insufficient balance", activities.ErrTypeDeclined, nil, "balance_insufficient"),
			refund.StatusDeclined, "balance_insufficient"},
		{"declined without code", temporal.NewNonRetryableApplicationError("insufficient balance", activities.ErrTypeDeclined, nil),
			refund.StatusDeclined, "declined"},
		{"invalid request with code", temporal.NewNonRetryableApplicationError("insufficient balance", activities.ErrTypeInvalid, nil, "charge_already_refunded"),
			refund.StatusFailed, "charge_already_refunded"},
		{"invalid request without code", temporal.NewNonRetryableApplicationError("insufficient balance", activities.ErrTypeInvalid, nil),
			refund.StatusFailed, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.finalDeliveries = deliveries(2)
			h.onSubmit(fail(tc.err))

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			o := h.outcome()
			require.Equal(t, tc.wantStatus, o.Status)
			require.Equal(t, tc.wantCode, o.FailureCode)
			require.Equal(t, "insufficient balance", o.FailureMessage)
			require.Equal(t, 1, o.Attempts)
			h.calls("SubmitRefund", 1) // non-retryable: never retried
			h.calls("SetStuck", 0)
			require.ElementsMatch(t, childIDs(h.finalDeliveries...), h.handedOver())

			st := h.result()
			require.Equal(t, tc.wantStatus, st.Status)
			require.Equal(t, "insufficient balance", st.LastError)
			require.False(t, st.Stuck)
			require.Equal(t, []refund.Status{refund.StatusProcessing, tc.wantStatus}, h.statusSA)
		})
	}
}

func TestRefundTransientErrorsThenSuccess(t *testing.T) {
	h := newHarness(t)
	h.onSubmit(fail(errTransient), fail(errTransient), ok(providers.StatusSucceeded, "re_3"))

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	h.calls("SubmitRefund", 3)
	h.calls("SetStuck", 0)
	o := h.outcome()
	require.Equal(t, refund.StatusSucceeded, o.Status)
	require.Equal(t, 3, o.Attempts)
	st := h.result()
	require.Equal(t, 3, st.Attempts)
	require.False(t, st.Stuck)
	for _, r := range h.submits {
		require.Equal(t, h.id.String(), r.Refund.IdempotencyKey, "every attempt reuses the refund id as idempotency key")
	}
}

// When the provider never answered, the outcome is unknown: the refund is
// flagged stuck (never released) and re-driven later.
func TestRefundRetriesExhaustedWaitsStuck(t *testing.T) {
	exhausted := repeat(fail(errTransient), int(testPolicy.SubmitAttempts))
	for _, tc := range []struct {
		name         string
		then         []answer
		drive        func(h *harness)
		wantSubmits  int
		wantRef      string
		wantNote     string
		minDuration  time.Duration
		maxDuration  time.Duration
		wantAttempts int
	}{
		{
			name:  "ops retry signal",
			then:  []answer{ok(providers.StatusSucceeded, "re_retry")},
			drive: func(h *harness) { h.signalAt(20*time.Minute, workflows.SignalRetry, "ops") },
			// One exhausted execution (3 attempts) and one successful call.
			wantSubmits: 4, wantAttempts: 4, wantRef: "re_retry", wantNote: "retry requested by ops",
			maxDuration: testPolicy.StuckRetryEvery,
		},
		{
			name:        "slow timer",
			then:        []answer{ok(providers.StatusSucceeded, "re_timer")},
			drive:       func(*harness) {},
			wantSubmits: 4, wantAttempts: 4, wantRef: "re_timer",
			minDuration: testPolicy.StuckRetryEvery,
		},
		{
			name: "callback with the final answer",
			then: []answer{fail(errors.New("must not re-send"))},
			drive: func(h *harness) {
				h.eventAt(20*time.Minute, providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_cb"})
			},
			wantSubmits: 3, wantAttempts: 3, wantRef: "re_cb", wantNote: "provider event: SUCCEEDED",
			maxDuration: testPolicy.StuckRetryEvery,
		},
		{
			name: "callback still processing re-sends",
			then: []answer{ok(providers.StatusSucceeded, "re_resent")},
			drive: func(h *harness) {
				h.eventAt(20*time.Minute, providers.Result{Status: providers.StatusProcessing, ProviderReference: "re_cb"})
			},
			wantSubmits: 4, wantAttempts: 4, wantRef: "re_resent", wantNote: "provider event: PROCESSING",
			maxDuration: testPolicy.StuckRetryEvery,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.onSubmit(append(append([]answer(nil), exhausted...), tc.then...)...)
			stuck := h.queryAt(10 * time.Minute)
			var finalizedWhileStuck int
			h.at(10*time.Minute, func() {
				h.mu.Lock()
				finalizedWhileStuck = len(h.finalized)
				h.mu.Unlock()
			})
			tc.drive(h)

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			require.True(t, stuck.Stuck, "query while stuck")
			require.Equal(t, refund.StatusProcessing, stuck.Status, "a stuck refund is still PROCESSING, never failed")
			require.Equal(t, workflows.StepStuck, stuck.Step)
			require.Equal(t, 3, stuck.Attempts)
			require.Contains(t, stuck.LastError, errTransient.Error())
			require.NotNil(t, stuck.NextRetryAt)
			require.Zero(t, finalizedWhileStuck, "never finalized while the outcome is unknown")

			require.Equal(t, []bool{true}, h.stuckSet, "SetStuck(true) exactly once")
			h.calls("SubmitRefund", tc.wantSubmits)
			o := h.outcome()
			require.Equal(t, refund.StatusSucceeded, o.Status)
			require.Equal(t, tc.wantRef, o.ProviderReference)
			require.Equal(t, tc.wantAttempts, o.Attempts)

			st := h.result()
			require.False(t, st.Stuck)
			require.Equal(t, refund.StatusSucceeded, st.Status)
			if tc.wantNote != "" {
				require.True(t, hasNote(st, tc.wantNote), "timeline: %+v", st.Timeline)
			}
			took := h.env.Now().Sub(h.start)
			require.GreaterOrEqual(t, took, tc.minDuration)
			if tc.maxDuration > 0 {
				require.Less(t, took, tc.maxDuration)
			}
			require.Equal(t, []bool{true, false}, h.stuckSA)
		})
	}
}

func TestRefundMarkProcessingNotPending(t *testing.T) {
	h := newHarness(t)
	h.markErr = temporal.NewNonRetryableApplicationError("refund is already CANCELED", activities.ErrTypeNotPending, nil)

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	h.calls("MarkProcessing", 1)
	h.calls("SubmitRefund", 0)
	h.calls("SetStuck", 0)
	h.notFinalized()
	st := h.result()
	require.Equal(t, workflows.StepDone, st.Step)
	require.Equal(t, "refund is already CANCELED", st.Timeline[len(st.Timeline)-1].Note)
	require.Nil(t, st.SubmittedAt)
	require.Empty(t, h.statusSA)
}

func TestRefundAlreadyFinal(t *testing.T) {
	for _, status := range []refund.Status{refund.StatusSucceeded, refund.StatusDeclined, refund.StatusFailed, refund.StatusCanceled} {
		t.Run(string(status), func(t *testing.T) {
			h := newHarness(t)
			h.plan.Status = status

			h.run(workflows.RefundInput{RefundID: h.id})

			h.env.AssertExpectations(t)
			h.calls("BeginRefund", 1)
			h.calls("MarkProcessing", 0)
			h.calls("SubmitRefund", 0)
			h.calls("CheckRefund", 0)
			h.calls("SetStuck", 0)
			h.notFinalized()
			require.Empty(t, h.handedOver())
			require.Empty(t, h.statusSA)
			st := h.result()
			require.Equal(t, status, st.Status)
			require.Equal(t, workflows.StepDone, st.Step)
			require.Equal(t, "already "+string(status), st.Timeline[len(st.Timeline)-1].Note)
		})
	}
}

// A refund found PROCESSING on a fresh run (e.g. its workflow was restarted)
// is re-sent under the same idempotency key, without MarkProcessing.
func TestRefundFoundProcessingIsLookedUpThenResent(t *testing.T) {
	h := newHarness(t)
	h.plan.Status = refund.StatusProcessing
	h.plan.ProviderReference = "re_known"
	h.onSubmit(ok(providers.StatusSucceeded, "re_1"))

	h.run(workflows.RefundInput{RefundID: h.id})

	h.env.AssertExpectations(t)
	h.calls("MarkProcessing", 0)
	h.calls("SubmitRefund", 1)
	require.Equal(t, "re_known", h.submits[0].ProviderReference, "the look-up before the re-send uses the reference already known")
	require.Equal(t, refund.StatusSucceeded, h.outcome().Status)
}
