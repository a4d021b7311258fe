package store

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// UndispatchedDeliveries marks the refund's undispatched events as dispatched
// and returns one delivery per subscribed, active endpoint. The caller starts
// a durable delivery workflow for each; the reconciler re-dispatches events
// whose dispatch was lost.
func (s *Store) UndispatchedDeliveries(ctx context.Context, refundID uuid.UUID) ([]Delivery, error) {
	rows, err := s.pool.Query(ctx, `WITH ev AS (
			UPDATE refund_events SET dispatched_at = now()
			WHERE refund_id = $1 AND dispatched_at IS NULL
			RETURNING id, merchant_id, type)
		SELECT ev.id, e.id FROM ev JOIN webhook_endpoints e
			ON e.merchant_id = ev.merchant_id AND ev.type = ANY (e.event_types)
			AND e.deleted_at IS NULL AND e.disabled_at IS NULL
		ORDER BY ev.id, e.id`, refundID)
	if err != nil {
		return nil, fmt.Errorf("dispatch events: %w", mapErr(err))
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Delivery, error) {
		var d Delivery
		return d, r.Scan(&d.EventID, &d.EndpointID)
	})
}

// Delivery is one event to deliver to one webhook endpoint.
type Delivery struct {
	EventID    uuid.UUID
	EndpointID uuid.UUID
}
