package activities

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
)

// Store is what the activities need of Postgres; store.Store implements it
// through worker.ActivityStore. Reads take no merchant: the activities act on
// a refund, event or endpoint by its id, whichever merchant it belongs to.
// Keeping the store behind this interface keeps pgx out of the workflows,
// which import this package.
type Store interface {
	GetRefund(ctx context.Context, id uuid.UUID) (refund.Refund, error)
	GetEvent(ctx context.Context, id uuid.UUID) (refund.Event, error)
	GetWebhookEndpoint(ctx context.Context, id uuid.UUID) (refund.WebhookEndpoint, error)

	// The refund's life (store/lifecycle.go).
	BeginRefund(ctx context.Context, id uuid.UUID) (refund.Refund, refund.Transaction, error)
	MarkProcessing(ctx context.Context, id uuid.UUID) (refund.Refund, error)
	CountSend(ctx context.Context, id uuid.UUID) (int, error)
	SetProviderReference(ctx context.Context, id uuid.UUID, ref string) error
	SetStuck(ctx context.Context, id uuid.UUID, stuck bool, reason string) error
	Finalize(ctx context.Context, id uuid.UUID, o refund.Outcome) (refund.Refund, *refund.Event, error)
	Reverse(ctx context.Context, id uuid.UUID, code, message string) (refund.Refund, *refund.Event, error)

	// The reconciler's reads and repairs.
	OrphanRefunds(ctx context.Context, grace time.Duration, limit int) ([]uuid.UUID, error)
	StaleOpenRefunds(ctx context.Context, idle time.Duration, limit int) ([]uuid.UUID, error)
	QueueLostEvents(ctx context.Context, grace time.Duration, limit int) (events, deliveries int, err error)
	PurgeIdempotencyKeys(ctx context.Context) (int64, error)

	// Webhook delivery from the outbox (store/outbox.go).
	QueueDeliveries(ctx context.Context, ds []refund.Delivery) error
	ClaimDeliveries(ctx context.Context, limit, perEndpoint int, lease time.Duration) ([]refund.DueDelivery, error)
	FinishDeliveries(ctx context.Context, outs []refund.DeliveryOutcome) ([]refund.WebhookAttempt, error)
	DisableWebhookEndpoint(ctx context.Context, id uuid.UUID, reason string) (refund.WebhookEndpoint, bool, error)
	// RecordWebhookAttempt logs an attempt of a delivery workflow of the
	// previous release (WebhookDeliveryWorkflow).
	RecordWebhookAttempt(ctx context.Context, a refund.WebhookAttempt) (refund.WebhookAttempt, error)
}

// Workflows is what the reconciler asks of Temporal; refunds.TemporalGateway
// implements it (and the workflows package cannot be imported from here).
type Workflows interface {
	// StartRefund starts a refund's workflow; refund.ErrAlreadyStarted when
	// its workflow exists.
	StartRefund(ctx context.Context, r refund.Refund) error
	// ResumeRefund starts a new run of a refund whose last run closed
	// without finishing it; refund.ErrAlreadyStarted when a run is going or
	// the last one completed.
	ResumeRefund(ctx context.Context, r refund.Refund) error
	// EnsureWebhookDispatchers starts the webhook dispatcher workflows
	// that are not running; running ones are left alone.
	EnsureWebhookDispatchers(ctx context.Context) error
	// BrokenRuns lists refunds whose last run closed unfinished since a
	// time, at most limit; RunClosed tells whether one refund's workflow is
	// not running.
	BrokenRuns(ctx context.Context, since time.Time, limit int) ([]uuid.UUID, error)
	RunClosed(ctx context.Context, refundID uuid.UUID) (bool, error)
}
