package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// Steps of a refund, as the status query and Temporal UI show them.
const (
	StepBegin            = "begin"
	StepAwaitingApproval = "awaiting_approval"
	StepSubmitting       = "submitting"
	StepAwaitingOutcome  = "awaiting_outcome"
	StepStuck            = "stuck"
	StepFinalizing       = "finalizing"
	StepDone             = "done"
)

// maxPollsPerRun and maxSendsPerRun bound the history of one run (about
// 6 and 11 events each); after them the workflow continues as new.
const (
	maxPollsPerRun = 200
	maxSendsPerRun = 50
)

// RefundInput starts (or continues) the workflow of one refund.
type RefundInput struct {
	RefundID uuid.UUID
	// Resume carries state across continue-as-new.
	Resume *RefundState `json:",omitempty"`
	// Resubmit: the previous run continued as new while re-sending a refund
	// whose outcome is unknown; this one goes on (look-up first).
	Resubmit bool `json:",omitempty"`
}

// TimelineEntry is one step of the refund's life.
type TimelineEntry struct {
	Step string    `json:"step"`
	At   time.Time `json:"at"`
	Note string    `json:"note,omitempty"`
}

// RefundState is the live state returned by the status query.
type RefundState struct {
	RefundID          uuid.UUID       `json:"refundId"`
	Status            refund.Status   `json:"status"`
	Step              string          `json:"step"`
	Method            refund.Method   `json:"method"`
	Provider          string          `json:"provider"`
	Attempts          int             `json:"attempts"`
	LastError         string          `json:"lastError,omitempty"`
	ProviderReference string          `json:"providerReference,omitempty"`
	NextRetryAt       *time.Time      `json:"nextRetryAt,omitempty"`
	Stuck             bool            `json:"stuck"`
	StuckReason       string          `json:"stuckReason,omitempty"`
	SubmittedAt       *time.Time      `json:"submittedAt,omitempty"`
	Timeline          []TimelineEntry `json:"timeline"`
}

// ProviderEvent is the payload of the provider-event signal (a verified callback).
type ProviderEvent struct {
	Result providers.Result
}

// Decision is the payload of the approve, reject and cancel updates.
type Decision struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// Resolution is the payload of the resolve update: the outcome ops found at
// the provider for a refund whose outcome Backflow could not learn.
type Resolution struct {
	Actor  string           `json:"actor"`
	Status providers.Status `json:"status"` // SUCCEEDED, DECLINED or FAILED
	Reason string           `json:"reason"`
}

var a *activities.Activities

type refundRun struct {
	ctx       workflow.Context
	plan      activities.RefundPlan
	state     RefundState
	events    workflow.ReceiveChannel
	retries   workflow.ReceiveChannel
	cancel    *Decision
	approved  bool
	rejection *Decision
	ended     bool              // run returned: a waiting cancel update must not wait any longer
	reversal  *providers.Result // the provider reversed the refund after it succeeded
	// calling: a provider call is in flight, whose answer a resolution
	// must not race.
	calling     bool
	resolutions workflow.Channel // accepted resolve updates, for the waiting loops
}

// RefundWorkflow drives one refund: begin → (approval) → submit → await
// outcome → settle or release → notify. Once the refund is sent, workflow
// cancellation is ignored: money at the provider is only ever finalized by
// the provider's answer.
func RefundWorkflow(ctx workflow.Context, in RefundInput) (RefundState, error) {
	w := &refundRun{
		ctx:         ctx,
		events:      workflow.GetSignalChannel(ctx, SignalProviderEvent),
		retries:     workflow.GetSignalChannel(ctx, SignalRetry),
		resolutions: workflow.NewBufferedChannel(ctx, 1),
	}
	if in.Resume != nil {
		w.state = *in.Resume
	} else {
		w.state = RefundState{RefundID: in.RefundID, Status: refund.StatusPending}
	}
	// The step is set before the handlers exist: an update buffered with the
	// first task is validated as soon as its handler is registered.
	w.mark(StepBegin, "")
	if err := w.registerHandlers(); err != nil {
		return w.state, err
	}
	err := w.run(in)
	w.ended = true
	// Let a cancel update waiting for the outcome answer before the run closes.
	_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
	if err == nil && w.state.Status == refund.StatusSucceeded {
		// Last: a provider event that arrived after the success may reverse it.
		err = w.reverseIfReported()
	}
	return w.state, err
}

// resolvable reports why a resolve update cannot be taken now, or nil: only
// a refund sent to its provider, waiting (stuck or for its outcome), with no
// provider call in flight whose answer it could contradict.
func (w *refundRun) resolvable(r Resolution) error {
	switch {
	case r.Status != providers.StatusSucceeded && r.Status != providers.StatusDeclined && r.Status != providers.StatusFailed:
		return fmt.Errorf("a resolution is SUCCEEDED, DECLINED or FAILED, not %q", r.Status)
	case w.state.Status != refund.StatusProcessing:
		return fmt.Errorf("refund is %s: only a refund sent to its provider and not yet final can be resolved", w.state.Status)
	case w.calling || (w.state.Step != StepStuck && w.state.Step != StepAwaitingOutcome):
		return fmt.Errorf("refund is at step %s with a provider call in flight: resolve it once it waits again", w.state.Step)
	case w.ended:
		return errors.New("refund workflow is ending")
	}
	return nil
}

func (w *refundRun) run(in RefundInput) error {
	ctx := w.ctx
	// Runs to completion even if the workflow is canceled meanwhile; the
	// cancellation is then honoured before submit (release) or ignored (sent).
	beginCtx, _ := workflow.NewDisconnectedContext(ctx)
	if err := workflow.ExecuteLocalActivity(localCtx(beginCtx), a.BeginRefund, in.RefundID).Get(beginCtx, &w.plan); err != nil {
		return fmt.Errorf("begin refund: %w", err)
	}
	w.state.Method, w.state.Provider, w.state.Status = w.plan.Method, w.plan.Provider, w.plan.Status
	if w.state.ProviderReference == "" {
		w.state.ProviderReference = w.plan.ProviderReference
	}
	w.showDetails()
	w.startDeliveries(w.plan.Deliveries)
	if w.plan.Status.Final() {
		w.mark(StepDone, "already "+string(w.plan.Status))
		return nil
	}
	if w.plan.Status == refund.StatusPending {
		if done, err := w.beforeSubmit(); done || err != nil {
			return err
		}
	}

	// From here the refund may exist at the provider: never release it on
	// cancellation, only on the provider's answer.
	w.ctx, _ = workflow.NewDisconnectedContext(ctx)
	var res providers.Result
	var err error
	switch {
	case in.Resume != nil && in.Resubmit:
		res, err = w.submit()
	case in.Resume != nil && w.plan.Status == refund.StatusProcessing:
		// Continued as new while awaiting the outcome: resume polling, never re-send.
		res = providers.Result{Status: providers.StatusProcessing, ProviderReference: w.state.ProviderReference}
	default:
		// A refund found PROCESSING (its earlier run died) may exist at the
		// provider: its send count makes the activity look it up first.
		res, err = w.submit()
	}
	if err != nil {
		return err
	}
	if !res.Status.Final() {
		if res, err = w.awaitOutcome(res); err != nil {
			return err
		}
	}
	if res.Status == providers.StatusReversed {
		w.reversal = &res
	}
	return w.finalize(outcomeOf(res, w.state.Attempts))
}

func (w *refundRun) registerHandlers() error {
	ctx := w.ctx
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (RefundState, error) { return w.state, nil }); err != nil {
		return fmt.Errorf("register query: %w", err)
	}
	beforeSend := func(Decision) error {
		if w.state.Status != refund.StatusPending || (w.state.Step != StepBegin && w.state.Step != StepAwaitingApproval) {
			return fmt.Errorf("refund is %s (%s): only a refund not yet sent can be canceled", w.state.Status, w.state.Step)
		}
		return nil
	}
	err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateCancel, func(ctx workflow.Context, d Decision) (string, error) {
		w.cancel = &d
		err := workflow.Await(ctx, func() bool { return w.state.Step == StepDone || w.ended })
		if err == nil && w.state.Step != StepDone {
			err = fmt.Errorf("refund workflow ended at step %s before the cancel took effect", w.state.Step)
		}
		return string(w.state.Status), err
	}, workflow.UpdateHandlerOptions{Validator: beforeSend})
	if err != nil {
		return fmt.Errorf("register cancel: %w", err)
	}
	awaitingApproval := func(Decision) error {
		if w.state.Step != StepAwaitingApproval || w.approved || w.rejection != nil {
			return fmt.Errorf("refund is not awaiting approval (step %s)", w.state.Step)
		}
		return nil
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateApprove, func(_ workflow.Context, d Decision) error {
		w.approved = true
		w.mark(StepAwaitingApproval, "approved by "+d.Actor)
		return nil
	}, workflow.UpdateHandlerOptions{Validator: awaitingApproval})
	if err != nil {
		return fmt.Errorf("register approve: %w", err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateReject, func(_ workflow.Context, d Decision) error {
		w.rejection = &d
		return nil
	}, workflow.UpdateHandlerOptions{Validator: awaitingApproval})
	if err != nil {
		return fmt.Errorf("register reject: %w", err)
	}
	err = workflow.SetUpdateHandlerWithOptions(ctx, UpdateResolve, func(_ workflow.Context, r Resolution) error {
		if err := w.resolvable(r); err != nil {
			return err // the state moved between validation and handling
		}
		w.resolutions.SendAsync(r)
		return nil
	}, workflow.UpdateHandlerOptions{Validator: w.resolvable})
	if err != nil {
		return fmt.Errorf("register resolve: %w", err)
	}
	return nil
}

// beforeSubmit waits for approval when needed and honours cancel; it reports
// done when the refund ended without being sent.
func (w *refundRun) beforeSubmit() (bool, error) {
	ctx := w.ctx
	if w.plan.RequiresApproval {
		w.mark(StepAwaitingApproval, "amount above the merchant's approval threshold")
		decided := func() bool { return w.approved || w.rejection != nil || w.cancel != nil }
		var err error
		expired := false
		if timeout := w.plan.Policy.ApprovalTimeout; timeout > 0 {
			var ok bool
			ok, err = workflow.AwaitWithTimeout(ctx, timeout, decided)
			expired = err == nil && !ok
		} else {
			err = workflow.Await(ctx, decided) // runs begun before approvals expired
		}
		if w.rejection != nil {
			return true, w.finalize(refund.Outcome{Status: refund.StatusCanceled, FailureCode: refund.FailureApprovalRejected,
				FailureMessage: fmt.Sprintf("rejected by %s: %s", w.rejection.Actor, w.rejection.Reason)})
		}
		if expired {
			return true, w.finalize(refund.Outcome{Status: refund.StatusCanceled, FailureCode: refund.FailureApprovalExpired,
				FailureMessage: fmt.Sprintf("no ops decision within %s", w.plan.Policy.ApprovalTimeout)})
		}
		if err != nil && !temporal.IsCanceledError(err) {
			return true, err
		}
	}
	if w.cancel != nil || ctx.Err() != nil {
		return true, w.finalize(refund.Outcome{Status: refund.StatusCanceled, FailureCode: refund.FailureCanceled, FailureMessage: "canceled before it was sent"})
	}
	w.mark(StepSubmitting, "")
	// Past this point the refund is PROCESSING and can no longer be released:
	// a cancellation arriving meanwhile must not leave that state unknown.
	markCtx, _ := workflow.NewDisconnectedContext(ctx)
	err := workflow.ExecuteLocalActivity(localCtx(markCtx), a.MarkProcessing, w.state.RefundID).Get(markCtx, nil)
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.Type() == activities.ErrTypeNotPending {
		// Finalized elsewhere (e.g. canceled while the workflow was down): nothing to send.
		w.mark(StepDone, appErr.Message())
		return true, nil
	}
	if err != nil {
		return true, fmt.Errorf("mark processing: %w", err)
	}
	now := workflow.Now(ctx)
	w.state.Status, w.state.SubmittedAt = refund.StatusProcessing, &now
	w.upsert(SAStatus.ValueSet(string(refund.StatusProcessing)))
	return false, nil
}

// submit sends the refund until the provider answers. Retries reuse the same
// idempotency key, and every send but the first looks the refund up first
// (the activity counts sends in Postgres). When retries are exhausted the
// outcome is unknown, so the refund waits as stuck (never released) and
// sends again on the ops retry signal, a callback, or its own slow timer,
// continuing as new before its history grows large.
func (w *refundRun) submit() (providers.Result, error) {
	w.mark(StepSubmitting, "")
	if w.state.SubmittedAt == nil {
		now := workflow.Now(w.ctx)
		w.state.SubmittedAt = &now
	}
	for sends := 1; ; sends++ {
		req := w.plan.Submit
		req.ProviderReference = w.state.ProviderReference
		var res activities.SubmitResult
		w.calling = true
		err := workflow.ExecuteActivity(submitCtx(w.ctx, w.plan.Policy, w.plan.Policy.SubmitAttempts), a.SubmitRefund, req).Get(w.ctx, &res)
		w.calling = false
		w.state.Attempts += attemptsOf(res, err, w.plan.Policy.SubmitAttempts)
		w.showDetails()
		if err == nil {
			w.callAnswered(res.Result)
			return res.Result, nil
		}
		if final, ok := finalFromError(err); ok {
			return final, nil
		}
		w.state.LastError = err.Error()
		w.flagStuck(stuckReason(err, refund.StuckNoAnswer), "provider gave no final answer: outcome unknown")
		if ev, got := w.waitStuck(); got {
			return ev, nil
		}
		// Executions begun before this loop continued as new keep going as they did.
		if (sends >= maxSendsPerRun || workflow.GetInfo(w.ctx).GetContinueAsNewSuggested()) &&
			workflow.GetVersion(w.ctx, changeStuckContinueAsNew, workflow.DefaultVersion, 1) == 1 {
			if ev, ok := w.drainEvents(); ok {
				return ev, nil
			}
			return providers.Result{}, w.continueAsNew(true)
		}
	}
}

// awaitOutcome waits for a callback, polls with backoff, and flags the
// refund stuck past its SLA. It continues as new before history grows large.
func (w *refundRun) awaitOutcome(res providers.Result) (providers.Result, error) {
	w.mark(StepAwaitingOutcome, "provider answered "+string(res.Status))
	delay := w.plan.Policy.PollInitial
	for polls := 0; ; polls++ {
		if polls >= maxPollsPerRun || workflow.GetInfo(w.ctx).GetContinueAsNewSuggested() {
			if ev, ok := w.drainEvents(); ok {
				return ev, nil
			}
			return res, w.continueAsNew(false)
		}
		// A stuck refund keeps reconciling, at a low rate.
		wait := w.plan.Policy.StuckRetryEvery
		if !w.state.Stuck {
			untilStuck := w.state.SubmittedAt.Add(w.plan.Policy.StuckAfter).Sub(workflow.Now(w.ctx))
			if untilStuck <= 0 {
				w.flagStuck(refund.StuckSLA, "no final answer within the SLA")
				continue
			}
			wait = min(delay, untilStuck)
		}
		if ev, got := w.waitSignalOr(wait); got {
			if ev.Status.Final() {
				return ev, nil
			}
			continue
		}
		delay = min(delay*2, w.plan.Policy.PollMax)
		var polled activities.SubmitResult
		w.calling = true
		err := workflow.ExecuteActivity(submitCtx(w.ctx, w.plan.Policy, 3), a.CheckRefund, w.plan.Submit, w.state.ProviderReference).Get(w.ctx, &polled)
		w.calling = false
		if err != nil {
			// A failed status check says nothing about the refund: check again.
			w.state.LastError = err.Error()
			if reason := stuckReason(err, ""); reason != "" {
				w.flagStuck(reason, "status check refused: "+err.Error())
			}
			continue
		}
		w.callAnswered(polled.Result)
		if polled.Status.Final() {
			return polled.Result, nil
		}
	}
}

// waitStuck waits for the ops retry signal, a callback or the slow timer; it
// returns a final answer when a callback brought one.
func (w *refundRun) waitStuck() (providers.Result, bool) {
	ev, got := w.waitSignalOr(w.plan.Policy.StuckRetryEvery)
	return ev, got && ev.Status.Final()
}

// waitSignalOr waits up to d for a provider event or an ops retry. It reports
// got=true with the event when a provider event arrived.
func (w *refundRun) waitSignalOr(d time.Duration) (providers.Result, bool) {
	next := workflow.Now(w.ctx).Add(d)
	w.state.NextRetryAt = &next
	w.showDetails()
	defer func() {
		w.state.NextRetryAt = nil
		w.showDetails()
	}()
	timerCtx, stopTimer := workflow.WithCancel(w.ctx)
	defer stopTimer()
	var ev ProviderEvent
	got := false
	sel := workflow.NewSelector(w.ctx)
	sel.AddReceive(w.events, func(c workflow.ReceiveChannel, _ bool) {
		c.Receive(w.ctx, &ev)
		got = true
	})
	sel.AddReceive(w.retries, func(c workflow.ReceiveChannel, _ bool) {
		var actor string
		c.Receive(w.ctx, &actor)
		w.mark(w.state.Step, "retry requested by "+actor)
	})
	resolved := false
	sel.AddReceive(w.resolutions, func(c workflow.ReceiveChannel, _ bool) {
		var r Resolution
		c.Receive(w.ctx, &r)
		ev.Result, resolved = r.result(w.state.ProviderReference), true
		w.mark(w.state.Step, fmt.Sprintf("resolved %s by %s: %s", r.Status, r.Actor, r.Reason))
	})
	sel.AddFuture(workflow.NewTimer(timerCtx, d), func(workflow.Future) {})
	sel.Select(w.ctx)
	if got {
		w.mark(w.state.Step, "provider event: "+string(ev.Result.Status))
		w.answered(ev.Result)
	}
	return ev.Result, got || resolved
}

// result is the provider answer a resolution stands for.
func (r Resolution) result(providerReference string) providers.Result {
	res := providers.Result{Status: r.Status, ProviderReference: providerReference}
	if r.Status != providers.StatusSucceeded {
		res.FailureCode, res.FailureMessage = "ops.resolved", fmt.Sprintf("resolved by %s: %s", r.Actor, r.Reason)
	}
	return res
}

func (w *refundRun) drainEvents() (providers.Result, bool) {
	for {
		var ev ProviderEvent
		if !w.events.ReceiveAsync(&ev) {
			return providers.Result{}, false
		}
		w.answered(ev.Result)
		if ev.Result.Status.Final() {
			return ev.Result, true
		}
	}
}

func (w *refundRun) answered(res providers.Result) {
	if res.ProviderReference != "" {
		w.state.ProviderReference = res.ProviderReference
	}
}

// callAnswered records the answer to one of our calls: the provider takes
// our credentials (again).
func (w *refundRun) callAnswered(res providers.Result) {
	w.answered(res)
	if w.state.Stuck && w.state.StuckReason == refund.StuckAuth {
		w.setStuck(false, "")
		w.mark(w.state.Step, "provider accepts our credentials again")
	}
}

// flagStuck flags the refund stuck for reason, for ops to see.
func (w *refundRun) flagStuck(reason, why string) {
	w.mark(StepStuck, why)
	if !w.state.Stuck || w.state.StuckReason != reason {
		w.setStuck(true, reason)
	}
}

// setStuck records the stuck flag and reason in Postgres and the search attribute.
func (w *refundRun) setStuck(stuck bool, reason string) {
	changed := w.state.Stuck != stuck
	w.state.Stuck, w.state.StuckReason = stuck, reason
	w.showDetails()
	if err := workflow.ExecuteLocalActivity(localCtx(w.ctx), a.SetStuck, w.state.RefundID, stuck, reason).Get(w.ctx, nil); err != nil {
		workflow.GetLogger(w.ctx).Error("set stuck", "stuck", stuck, "reason", reason, "error", err)
	}
	if changed {
		w.upsert(SAStuck.ValueSet(stuck))
	}
}

// stuckReason is why err leaves a refund stuck: def unless the provider
// refused Backflow's credentials or gave an answer of unknown outcome.
func stuckReason(err error, def string) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case activities.ErrTypeProviderAuth:
			return refund.StuckAuth
		case activities.ErrTypeOutcomeUnknown:
			return refund.StuckUnknown
		}
	}
	return def
}

// continueAsNew ends the run with its state carried to the next one;
// resubmit says the refund was being re-sent rather than polled.
func (w *refundRun) continueAsNew(resubmit bool) error {
	w.state.NextRetryAt = nil
	return workflow.NewContinueAsNewError(w.ctx, RefundWorkflow,
		RefundInput{RefundID: w.state.RefundID, Resume: w.trimmedState(), Resubmit: resubmit})
}

// finalize settles or releases the reservation on a disconnected context, so
// it also runs when the workflow was canceled (the final event's webhooks
// are queued in the same Postgres transaction).
func (w *refundRun) finalize(o refund.Outcome) error {
	w.mark(StepFinalizing, string(o.Status))
	ctx, _ := workflow.NewDisconnectedContext(w.ctx)
	o.Attempts = w.state.Attempts
	var res activities.FinalizeResult
	err := workflow.ExecuteLocalActivity(localCtx(ctx), a.FinalizeRefund, activities.FinalizeInput{RefundID: w.state.RefundID, Outcome: o}).Get(ctx, &res)
	if err != nil {
		return fmt.Errorf("finalize refund: %w", err)
	}
	w.state.Status, w.state.Stuck, w.state.StuckReason = res.Status, false, ""
	if o.FailureMessage != "" {
		w.state.LastError = o.FailureMessage
	}
	w.upsert(SAStatus.ValueSet(string(res.Status)), SAStuck.ValueSet(false))
	w.ctx = ctx
	w.startDeliveries(res.Deliveries)
	w.mark(StepDone, string(res.Status))
	return nil
}

// reverseIfReported reverses a succeeded refund when the provider said so:
// its final answer was a reversal, or a provider event that arrived after
// the success reports the refund failed (ops resolutions never reverse).
func (w *refundRun) reverseIfReported() error {
	rev := w.reversal
	for rev == nil {
		var ev ProviderEvent
		if !w.events.ReceiveAsync(&ev) {
			return nil
		}
		if ev.Result.Status.Final() && ev.Result.Status != providers.StatusSucceeded {
			rev = &ev.Result
		}
	}
	// Executions begun before reversals existed end as they did.
	if workflow.GetVersion(w.ctx, changeReversal, workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return nil
	}
	w.mark(StepFinalizing, "provider reversed the refund: "+string(rev.Status))
	ctx, _ := workflow.NewDisconnectedContext(w.ctx)
	in := activities.ReverseInput{RefundID: w.state.RefundID, FailureCode: nonEmpty(rev.FailureCode, "provider.reversed"),
		FailureMessage: nonEmpty(rev.FailureMessage, "the provider reported the refund "+strings.ToLower(string(rev.Status))+" after it succeeded")}
	var res activities.FinalizeResult
	if err := workflow.ExecuteLocalActivity(localCtx(ctx), a.ReverseRefund, in).Get(ctx, &res); err != nil {
		return fmt.Errorf("reverse refund: %w", err)
	}
	w.state.Status, w.state.LastError = res.Status, in.FailureMessage
	w.upsert(SAStatus.ValueSet(string(res.Status)))
	w.startDeliveries(res.Deliveries)
	w.mark(StepDone, string(res.Status))
	return nil
}

// startDeliveries hands over webhook deliveries that a local activity of
// the previous release returned instead of queueing them with their
// events (today's return none: the refund's webhooks cost its workflow
// nothing, whatever its merchant's endpoints). Histories from before the
// outbox started one abandoned child per delivery and replay that way; a
// run that meets such a result now queues them in the outbox with one
// local activity.
func (w *refundRun) startDeliveries(ds []activities.Delivery) {
	if len(ds) == 0 {
		return
	}
	// Disconnected: the events are already marked dispatched, so a canceled
	// workflow must still hand their deliveries over.
	ctx, _ := workflow.NewDisconnectedContext(w.ctx)
	if workflow.GetVersion(ctx, changeWebhookOutbox, workflow.DefaultVersion, 1) == 1 {
		if err := workflow.ExecuteLocalActivity(localCtx(ctx), a.QueueDeliveries, ds).Get(ctx, nil); err != nil {
			workflow.GetLogger(w.ctx).Error("queue webhook deliveries", "deliveries", len(ds), "error", err)
		}
		return
	}
	for _, d := range ds {
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:            WebhookWorkflowID(d.EventID, d.EndpointID),
			ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
			WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		})
		f := workflow.ExecuteChildWorkflow(cctx, WebhookWorkflowName, d)
		if err := f.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
			// Already started elsewhere (reconciler): the delivery is in good hands.
			workflow.GetLogger(w.ctx).Warn("start webhook delivery", "eventId", d.EventID, "error", err)
		}
	}
}

func (w *refundRun) mark(step, note string) {
	w.state.Step = step
	w.state.Timeline = append(w.state.Timeline, TimelineEntry{Step: step, At: workflow.Now(w.ctx), Note: note})
	w.showDetails()
}

func (w *refundRun) upsert(updates ...temporal.SearchAttributeUpdate) {
	if err := workflow.UpsertTypedSearchAttributes(w.ctx, updates...); err != nil {
		workflow.GetLogger(w.ctx).Error("upsert search attributes", "error", err)
	}
}

// trimmedState keeps the last timeline entries across continue-as-new.
func (w *refundRun) trimmedState() *RefundState {
	s := w.state
	if n := len(s.Timeline); n > 20 {
		s.Timeline = append([]TimelineEntry(nil), s.Timeline[n-20:]...)
	}
	return &s
}

// finalFromError turns a decline or invalid request into a final answer.
func finalFromError(err error) (providers.Result, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return providers.Result{}, false
	}
	var code string
	if appErr.HasDetails() {
		_ = appErr.Details(&code)
	}
	switch appErr.Type() {
	case activities.ErrTypeDeclined:
		return providers.Result{Status: providers.StatusDeclined, FailureCode: nonEmpty(code, "declined"), FailureMessage: appErr.Message()}, true
	case activities.ErrTypeInvalid:
		return providers.Result{Status: providers.StatusFailed, FailureCode: nonEmpty(code, "invalid_request"), FailureMessage: appErr.Message()}, true
	}
	return providers.Result{}, false
}

// attemptsOf counts the provider calls one activity execution made.
func attemptsOf(res activities.SubmitResult, err error, max int32) int {
	if err == nil {
		return int(res.Attempt)
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		return 1
	}
	return int(max)
}

// outcomeOf is how a final provider answer ends the refund. A reversal is
// first a success: the money moved, then came back (see reverseIfReported).
func outcomeOf(res providers.Result, attempts int) refund.Outcome {
	status := refund.StatusFailed
	switch res.Status {
	case providers.StatusSucceeded, providers.StatusReversed:
		status = refund.StatusSucceeded
		res.FailureCode, res.FailureMessage = "", ""
	case providers.StatusDeclined:
		status = refund.StatusDeclined
	case providers.StatusCanceled:
		status = refund.StatusCanceled
		res.FailureCode = refund.FailureVoided
	}
	return refund.Outcome{Status: status, ProviderReference: res.ProviderReference, FailureCode: res.FailureCode,
		FailureMessage: res.FailureMessage, Attempts: attempts}
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// localCtx runs short Postgres steps as local activities, retried until the
// database answers: a refund's bookkeeping is never given up.
func localCtx(ctx workflow.Context) workflow.Context {
	return workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        200 * time.Millisecond,
			BackoffCoefficient:     2,
			MaximumInterval:        30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrTypeNotPending, activities.ErrTypeRule},
		},
	})
}

// submitCtx is for provider calls: explicit timeouts, heartbeats, bounded
// retries with backoff, declines and invalid requests never retried.
func submitCtx(ctx workflow.Context, p activities.Policy, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		HeartbeatTimeout:    5 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        p.SubmitInitialInterval,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        attempts,
			NonRetryableErrorTypes: []string{activities.ErrTypeDeclined, activities.ErrTypeInvalid, activities.ErrTypeProviderAuth},
		},
	})
}
