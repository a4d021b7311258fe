package workflows_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// acts is the typed nil the mocks are keyed on, as the workflow calls them.
var acts *activities.Activities

// testPolicy keeps durations readable; the test environment skips time.
var testPolicy = activities.Policy{
	StuckAfter:            30 * time.Minute,
	PollInitial:           10 * time.Second,
	PollMax:               time.Minute,
	SubmitAttempts:        3,
	SubmitInitialInterval: time.Second,
	StuckRetryEvery:       time.Hour,
}

var errTransient = errors.New("provider: connection reset")

// answer is one scripted provider answer: a result or an error.
type answer struct {
	res providers.Result
	err error
}

func ok(status providers.Status, ref string) answer {
	return answer{res: providers.Result{Status: status, ProviderReference: ref}}
}

func fail(err error) answer { return answer{err: err} }

func repeat(a answer, n int) []answer {
	out := make([]answer, n)
	for i := range out {
		out[i] = a
	}
	return out
}

// harness runs one RefundWorkflow against mocked activities and records
// everything the workflow did.
type harness struct {
	t     *testing.T
	env   *testsuite.TestWorkflowEnvironment
	id    uuid.UUID
	start time.Time

	plan            activities.RefundPlan
	beginDelay      time.Duration
	markDelay       time.Duration
	markErr         error
	submitDelay     time.Duration
	finalizeDelay   time.Duration
	finalDeliveries []activities.Delivery
	// reversalDeliveries are what ReverseRefund returns.
	reversalDeliveries []activities.Delivery
	finalizeErr        error
	mocked             map[string]bool

	mu           sync.Mutex
	submits      []activities.SubmitRequest
	checkRefs    []string
	finalized    []activities.FinalizeInput
	stuckSet     []bool
	stuckReasons []string
	reversed     []activities.ReverseInput
	children     []string
	childInputs  []activities.Delivery
	queued       []activities.Delivery // handed to QueueDeliveries
	statusSA     []refund.Status
	stuckSA      []bool
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a straggling SDK goroutine may log after the test ended
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	// Warnings and errors go to the test log, shown on failure or with -v.
	suite.SetLogger(log.NewStructuredLogger(slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	env := suite.NewTestWorkflowEnvironment()
	h := &harness{t: t, env: env, id: uuid.New(), mocked: map[string]bool{}}
	h.plan = activities.RefundPlan{
		RefundID: h.id, MerchantID: uuid.New(), Status: refund.StatusPending,
		Method: refund.MethodProviderRefund, Provider: "stripe", Amount: 4200, Currency: "EUR",
		Policy: testPolicy,
		Submit: activities.SubmitRequest{
			RefundID: h.id, Provider: "stripe", Method: refund.MethodProviderRefund,
			Refund: providers.RefundRequest{IdempotencyKey: h.id.String(), RefundID: h.id.String(), Amount: 4200, Currency: "EUR"},
		},
	}

	env.RegisterActivity(&activities.Activities{})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, d activities.Delivery) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.children = append(h.children, workflow.GetInfo(ctx).WorkflowExecution.ID)
		h.childInputs = append(h.childInputs, d)
		return nil
	}, workflow.RegisterOptions{Name: workflows.WebhookWorkflowName})
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{
		ID: workflows.RefundWorkflowID(h.id), TaskQueue: "backflow-refunds",
	})
	// The test environment accepts any key; the mock records what was upserted.
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		sa := args.Get(0).(temporal.SearchAttributes)
		h.mu.Lock()
		defer h.mu.Unlock()
		if v, ok := sa.GetKeyword(workflows.SAStatus); ok {
			h.statusSA = append(h.statusSA, refund.Status(v))
		}
		if v, ok := sa.GetBool(workflows.SAStuck); ok {
			h.stuckSA = append(h.stuckSA, v)
		}
	}).Return().Maybe()
	return h
}

// onSubmit scripts SubmitRefund: call i gets answers[i] (the last one repeats).
func (h *harness) onSubmit(answers ...answer) *testsuite.MockCallWrapper {
	h.mocked["SubmitRefund"] = true
	calls := 0
	return h.env.OnActivity(acts.SubmitRefund, mock.Anything, mock.Anything).
		After(h.submitDelay).
		Return(func(ctx context.Context, req activities.SubmitRequest) (activities.SubmitResult, error) {
			h.mu.Lock()
			h.submits = append(h.submits, req)
			a := answers[min(calls, len(answers)-1)]
			calls++
			h.mu.Unlock()
			return activities.SubmitResult{Result: a.res, Attempt: activity.GetInfo(ctx).Attempt}, a.err
		})
}

// onCheck scripts CheckRefund like onSubmit.
func (h *harness) onCheck(answers ...answer) *testsuite.MockCallWrapper {
	h.mocked["CheckRefund"] = true
	calls := 0
	return h.env.OnActivity(acts.CheckRefund, mock.Anything, mock.Anything, mock.Anything).
		Return(func(ctx context.Context, _ activities.SubmitRequest, ref string) (activities.SubmitResult, error) {
			h.mu.Lock()
			h.checkRefs = append(h.checkRefs, ref)
			a := answers[min(calls, len(answers)-1)]
			calls++
			h.mu.Unlock()
			return activities.SubmitResult{Result: a.res, Attempt: activity.GetInfo(ctx).Attempt}, a.err
		})
}

func (h *harness) at(d time.Duration, fn func()) { h.env.RegisterDelayedCallback(fn, d) }

func (h *harness) signalAt(d time.Duration, name string, payload any) {
	h.at(d, func() { h.env.SignalWorkflow(name, payload) })
}

func (h *harness) eventAt(d time.Duration, res providers.Result) {
	h.signalAt(d, workflows.SignalProviderEvent, workflows.ProviderEvent{Result: res})
}

// updateCall records what happened to one update.
type updateCall struct {
	accepted, rejected, completed bool
	rejectErr, err                error
	value                         any
}

func (h *harness) updateAt(d time.Duration, name string, arg any) *updateCall {
	u := &updateCall{}
	h.at(d, func() {
		h.env.UpdateWorkflow(name, uuid.NewString(), &testsuite.TestUpdateCallback{
			OnAccept: func() { u.accepted = true },
			OnReject: func(err error) { u.rejected, u.rejectErr = true, err },
			OnComplete: func(v any, err error) {
				u.completed, u.value, u.err = true, v, err
			},
		}, arg)
	})
	return u
}

// queryAt captures the status query at d.
func (h *harness) queryAt(d time.Duration) *workflows.RefundState {
	st := &workflows.RefundState{}
	h.at(d, func() { *st = h.query() })
	return st
}

func (h *harness) query() workflows.RefundState {
	h.t.Helper()
	v, err := h.env.QueryWorkflow(workflows.QueryStatus)
	require.NoError(h.t, err)
	var st workflows.RefundState
	require.NoError(h.t, v.Get(&st))
	return st
}

// run installs default mocks for what the test did not script and runs the workflow.
func (h *harness) run(in workflows.RefundInput) {
	h.t.Helper()
	env := h.env
	env.OnActivity(acts.BeginRefund, mock.Anything, h.id).After(h.beginDelay).Return(h.plan, nil).Once()
	env.OnActivity(acts.MarkProcessing, mock.Anything, h.id).After(h.markDelay).Return(h.markErr).Maybe()
	env.OnActivity(acts.SetStuck, mock.Anything, h.id, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ uuid.UUID, stuck bool, reason string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.stuckSet = append(h.stuckSet, stuck)
			h.stuckReasons = append(h.stuckReasons, reason)
			return nil
		}).Maybe()
	env.OnActivity(acts.ReverseRefund, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReverseInput) (activities.FinalizeResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.reversed = append(h.reversed, in)
			return activities.FinalizeResult{Status: refund.StatusReversed, Deliveries: h.reversalDeliveries}, nil
		}).Maybe()
	env.OnActivity(acts.QueueDeliveries, mock.Anything, mock.Anything).Return(func(_ context.Context, ds []activities.Delivery) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.queued = append(h.queued, ds...)
		return nil
	}).Maybe()
	env.OnActivity(acts.FinalizeRefund, mock.Anything, mock.Anything).After(h.finalizeDelay).Return(
		func(_ context.Context, in activities.FinalizeInput) (activities.FinalizeResult, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.finalized = append(h.finalized, in)
			if h.finalizeErr != nil {
				return activities.FinalizeResult{}, h.finalizeErr
			}
			return activities.FinalizeResult{Status: in.Outcome.Status, Deliveries: h.finalDeliveries}, nil
		}).Maybe()
	if !h.mocked["SubmitRefund"] {
		h.onSubmit(ok(providers.StatusSucceeded, "re_default")).Maybe()
	}
	if !h.mocked["CheckRefund"] {
		h.onCheck(ok(providers.StatusProcessing, "")).Maybe()
	}
	h.start = env.Now()
	if in.RefundID == uuid.Nil {
		in.RefundID = h.id
	}
	env.ExecuteWorkflow(workflows.RefundWorkflow, in)
	require.True(h.t, env.IsWorkflowCompleted(), "workflow did not complete")
}

func (h *harness) result() workflows.RefundState {
	h.t.Helper()
	require.NoError(h.t, h.env.GetWorkflowError())
	var st workflows.RefundState
	require.NoError(h.t, h.env.GetWorkflowResult(&st))
	return st
}

func (h *harness) calls(name string, n int) {
	h.t.Helper()
	h.env.AssertNumberOfCalls(h.t, name, n)
}

// outcome asserts the refund was finalized exactly once and returns how.
func (h *harness) outcome() refund.Outcome {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	require.Len(h.t, h.finalized, 1, "FinalizeRefund must run exactly once")
	require.Equal(h.t, h.id, h.finalized[0].RefundID)
	return h.finalized[0].Outcome
}

func (h *harness) notFinalized() {
	h.t.Helper()
	h.calls("FinalizeRefund", 0)
	require.Empty(h.t, h.finalized)
}

func steps(st workflows.RefundState) []string {
	out := make([]string, 0, len(st.Timeline))
	for _, e := range st.Timeline {
		out = append(out, e.Step)
	}
	return out
}

func hasNote(st workflows.RefundState, note string) bool {
	for _, e := range st.Timeline {
		if e.Note == note {
			return true
		}
	}
	return false
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// handedOver lists the ids of the deliveries the workflow handed over, as
// children (histories before the outbox) or to QueueDeliveries.
func (h *harness) handedOver() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(childIDs(h.queued...), h.children...)
}

func deliveries(n int) []activities.Delivery {
	out := make([]activities.Delivery, n)
	for i := range out {
		out[i] = activities.Delivery{EventID: uuid.New(), EndpointID: uuid.New()}
	}
	return out
}

func childIDs(ds ...activities.Delivery) []string {
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		out = append(out, workflows.WebhookWorkflowID(d.EventID, d.EndpointID))
	}
	return out
}

func asyncPlan(h *harness) {
	h.onSubmit(ok(providers.StatusProcessing, "re_async"))
}

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

func TestRefundCancelUpdateBeforeSubmit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
	}{
		{"awaiting approval", func(h *harness) { h.plan.RequiresApproval = true }},
		{"while beginning", func(h *harness) { h.beginDelay = 5 * time.Second }},
	} {
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
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
	}{
		{"awaiting approval", func(h *harness) { h.plan.RequiresApproval = true }},
		{"while beginning", func(h *harness) { h.beginDelay = 5 * time.Second }},
	} {
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
