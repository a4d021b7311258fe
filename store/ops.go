package store

import (
	"context"
	"fmt"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BeginAudit records that actorKey attempts action on refundID (uuid.Nil
// when the target refund is unknown) and returns the entry's id. An action
// must not run when its audit entry could not be written.
func (s *Store) BeginAudit(ctx context.Context, actorKey uuid.UUID, action string, refundID uuid.UUID, detail map[string]any) (uuid.UUID, error) {
	if detail == nil {
		detail = map[string]any{}
	}
	id := uuid.Must(uuid.NewV7())
	_, err := s.pool.Exec(ctx, `INSERT INTO ops_audit (id, actor_key, action, refund_id, detail) VALUES ($1, $2, $3, $4, $5)`,
		id, actorKey, action, nilUUID(refundID), detail)
	if err != nil {
		return uuid.Nil, fmt.Errorf("insert audit entry: %w", mapErr(err))
	}
	return id, nil
}

// FinishAudit merges the action's outcome into the entry's detail.
func (s *Store) FinishAudit(ctx context.Context, id uuid.UUID, outcome map[string]any) error {
	tag, err := s.pool.Exec(ctx, `UPDATE ops_audit SET detail = detail || $2 WHERE id = $1`, id, outcome)
	if err != nil {
		return fmt.Errorf("complete audit entry: %w", mapErr(err))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete audit entry %s: %w", id, refund.ErrNotFound)
	}
	return nil
}

// ListAudit returns audit entries newest first.
func (s *Store) ListAudit(ctx context.Context, f refund.AuditFilter) ([]refund.AuditEntry, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT id, actor_key, action, refund_id, detail, created_at FROM ops_audit
		WHERE ($1::uuid IS NULL OR refund_id = $1) AND ($2::uuid IS NULL OR id < $2)
		ORDER BY id DESC LIMIT $3`, nilUUID(f.RefundID), nilUUID(f.Before), f.Limit)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.AuditEntry, error) {
		var e refund.AuditEntry
		return e, r.Scan(&e.ID, &e.ActorKey, &e.Action, &e.RefundID, &e.Detail, &e.CreatedAt)
	})
	return out, mapErr(err)
}

// EventsOfRefund returns the refund's events in sequence order.
func (s *Store) EventsOfRefund(ctx context.Context, refundID uuid.UUID) ([]refund.EventRecord, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, merchant_id, refund_id, type, sequence, payload, created_at, dispatched_at
		FROM refund_events WHERE refund_id = $1 ORDER BY sequence`, refundID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.EventRecord, error) {
		var e refund.EventRecord
		return e, r.Scan(&e.ID, &e.MerchantID, &e.RefundID, &e.Type, &e.Sequence, &e.Payload, &e.CreatedAt, &e.DispatchedAt)
	})
	return out, mapErr(err)
}

// DeliveryAttempts returns the webhook attempts of the given events, oldest first.
func (s *Store) DeliveryAttempts(ctx context.Context, eventIDs []uuid.UUID) ([]refund.DeliveryAttempt, error) {
	if len(eventIDs) == 0 {
		return []refund.DeliveryAttempt{}, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT a.id, a.event_id, a.endpoint_id, e.url, a.attempt, a.status_code, a.latency_ms,
			coalesce(a.error, ''), a.succeeded, a.created_at
		FROM webhook_attempts a JOIN webhook_endpoints e ON e.id = a.endpoint_id
		WHERE a.event_id = ANY ($1) ORDER BY a.created_at, a.id`, eventIDs)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.DeliveryAttempt, error) {
		var a refund.DeliveryAttempt
		return a, r.Scan(&a.ID, &a.EventID, &a.EndpointID, &a.URL, &a.Attempt, &a.StatusCode, &a.LatencyMS, &a.Error,
			&a.Succeeded, &a.CreatedAt)
	})
	return out, mapErr(err)
}

// ReservedByCurrency sums the amounts reserved by open refunds per currency.
// A reservation lives exactly as long as its refund is PENDING or
// PROCESSING (reserve at creation, settle or release at finalize, in the same
// transactions), so this equals the transactions' reserved balances while
// reading only the small open-refunds index.
func (s *Store) ReservedByCurrency(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT currency, sum(amount)::bigint FROM refunds
		WHERE status IN ('PENDING', 'PROCESSING') GROUP BY currency`)
	if err != nil {
		return nil, mapErr(err)
	}
	out := map[string]int64{}
	var currency string
	var sum int64
	_, err = pgx.ForEachRow(rows, []any{&currency, &sum}, func() error {
		out[currency] = sum
		return nil
	})
	return out, mapErr(err)
}

// StuckRefundsByReason counts the open refunds flagged stuck, by reason.
func (s *Store) StuckRefundsByReason(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT coalesce(stuck_reason, $1), count(*) FROM refunds
		WHERE status IN ('PENDING', 'PROCESSING') AND stuck GROUP BY 1`, refund.StuckNoAnswer)
	if err != nil {
		return nil, mapErr(err)
	}
	out := map[string]int64{}
	var reason string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&reason, &n}, func() error {
		out[reason] = n
		return nil
	})
	return out, mapErr(err)
}
