// Package refunds is Backflow's business operations: everything the API
// (and the ops CLI through it) can ask of the product, on Postgres (store),
// the providers and Temporal (Gateway). Handlers parse and render; which
// refund may be created, canceled, approved or resolved, and how each
// reaches the workflow, is decided here and in package refund.
package refunds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/workflows"
)

// Service runs the refund operations.
type Service struct {
	store     *store.Store
	providers *providers.Registry
	temporal  Gateway
	log       *slog.Logger
	hooks     Hooks
	urls      webhooks.URLPolicy
}

// Hooks are told what the service did (the API process's metrics); any may be nil.
type Hooks struct {
	// Created is told about each refund accepted (not about idempotent replays).
	Created func(refund.Refund)
	// Reversed is told about each refund reversed on a provider's callback.
	Reversed func(refund.Refund)
	// Contradiction is told about each provider callback saying a refund
	// succeeded that Backflow ended otherwise.
	Contradiction func(provider string)
}

// Option configures the service.
type Option func(*Service)

// WithWebhookURLs sets the policy webhook endpoint URLs are checked against
// (default: https to public addresses only).
func WithWebhookURLs(p webhooks.URLPolicy) Option { return func(s *Service) { s.urls = p } }

// New returns the service.
func New(st *store.Store, reg *providers.Registry, gw Gateway, log *slog.Logger, hooks Hooks, opts ...Option) *Service {
	s := &Service{store: st, providers: reg, temporal: gw, log: log, hooks: hooks}
	for _, o := range opts {
		o(s)
	}
	return s
}

// notFound is the RuleError of an object the caller cannot see.
func notFound(code string, id uuid.UUID) *refund.RuleError {
	return refund.Rule(code, "no such object: %s", id)
}

// Create accepts a refund: it reserves the amount and starts the refund's
// workflow. A retry with the Idempotency-Key of a refund already created
// returns that refund.
func (s *Service) Create(ctx context.Context, in refund.NewRefund) (refund.Refund, error) {
	in.Route = s.route
	r, err := s.store.CreateRefund(ctx, in)
	created := err == nil
	if errors.Is(err, refund.ErrDuplicate) && in.IdempotencyKey != "" {
		// A retry of a request whose response was lost: answer with its refund.
		r, err = s.store.GetRefundByIdempotencyKey(ctx, in.MerchantID, in.IdempotencyKey)
	}
	if err != nil {
		return r, err
	}
	if created && s.hooks.Created != nil {
		s.hooks.Created(r)
	}
	s.start(ctx, r)
	return r, nil
}

// start starts the refund's workflow. A failure is logged, not returned: the
// refund and its reservation are committed, and the reconciler starts any
// refund whose workflow did not report in.
func (s *Service) start(ctx context.Context, r refund.Refund) {
	if err := s.temporal.StartRefund(ctx, r); err != nil && !errors.Is(err, refund.ErrAlreadyStarted) {
		s.log.ErrorContext(ctx, "start refund workflow; the reconciler will retry", "refundId", r.ID,
			"workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID, "error", err)
	}
}

// route picks the refund path from the provider's capabilities.
func (s *Service) route(t refund.Transaction, targetType string) (refund.Method, error) {
	conn, ok := s.providers.Get(t.Provider)
	if !ok {
		return "", refund.Rule(refund.CodeMethodUnavailable, "provider %q is not configured", t.Provider)
	}
	caps := conn.Capabilities()
	if targetType == refund.TargetGiftCard && !caps.GiftCards {
		return "", refund.Rule(refund.CodeTargetUnsupported,
			"provider %q cannot refund to a gift card: refund to the payment method instead", t.Provider)
	}
	if caps.RefundAPI {
		return refund.MethodProviderRefund, nil
	}
	if caps.Payouts && t.PayoutDestination != nil && t.PayoutDestination.Complete() {
		return refund.MethodPayoutRefund, nil
	}
	return "", refund.Rule(refund.CodeMethodUnavailable,
		"provider %q has no refund API and the transaction holds no complete payout destination", t.Provider)
}

// Get reads a refund the scope can see.
func (s *Service) Get(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Refund, error) {
	r, err := s.store.GetRefund(ctx, scope, id)
	if errors.Is(err, refund.ErrNotFound) {
		return r, notFound(refund.CodeRefundNotFound, id)
	}
	return r, err
}

// List returns a page of refunds, newest first, and the next page's cursor.
func (s *Service) List(ctx context.Context, f refund.RefundFilter) ([]refund.Refund, uuid.UUID, error) {
	return s.store.ListRefunds(ctx, f)
}

// Cancel cancels a refund not yet sent, through its workflow so the
// workflow and the database agree; a refund whose workflow is not running
// is canceled in the database directly.
func (s *Service) Cancel(ctx context.Context, scope refund.Scope, id uuid.UUID, actor string) (refund.Refund, error) {
	r, err := s.Get(ctx, scope, id)
	if err != nil {
		return r, err
	}
	if r.Status != refund.StatusPending {
		return r, refund.Rule(refund.CodeNotCancelable, "refund is %s: only a PENDING refund not yet sent can be canceled", r.Status)
	}
	err = s.temporal.Update(ctx, r.ID, workflows.UpdateCancel, workflows.Decision{Actor: actor})
	var rejected *UpdateRejected
	switch {
	case errors.Is(err, refund.ErrWorkflowNotRunning):
		if _, _, err := s.store.Finalize(ctx, r.ID, refund.Outcome{Status: refund.StatusCanceled, FailureCode: "canceled",
			FailureMessage: "canceled before it was sent"}); err != nil {
			return r, err
		}
	case errors.As(err, &rejected):
		s.log.InfoContext(ctx, "cancel refused by workflow", "refundId", r.ID, "workflowId", workflows.RefundWorkflowID(r.ID),
			"merchantId", r.MerchantID, "error", err)
		return r, refund.Rule(refund.CodeNotCancelable, "the refund was already sent to the provider and can no longer be canceled")
	case err != nil:
		return r, refund.Unavailable("could not reach the refund's workflow; retry the cancel", err)
	}
	r, err = s.store.GetRefund(ctx, refund.AllMerchants, r.ID)
	if err == nil && r.Status != refund.StatusCanceled {
		return r, refund.Rule(refund.CodeNotCancelable, "refund is %s: it can no longer be canceled", r.Status)
	}
	return r, err
}

// Ready checks that Postgres and Temporal answer; the map says which does.
func (s *Service) Ready(ctx context.Context) (map[string]string, bool) {
	checks := map[string]string{"postgres": "ok", "temporal": "ok"}
	ok := true
	if err := s.store.Pool().Ping(ctx); err != nil {
		s.log.WarnContext(ctx, "readyz: postgres unreachable", "error", err)
		checks["postgres"], ok = "unavailable", false
	}
	if err := s.temporal.CheckHealth(ctx); err != nil {
		s.log.WarnContext(ctx, "readyz: temporal unreachable", "error", err)
		checks["temporal"], ok = "unavailable", false
	}
	return checks, ok
}

// wrap adds context to an error without hiding what it is.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
