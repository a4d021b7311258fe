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
