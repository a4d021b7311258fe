// Package activities holds every side effect of Backflow's workflows:
// Postgres writes through the store and provider calls through connectors.
package activities

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// Error types workflows branch on.
const (
	// ErrTypeDeclined and ErrTypeInvalid end a refund: the provider declined
	// or rejected a first send (providers.FinalRejection). Non-retryable.
	ErrTypeDeclined = "RefundDeclined"
	ErrTypeInvalid  = "InvalidRefundRequest"
	// ErrTypeProviderAuth: the provider refused Backflow's credentials
	// (401/403). Never final; non-retryable so the refund is flagged stuck
	// (provider.auth) at once.
	ErrTypeProviderAuth = "ProviderAuth"
	// ErrTypeOutcomeUnknown: an answer that is neither success nor a
	// definitive rejection (409, a rejection after an earlier attempt).
	// Retried: the next attempt looks the refund up before sending again.
	ErrTypeOutcomeUnknown = "OutcomeUnknown"
	ErrTypeNotPending     = "RefundNotPending"
	ErrTypeRule           = "RuleViolation"
)

// Policy is the timing of one refund, read from configuration by the
// activity and recorded in history so the workflow stays deterministic.
type Policy struct {
	StuckAfter            time.Duration // PROCESSING longer than this is flagged stuck
	PollInitial           time.Duration // first status poll after an asynchronous answer
	PollMax               time.Duration // polling backs off up to this
	SubmitAttempts        int32         // provider attempts before the refund waits as stuck
	SubmitInitialInterval time.Duration
	StuckRetryEvery       time.Duration // how often a stuck refund re-checks by itself
	// ApprovalTimeout ends a wait for an ops approval: the refund is
	// CANCELED with approval.expired (0, as in runs begun before it
	// existed: no expiry).
	ApprovalTimeout time.Duration
}

// DefaultPolicy is the production timing.
func DefaultPolicy() Policy {
	return Policy{
		StuckAfter:            15 * time.Minute,
		PollInitial:           5 * time.Second,
		PollMax:               5 * time.Minute,
		SubmitAttempts:        8,
		SubmitInitialInterval: time.Second,
		StuckRetryEvery:       15 * time.Minute,
		ApprovalTimeout:       168 * time.Hour,
	}
}

// Activities holds the dependencies of every activity. Workflows call its
// methods through a nil *Activities; the worker registers a real one.
type Activities struct {
	Store     Store
	Providers *providers.Registry
	Policy    Policy
	// Webhooks is the webhook delivery timing; zero fields take the defaults.
	Webhooks WebhookPolicy
	// WebhookClient sends deliveries: webhooks.URLPolicy.Client() of the
	// deployment's policy; nil is https to public addresses only.
	WebhookClient *http.Client
	// Dispatch tunes the webhook dispatchers; zero fields take the defaults.
	Dispatch DispatchOptions
	// Workflows starts and lists workflows for the reconciler's repairs.
	Workflows Workflows
	// Observe, when set, is told about each finished refund (metrics).
	Observe func(refund.Refund)
	// ObserveDelivery, when set, is told how each webhook attempt of a
	// dispatcher ended (a DeliveryOutcome status) and how long after its
	// event; EndpointDisabled each endpoint Backflow disabled, by cause
	// (DisabledGone, DisabledFailing, DisabledURLNotAllowed) (metrics).
	ObserveDelivery  func(status string, sinceEvent time.Duration)
	EndpointDisabled func(cause string)
}

// Delivery is one event to deliver to one webhook endpoint.
type Delivery = refund.Delivery

// RefundPlan is what the workflow needs to drive one refund.
type RefundPlan struct {
	RefundID         uuid.UUID
	MerchantID       uuid.UUID
	Status           refund.Status
	Method           refund.Method
	Provider         string
	Amount           int64
	Currency         string
	RequiresApproval bool
	// ProviderReference is the provider's id of the refund, when a run before
	// this one learned it.
	ProviderReference string `json:",omitempty"`
	Submit            SubmitRequest
	Policy            Policy
	// Deliveries were webhook deliveries for the workflow to start, from
	// workers before the webhook outbox; now always empty (they are queued
	// with their events), kept so those histories replay.
	Deliveries []Delivery `json:",omitempty"`
}

// SubmitRequest is the provider call of one refund, fixed for its lifetime.
type SubmitRequest struct {
	RefundID uuid.UUID
	Provider string
	Method   refund.Method
	Refund   providers.RefundRequest
	Payout   providers.PayoutRequest
	// ProviderReference is the provider's id of the refund when the workflow
	// knows it: a look-up before a re-send reads it directly.
	ProviderReference string `json:",omitempty"`
}

// BeginRefund records that the workflow runs and returns the refund's plan.
func (a *Activities) BeginRefund(ctx context.Context, refundID uuid.UUID) (RefundPlan, error) {
	r, t, err := a.Store.BeginRefund(ctx, refundID)
	if err != nil {
		return RefundPlan{}, fmt.Errorf("begin refund: %w", err)
	}
	return RefundPlan{
		RefundID: r.ID, MerchantID: r.MerchantID, Status: r.Status, Method: r.Method, Provider: r.Provider,
		Amount: r.Amount, Currency: r.Currency, RequiresApproval: r.RequiresApproval, ProviderReference: r.ProviderReference, Policy: a.Policy,
		Submit: buildSubmit(r, t),
	}, nil
}

func buildSubmit(r refund.Refund, t refund.Transaction) SubmitRequest {
	// The provider idempotency key is the refund id and nothing else.
	key := r.ID.String()
	req := SubmitRequest{RefundID: r.ID, Provider: r.Provider, Method: r.Method}
	if r.Method == refund.MethodPayoutRefund {
		req.Payout = providers.PayoutRequest{
			IdempotencyKey: key, RefundID: key, PaymentReference: t.ProviderReference,
			Amount: r.Amount, Currency: r.Currency, Description: r.Description,
		}
		if t.PayoutDestination != nil {
			req.Payout.Destination = *t.PayoutDestination
		}
		return req
	}
	lines := make([]providers.LineItem, 0, len(r.LineItems))
	for _, li := range r.LineItems {
		lines = append(lines, providers.LineItem{ID: li.ID, Quantity: li.Quantity, Amount: li.Amount})
	}
	req.Refund = providers.RefundRequest{
		IdempotencyKey: key, RefundID: key, PaymentReference: t.ProviderReference, Amount: r.Amount,
		Currency: r.Currency, Reason: r.Reason, ReasonCode: r.ReasonCode, Description: r.Description,
		Reference: r.Reference, Metadata: r.Metadata, LineItems: lines, TargetType: r.TargetType, TargetID: r.TargetID,
		FullAmountOfOrder: r.Amount == t.Amount,
	}
	return req
}

// MarkProcessing moves the refund to PROCESSING right before the provider call.
func (a *Activities) MarkProcessing(ctx context.Context, refundID uuid.UUID) error {
	_, err := a.Store.MarkProcessing(ctx, refundID)
	var rule *refund.RuleError
	if errors.As(err, &rule) {
		return temporal.NewNonRetryableApplicationError(rule.Message, ErrTypeNotPending, err)
	}
	return err
}

// SubmitResult is a provider answer and the attempt that got it.
type SubmitResult struct {
	providers.Result
	Attempt int32
}

// SubmitRefund sends the refund (or payout) to the provider. Calling it again
// returns the same provider-side refund: the idempotency key never changes,
// and every send but the first (counted in Postgres) looks the refund up
// first, so a provider that forgot the key (Stripe, after 24 h) cannot be
// made to refund twice.
func (a *Activities) SubmitRefund(ctx context.Context, req SubmitRequest) (SubmitResult, error) {
	conn, err := a.connector(req.Provider)
	if err != nil {
		return SubmitResult{}, err
	}
	sends, err := a.Store.CountSend(ctx, req.RefundID)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("count send: %w", err)
	}
	firstSend := sends == 1
	res, err := withHeartbeat(ctx, func(ctx context.Context) (providers.Result, error) {
		if !firstSend {
			found, err := lookUp(ctx, conn, req, req.ProviderReference)
			if req.ProviderReference != "" || !errors.Is(err, providers.ErrNotFound) {
				// Found; or it exists (the provider gave us its id); or we
				// cannot tell: never send blind.
				return found, err
			}
		}
		if req.Method == refund.MethodPayoutRefund {
			return conn.Payout(ctx, req.Payout)
		}
		return conn.Refund(ctx, req.Refund)
	})
	return a.recordAnswer(ctx, req, res, err, firstSend)
}

// CheckRefund asks the provider for the refund's current status. Its errors
// are never final: a failed check says nothing about the refund.
func (a *Activities) CheckRefund(ctx context.Context, req SubmitRequest, providerReference string) (SubmitResult, error) {
	conn, err := a.connector(req.Provider)
	if err != nil {
		return SubmitResult{}, err
	}
	res, err := withHeartbeat(ctx, func(ctx context.Context) (providers.Result, error) {
		return lookUp(ctx, conn, req, providerReference)
	})
	return a.recordAnswer(ctx, req, res, err, false)
}

// recordAnswer keeps the provider reference so callbacks find the refund, and
// turns connector errors into Temporal errors with the right retry behaviour.
func (a *Activities) recordAnswer(ctx context.Context, req SubmitRequest, res providers.Result, err error, firstSend bool) (SubmitResult, error) {
	out := SubmitResult{Result: res, Attempt: attempt(ctx)}
	if err != nil {
		a.logProviderError(ctx, req, err, out.Attempt)
		return out, temporalError(err, firstSend)
	}
	if res.ProviderReference != "" && !res.Status.Final() {
		if err := a.Store.SetProviderReference(ctx, req.RefundID, res.ProviderReference); err != nil {
			return out, fmt.Errorf("record provider reference: %w", err)
		}
	}
	return out, nil
}

// logProviderError logs a failed provider call once: the worker's
// interceptor adds the refund's ids to the activity's logger and does not
// log provider errors again.
func (a *Activities) logProviderError(ctx context.Context, req SubmitRequest, err error, attempt int32) {
	var pe *providers.Error
	code, kind := "", string(providers.KindOf(err))
	if errors.As(err, &pe) {
		code = pe.Code
	}
	logger(ctx).Warn("provider call failed", "provider", req.Provider, "method", req.Method,
		"kind", kind, "code", code, "attempt", attempt, "error", err)
}

// logger is the activity's logger, or the default one outside an activity
// (a reconciler pass run by hand or from a test).
func logger(ctx context.Context) log.Logger {
	if activity.IsActivity(ctx) {
		return activity.GetLogger(ctx)
	}
	return log.NewStructuredLogger(slog.Default())
}

// attempt is the activity's attempt number (1 outside an activity).
func attempt(ctx context.Context) int32 {
	if activity.IsActivity(ctx) {
		return activity.GetInfo(ctx).Attempt
	}
	return 1
}

// lookUp asks the provider for the refund (or payout) by its reference or,
// when unknown, by the Backflow refund id.
func lookUp(ctx context.Context, conn providers.Connector, req SubmitRequest, providerReference string) (providers.Result, error) {
	l := providers.Lookup{ProviderReference: providerReference, RefundID: req.RefundID.String()}
	if req.Method == refund.MethodPayoutRefund {
		l.PaymentReference = req.Payout.PaymentReference
		return conn.PayoutStatus(ctx, l)
	}
	l.PaymentReference = req.Refund.PaymentReference
	return conn.RefundStatus(ctx, l)
}

func (a *Activities) connector(name string) (providers.Connector, error) {
	conn, ok := a.Providers.Get(name)
	if !ok {
		// A provider missing from this worker's config may be added back: retry.
		return nil, fmt.Errorf("provider %q is not configured on this worker", name)
	}
	return conn, nil
}

// temporalError maps a connector error to a Temporal error by the outcome
// rules (providers/outcome.go): a decline or rejection of a first send is
// final; 401/403 stop the activity at once (stuck, provider.auth); any
// other answer leaves the outcome unknown and is retried, 429 after its
// Retry-After.
func temporalError(err error, firstSend bool) error {
	if final, ok := providers.FinalRejection(err, firstSend); ok {
		typ := ErrTypeInvalid
		if final.Status == providers.StatusDeclined {
			typ = ErrTypeDeclined
		}
		return temporal.NewNonRetryableApplicationError(final.FailureMessage, typ, err, final.FailureCode)
	}
	var pe *providers.Error
	if !errors.As(err, &pe) {
		return err
	}
	switch {
	case pe.Kind == providers.KindAuth:
		return temporal.NewNonRetryableApplicationError(pe.Error(), ErrTypeProviderAuth, err, pe.Code)
	case pe.RetryAfter > 0:
		return temporal.NewApplicationErrorWithOptions(pe.Error(), "ProviderRetryAfter",
			temporal.ApplicationErrorOptions{NextRetryDelay: pe.RetryAfter, Cause: err})
	case pe.Kind != providers.KindRetryable:
		return temporal.NewApplicationError(pe.Error(), ErrTypeOutcomeUnknown, err, pe.Code)
	}
	return err
}

// withHeartbeat heartbeats while a provider call is in flight so a dead
// worker is noticed within the heartbeat timeout, not the whole call timeout.
func withHeartbeat[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	if !activity.IsActivity(ctx) {
		return fn(ctx)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return fn(ctx)
}

// FinalizeInput ends one refund.
type FinalizeInput struct {
	RefundID uuid.UUID
	Outcome  refund.Outcome
}

// FinalizeResult is the refund's final state.
type FinalizeResult struct {
	Status refund.Status
	// Deliveries: see RefundPlan.Deliveries.
	Deliveries []Delivery `json:",omitempty"`
}

// FinalizeRefund settles or releases the reservation exactly once.
func (a *Activities) FinalizeRefund(ctx context.Context, in FinalizeInput) (FinalizeResult, error) {
	r, ev, err := a.Store.Finalize(ctx, in.RefundID, in.Outcome)
	var rule *refund.RuleError
	if errors.As(err, &rule) {
		return FinalizeResult{}, temporal.NewNonRetryableApplicationError(rule.Message, ErrTypeRule, err)
	}
	if err != nil {
		return FinalizeResult{}, fmt.Errorf("finalize refund: %w", err)
	}
	if ev != nil && a.Observe != nil {
		a.Observe(r)
	}
	return FinalizeResult{Status: r.Status}, nil
}

// SetStuck flags the refund stuck with a reason, or clears the flag, in Postgres.
func (a *Activities) SetStuck(ctx context.Context, refundID uuid.UUID, stuck bool, reason string) error {
	return a.Store.SetStuck(ctx, refundID, stuck, reason)
}

// ReverseInput records a provider's reversal of a succeeded refund.
type ReverseInput struct {
	RefundID       uuid.UUID
	FailureCode    string
	FailureMessage string
}

// ReverseRefund gives a succeeded refund's amount back: the provider
// reported it failed or reversed after it succeeded. It is idempotent.
func (a *Activities) ReverseRefund(ctx context.Context, in ReverseInput) (FinalizeResult, error) {
	r, ev, err := a.Store.Reverse(ctx, in.RefundID, in.FailureCode, in.FailureMessage)
	var rule *refund.RuleError
	if errors.As(err, &rule) {
		return FinalizeResult{}, temporal.NewNonRetryableApplicationError(rule.Message, ErrTypeRule, err)
	}
	if err != nil {
		return FinalizeResult{}, fmt.Errorf("reverse refund: %w", err)
	}
	if ev != nil && a.Observe != nil {
		a.Observe(r)
	}
	return FinalizeResult{Status: r.Status}, nil
}

// QueueDeliveries puts in the outbox the deliveries a worker of the
// previous release returned to a refund's workflow (see
// RefundWorkflow's changeWebhookOutbox).
func (a *Activities) QueueDeliveries(ctx context.Context, ds []Delivery) error {
	return a.Store.QueueDeliveries(ctx, ds)
}
