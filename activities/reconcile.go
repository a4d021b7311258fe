package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"

	"github.com/backflow/backflow/store"
)

// orphanGrace leaves the API time to start the workflow itself.
const orphanGrace = 30 * time.Second

// ReconcileReport says what one reconciler pass repaired.
type ReconcileReport struct {
	WorkflowsStarted int
}

// StartRefundWorkflow starts a refund's workflow; a second start is a no-op.
// It is set by the worker (the workflows package builds the options).
type StartRefundWorkflow func(ctx context.Context, r store.Refund) error

// Reconcile starts the workflow of every orphaned refund.
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
		activity.GetLogger(ctx).Info("reconciler started orphaned refund workflows", "count", report.WorkflowsStarted)
	}
	return report, errors.Join(errs...)
}

func (a *Activities) startOrphan(ctx context.Context, id uuid.UUID) error {
	r, err := a.Store.GetRefund(ctx, uuid.Nil, id)
	if err != nil {
		return fmt.Errorf("read refund %s: %w", id, err)
	}
	err = a.StartRefund(ctx, r)
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	if err != nil && !errors.As(err, &already) {
		return fmt.Errorf("start workflow of refund %s: %w", id, err)
	}
	return nil
}
