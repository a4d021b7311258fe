package refunds

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// Detail is everything known about one refund, from Postgres and from its
// live workflow: what `backflow ops show` prints.
type Detail struct {
	Refund          refund.Refund
	Ledger          []refund.LedgerEntry
	Events          []refund.EventRecord
	WebhookAttempts []refund.DeliveryAttempt
	Audit           []refund.AuditEntry // oldest first, like the ledger and events
	Workflow        workflows.Execution
}

// Show reads a refund of any merchant with its ledger, events, webhook
// attempts, ops audit and workflow.
func (s *Service) Show(ctx context.Context, id uuid.UUID) (Detail, error) {
	var d Detail
	var err error
	if d.Refund, err = s.Get(ctx, refund.AllMerchants, id); err != nil {
		return d, err
	}
	if d.Ledger, err = s.store.ListLedger(ctx, id); err != nil {
		return d, wrap("read ledger", err)
	}
	if d.Events, err = s.store.EventsOfRefund(ctx, id); err != nil {
		return d, wrap("read events", err)
	}
	eventIDs := make([]uuid.UUID, 0, len(d.Events))
	for _, e := range d.Events {
		eventIDs = append(eventIDs, e.ID)
	}
	if d.WebhookAttempts, err = s.store.DeliveryAttempts(ctx, eventIDs); err != nil {
		return d, wrap("read webhook attempts", err)
	}
	if d.Audit, err = s.store.ListAudit(ctx, refund.AuditFilter{RefundID: id}); err != nil {
		return d, wrap("read audit", err)
	}
	slices.Reverse(d.Audit)
	if d.Ledger == nil {
		d.Ledger = []refund.LedgerEntry{}
	}
	d.Workflow = s.temporal.Describe(ctx, id)
	return d, nil
}

// Retry asks the refund's workflow to re-drive it now. A refund whose
// workflow closed without finishing it (terminated, failed, timed out)
// gets a new run, which looks the refund up at its provider first.
func (s *Service) Retry(ctx context.Context, r refund.Refund, actor string) (string, error) {
	if r.Status.Final() {
		return "", refund.Rule(refund.CodeNotRetryable, "refund is %s: it is final, there is nothing to retry", r.Status)
	}
	err := s.temporal.SignalRetry(ctx, r.ID, actor)
	if errors.Is(err, refund.ErrWorkflowNotRunning) {
		return s.resume(ctx, r)
	}
	if err != nil {
		return "", wrap("signal retry", err)
	}
	if r.Status == refund.StatusPending {
		return "retry signal sent: it takes effect once the refund waits on its provider", nil
	}
	return "retry signal sent: the workflow re-checks the refund with its provider now", nil
}

// resume starts a new run for a refund whose workflow is not running.
func (s *Service) resume(ctx context.Context, r refund.Refund) (string, error) {
	err := s.temporal.ResumeRefund(ctx, r)
	switch {
	case errors.Is(err, refund.ErrAlreadyStarted):
		return "", refund.Rule(refund.CodeWorkflowUnavailable,
			"the refund's workflow is not running and its last run completed: see `backflow ops show` and the runbook")
	case err != nil:
		return "", wrap("resume workflow", err)
	}
	return "the refund's workflow had closed without finishing it: a new run started; it looks the refund up at its provider first", nil
}

// Approve sends a refund that awaits approval to its provider.
func (s *Service) Approve(ctx context.Context, r refund.Refund, actor, reason string) (string, error) {
	if err := s.decide(ctx, r, workflows.UpdateApprove, workflows.Decision{Actor: actor, Reason: reason}); err != nil {
		return "", err
	}
	return "refund approved: the workflow sends it to the provider", nil
}

// Reject cancels a refund that awaits approval; a reason is required.
func (s *Service) Reject(ctx context.Context, r refund.Refund, actor, reason string) (string, error) {
	if strings.TrimSpace(reason) == "" {
		return "", refund.FieldRule("reason", "a reason is required to reject a refund")
	}
	if err := s.decide(ctx, r, workflows.UpdateReject, workflows.Decision{Actor: actor, Reason: reason}); err != nil {
		return "", err
	}
	return "refund rejected: the workflow cancels it and releases its reservation", nil
}

// decide answers a refund awaiting approval with the approve or reject update.
func (s *Service) decide(ctx context.Context, r refund.Refund, update string, d workflows.Decision) error {
	if r.Status != refund.StatusPending || !r.RequiresApproval {
		why := "it does not require approval"
		if r.RequiresApproval {
			why = "it was already decided"
		}
		return refund.Rule(refund.CodeNotAwaitingApproval, "refund is %s and not awaiting approval: %s", r.Status, why)
	}
	err := s.temporal.Update(ctx, r.ID, update, d)
	var rejected *UpdateRejected
	switch {
	case errors.As(err, &rejected):
		// The workflow's validator refused: not (or no longer) awaiting approval.
		return refund.Rule(refund.CodeNotAwaitingApproval, "%s", rejected.Reason)
	case errors.Is(err, refund.ErrWorkflowNotRunning):
		return refund.Rule(refund.CodeNotAwaitingApproval, "the refund's workflow is not running")
	}
	return err
}

// Resolve records the outcome ops found at the provider for a refund whose
// outcome is unknown (update resolve): the workflow takes it as the
// provider's answer and settles or releases the refund. The workflow refuses
// while a provider call is in flight, whose answer could say otherwise.
func (s *Service) Resolve(ctx context.Context, r refund.Refund, actor string, status refund.Status, reason string) (string, error) {
	var v refund.Validator
	v.Check(status == refund.StatusSucceeded || status == refund.StatusDeclined || status == refund.StatusFailed,
		"status", "must be SUCCEEDED, DECLINED or FAILED: the outcome found at the provider")
	v.Check(strings.TrimSpace(reason) != "", "reason", "required: say where the outcome was found")
	if err := v.Err(); err != nil {
		return "", err
	}
	if r.Status != refund.StatusProcessing {
		return "", refund.Rule(refund.CodeNotResolvable,
			"refund is %s: only a refund sent to its provider and not yet final can be resolved (a PENDING one can be canceled)", r.Status)
	}
	err := s.temporal.Update(ctx, r.ID, workflows.UpdateResolve,
		workflows.Resolution{Actor: actor, Status: providers.Status(status), Reason: reason})
	var rejected *UpdateRejected
	switch {
	case errors.As(err, &rejected):
		return "", refund.Rule(refund.CodeNotResolvable, "%s", rejected.Reason)
	case errors.Is(err, refund.ErrWorkflowNotRunning):
		return "", refund.Rule(refund.CodeWorkflowUnavailable,
			"the refund's workflow is not running: run `backflow ops retry` first to resume it, then resolve")
	case err != nil:
		return "", err
	}
	return fmt.Sprintf("resolution accepted: the workflow finalizes the refund as %s", status), nil
}

// BeginAudit records that an ops key attempts an action (on refundID, or
// uuid.Nil when the target is unknown) before it runs; no entry, no action.
func (s *Service) BeginAudit(ctx context.Context, actorKey uuid.UUID, action string, refundID uuid.UUID, detail map[string]any) (uuid.UUID, error) {
	return s.store.BeginAudit(ctx, actorKey, action, refundID, detail)
}

// FinishAudit records an audited action's outcome.
func (s *Service) FinishAudit(ctx context.Context, auditID uuid.UUID, outcome map[string]any) error {
	return s.store.FinishAudit(ctx, auditID, outcome)
}

// ListAudit returns ops audit entries newest first.
func (s *Service) ListAudit(ctx context.Context, f refund.AuditFilter) ([]refund.AuditEntry, error) {
	return s.store.ListAudit(ctx, f)
}
