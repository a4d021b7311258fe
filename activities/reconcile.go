package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// orphanGrace leaves the API time to start the workflow itself.
const orphanGrace = 30 * time.Second

// lostDispatchGrace leaves a workflow of the previous release time to
// dispatch its events itself (events are queued as they are written now).
const lostDispatchGrace = time.Minute

// ReconcileReport says what one reconciler pass repaired.
type ReconcileReport struct {
	WorkflowsStarted int
	// WorkflowsResumed counts refunds whose workflow closed without
	// finishing them (terminated, failed, timed out) and got a new run.
	WorkflowsResumed int
	// EventsRedispatched counts events whose lost dispatch was repaired;
	// DeliveriesQueued the deliveries queued for them in the outbox.
	EventsRedispatched int
	DeliveriesQueued   int
	// IdempotencyKeysPurged counts Idempotency-Keys past their retention.
	IdempotencyKeysPurged int64
}

// Reconcile starts the workflow of every orphaned refund, queues the
// webhook deliveries of every event whose dispatch was lost, and starts the
// webhook dispatchers that do not run.
func (a *Activities) Reconcile(ctx context.Context) (ReconcileReport, error) {
	var report ReconcileReport
	ids, err := a.Store.OrphanRefunds(ctx, orphanGrace, 500)
	if err != nil {
		return report, fmt.Errorf("list orphan refunds: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := a.startOrphan(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		report.WorkflowsStarted++
	}
	if report.WorkflowsStarted > 0 {
		logger(ctx).Info("reconciler started orphaned refund workflows", "count", report.WorkflowsStarted)
	}
	if err := a.resumeBroken(ctx, &report); err != nil {
		errs = append(errs, err)
	}
	if err := a.redispatch(ctx, &report); err != nil {
		errs = append(errs, err)
	}
	if err := a.Workflows.EnsureWebhookDispatchers(ctx); err != nil {
		errs = append(errs, fmt.Errorf("ensure webhook dispatchers: %w", err))
	}
	purged, err := a.Store.PurgeIdempotencyKeys(ctx)
	if err != nil {
		errs = append(errs, fmt.Errorf("purge idempotency keys: %w", err))
	}
	report.IdempotencyKeysPurged = purged
	return report, errors.Join(errs...)
}

// Bounds of one pass's search for refunds whose workflow closed without
// finishing them: the runs Temporal saw close in the last brokenRunsWindow
// (found at once), and a round-robin sweep of staleSweepSize open refunds
// idle for staleAfter (found eventually, however long the reconciler was
// down or however many closed at once).
const (
	brokenRunsPerPass = 200
	brokenRunsWindow  = time.Hour
	staleSweepSize    = 100
	staleAfter        = 5 * time.Minute
)

// resumeBroken starts a new run for every open refund whose last run closed
// without finishing it. The new run finds the refund PROCESSING and looks it
// up at the provider before any re-send.
func (a *Activities) resumeBroken(ctx context.Context, report *ReconcileReport) error {
	var errs []error
	ids, err := a.Workflows.BrokenRuns(ctx, time.Now().Add(-brokenRunsWindow), brokenRunsPerPass)
	if err != nil {
		errs = append(errs, err)
	}
	stale, err := a.Store.StaleOpenRefunds(ctx, staleAfter, staleSweepSize)
	if err != nil {
		errs = append(errs, fmt.Errorf("sweep stale refunds: %w", err))
	}
	for _, id := range stale {
		closed, err := a.Workflows.RunClosed(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if closed && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if err := a.resume(ctx, id, report); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resume starts a new run of one refund whose last run closed without
// finishing it; a refund final already needs nothing (its events' webhooks
// were queued with them).
func (a *Activities) resume(ctx context.Context, id uuid.UUID, report *ReconcileReport) error {
	r, err := a.Store.GetRefund(ctx, id)
	if errors.Is(err, refund.ErrNotFound) {
		return nil // another deployment's refund
	}
	if err != nil {
		return fmt.Errorf("read refund %s: %w", id, err)
	}
	if r.Status.Final() {
		return nil
	}
	err = a.Workflows.ResumeRefund(ctx, r)
	switch {
	case errors.Is(err, refund.ErrAlreadyStarted):
		return nil // resumed already (a run is going), or the visibility record is stale
	case err != nil:
		return fmt.Errorf("resume workflow of refund %s: %w", id, err)
	}
	report.WorkflowsResumed++
	logger(ctx).Warn("reconciler resumed a refund whose workflow closed without finishing it",
		"refundId", r.ID, "workflowId", "refund-"+r.ID.String(), "merchantId", r.MerchantID, "status", r.Status)
	return nil
}

// redispatch queues the deliveries of events still undispatched after
// lostDispatchGrace: written by the previous release, whose workflow died
// before it started their deliveries. Today's events are queued with them.
func (a *Activities) redispatch(ctx context.Context, report *ReconcileReport) error {
	events, deliveries, err := a.Store.QueueLostEvents(ctx, lostDispatchGrace, 500)
	if err != nil {
		return err
	}
	report.EventsRedispatched, report.DeliveriesQueued = events, deliveries
	if events > 0 {
		logger(ctx).Info("reconciler queued the webhooks of undispatched events", "events", events, "deliveries", deliveries)
	}
	return nil
}

func (a *Activities) startOrphan(ctx context.Context, id uuid.UUID) error {
	r, err := a.Store.GetRefund(ctx, id)
	if err != nil {
		return fmt.Errorf("read refund %s: %w", id, err)
	}
	err = a.Workflows.StartRefund(ctx, r)
	if err != nil && !errors.Is(err, refund.ErrAlreadyStarted) {
		return fmt.Errorf("start workflow of refund %s: %w", id, err)
	}
	return nil
}
