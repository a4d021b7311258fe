package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/backflow/backflow/refund"
)

// queueDeliveries inserts one webhook_deliveries row per event of src (a
// CTE or table with id, merchant_id, refund_id, type, sequence) and
// subscribed, active endpoint. An endpoint held back after failures gets
// the row at its retry time, so held-back rows never crowd the due index.
func queueDeliveries(src string) string {
	return `INSERT INTO webhook_deliveries (event_id, endpoint_id, refund_id, sequence, next_attempt_at)
		SELECT x.id, w.id, x.refund_id, x.sequence, greatest(now(), w.retry_at) FROM ` + src + ` x
		JOIN webhook_endpoints w ON w.merchant_id = x.merchant_id AND x.type = ANY (w.event_types)
			AND w.deleted_at IS NULL AND w.disabled_at IS NULL
		ON CONFLICT DO NOTHING`
}

// insertEventSQL writes an event and, in the same statement, its outbox
// rows: a status change never exists without its webhooks queued.
var insertEventSQL = `WITH ev AS (
		INSERT INTO refund_events (id, merchant_id, refund_id, type, sequence, payload, dispatched_at)
		VALUES ($1, $2, $3, $4, (SELECT coalesce(max(sequence), 0) + 1 FROM refund_events WHERE refund_id = $3), $5, now())
		RETURNING id, merchant_id, refund_id, type, sequence, created_at),
	q AS (` + queueDeliveries("ev") + `)
	SELECT sequence, created_at FROM ev`

// QueueDeliveries puts deliveries in the outbox (ones already there are
// left alone): the deliveries a worker of the previous release handed to
// the refund's workflow instead of queueing them.
func (s *Store) QueueDeliveries(ctx context.Context, ds []refund.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	events, endpoints := make([]uuid.UUID, len(ds)), make([]uuid.UUID, len(ds))
	for i, d := range ds {
		events[i], endpoints[i] = d.EventID, d.EndpointID
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, refund_id, sequence)
		SELECT e.id, d.endpoint_id, e.refund_id, e.sequence
		FROM unnest($1::uuid[], $2::uuid[]) AS d (event_id, endpoint_id) JOIN refund_events e ON e.id = d.event_id
		ON CONFLICT DO NOTHING`, events, endpoints)
	if err != nil {
		return fmt.Errorf("queue deliveries: %w", mapErr(err))
	}
	return nil
}

// QueueLostEvents queues the deliveries of events still undispatched after
// grace (written before the outbox, whose workflow died before starting
// their deliveries) and marks them dispatched, in one statement. It returns
// how many events and deliveries it queued.
func (s *Store) QueueLostEvents(ctx context.Context, grace time.Duration, limit int) (int, int, error) {
	var events, deliveries int
	err := s.pool.QueryRow(ctx, `WITH lost AS (
			SELECT id FROM refund_events WHERE dispatched_at IS NULL AND created_at < now() - make_interval(secs => $1)
			ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED),
		ev AS (
			UPDATE refund_events e SET dispatched_at = now() FROM lost WHERE e.id = lost.id
			RETURNING e.id, e.merchant_id, e.refund_id, e.type, e.sequence),
		q AS (`+queueDeliveries("ev")+` RETURNING 1)
		SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM q)`, grace.Seconds(), limit).Scan(&events, &deliveries)
	if err != nil {
		return 0, 0, fmt.Errorf("queue lost events: %w", mapErr(err))
	}
	return events, deliveries, nil
}

// RedeliverEvent queues an event again for endpoints, whatever their
// deliveries became: each restarts its retry window now. The endpoints'
// own backoff is lifted, so a merchant who fixed an endpoint sees the
// redelivery at once.
func (s *Store) RedeliverEvent(ctx context.Context, eventID uuid.UUID, endpointIDs []uuid.UUID) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE webhook_endpoints SET retry_at = NULL WHERE id = ANY ($1)`, endpointIDs); err != nil {
			return fmt.Errorf("lift endpoint backoff: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (event_id, endpoint_id, refund_id, sequence)
			SELECT e.id, w, e.refund_id, e.sequence FROM refund_events e, unnest($2::uuid[]) AS w WHERE e.id = $1
			ON CONFLICT (event_id, endpoint_id) DO UPDATE SET status = 'PENDING', attempts = 0, window_started_at = now(),
				next_attempt_at = now(), leased_until = NULL, last_error = NULL, finished_at = NULL`, eventID, endpointIDs)
		if err != nil {
			return fmt.Errorf("queue redelivery: %w", err)
		}
		return nil
	})
	return mapErr(err)
}

// ClaimDeliveries leases up to limit due deliveries for lease and returns
// them with their events and endpoints. It takes at most perEndpoint
// deliveries in flight per endpoint (one while the endpoint is failing, as
// a probe: refund.EndpointFailingAfter), none of an endpoint held back by
// its backoff, and a refund's events to one endpoint in sequence order: a
// delivery waits while an earlier event of its refund to the same endpoint
// is pending. At most scanDue due rows are looked at per call. Concurrent
// dispatchers never claim the same row: the lease is re-checked on the row
// being updated.
func (s *Store) ClaimDeliveries(ctx context.Context, limit, perEndpoint int, lease time.Duration) ([]refund.DueDelivery, error) {
	const scanDue = 256
	rows, err := s.pool.Query(ctx, `WITH due AS (
			SELECT d.event_id, d.endpoint_id, d.refund_id, d.sequence, d.next_attempt_at FROM webhook_deliveries d
			WHERE d.status = 'PENDING' AND d.next_attempt_at <= now() AND (d.leased_until IS NULL OR d.leased_until <= now())
			ORDER BY d.next_attempt_at LIMIT $4),
		in_flight AS (
			SELECT endpoint_id, count(*) AS n FROM webhook_deliveries
			WHERE status = 'PENDING' AND leased_until IS NOT NULL AND leased_until > now() GROUP BY endpoint_id),
		cand AS (
			SELECT due.event_id, due.endpoint_id, due.refund_id, due.sequence, due.next_attempt_at,
				row_number() OVER (PARTITION BY due.endpoint_id ORDER BY due.next_attempt_at, due.sequence) AS rn,
				CASE WHEN w.failures >= $5 THEN 1 ELSE $2 END - coalesce(f.n, 0) AS room
			FROM due JOIN webhook_endpoints w ON w.id = due.endpoint_id AND w.deleted_at IS NULL AND w.disabled_at IS NULL
				AND (w.retry_at IS NULL OR w.retry_at <= now())
			LEFT JOIN in_flight f ON f.endpoint_id = due.endpoint_id
			-- Before ranking: a waiting delivery must not take its endpoint's room.
			WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries p WHERE p.status = 'PENDING' AND p.endpoint_id = due.endpoint_id
				AND p.refund_id = due.refund_id AND p.sequence < due.sequence)),
		claimable AS (
			SELECT event_id, endpoint_id FROM cand WHERE rn <= room ORDER BY next_attempt_at LIMIT $3),
		claimed AS (
			UPDATE webhook_deliveries d SET leased_until = now() + make_interval(secs => $1)
			FROM claimable c
			WHERE d.event_id = c.event_id AND d.endpoint_id = c.endpoint_id AND d.status = 'PENDING'
				AND (d.leased_until IS NULL OR d.leased_until <= now())
			RETURNING d.event_id, d.endpoint_id, d.attempts, d.window_started_at)
		SELECT `+eventColumnsOf("e.")+`, `+endpointColumnsOf("w.")+`, c.attempts, c.window_started_at
		FROM claimed c JOIN refund_events e ON e.id = c.event_id JOIN webhook_endpoints w ON w.id = c.endpoint_id`,
		lease.Seconds(), perEndpoint, limit, scanDue, refund.EndpointFailingAfter)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.DueDelivery, error) {
		var d refund.DueDelivery
		return d, r.Scan(append(append(eventFields(&d.Event), endpointFields(&d.Endpoint)...), &d.Attempts, &d.WindowStartedAt)...)
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", mapErr(err))
	}
	return out, nil
}

// FinishDeliveries records how claimed deliveries' attempts ended, in one
// statement for the batch: each attempt (numbered after the event's
// earlier attempts to the endpoint), each delivery's new status, and each
// endpoint's health (an attempt older than a redelivery of its delivery is
// logged but leaves the redelivery pending). A failed attempt holds back the endpoint's other
// pending deliveries until its retry time; an endpoint whose attempts in
// the batch all succeeded is no longer failing. It returns the attempts
// logged, numbered.
func (s *Store) FinishDeliveries(ctx context.Context, outs []refund.DeliveryOutcome) ([]refund.WebhookAttempt, error) {
	n := len(outs)
	if n == 0 {
		return nil, nil
	}
	var (
		events, endpoints, ids = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		codes                  = make([]*int, n)
		latencies              = make([]int, n)
		errs, statuses         = make([]string, n), make([]string, n)
		oks, made              = make([]bool, n), make([]bool, n)
		next, retry            = make([]*time.Time, n), make([]*time.Time, n)
		windows                = make([]time.Time, n)
	)
	for i, o := range outs {
		events[i], endpoints[i], ids[i], statuses[i], windows[i] = o.EventID, o.EndpointID, uuid.Must(uuid.NewV7()), o.Status, o.WindowStartedAt
		if o.Attempt != nil {
			made[i], oks[i], codes[i], latencies[i], errs[i] = true, o.Attempt.Succeeded, o.Attempt.StatusCode, o.Attempt.LatencyMS, o.Attempt.Error
		}
		if !o.NextAttemptAt.IsZero() {
			next[i] = &outs[i].NextAttemptAt
		}
		if !o.EndpointRetryAt.IsZero() {
			retry[i] = &outs[i].EndpointRetryAt
		}
	}
	rows, err := s.pool.Query(ctx, `WITH o AS (
			SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[], $6::text[], $7::bool[], $8::bool[],
				$9::text[], $10::timestamptz[], $11::timestamptz[], $12::timestamptz[])
				AS o (event_id, endpoint_id, attempt_id, status_code, latency_ms, error, ok, made, status, next_attempt_at, retry_at,
					window_started_at)),
		att AS (
			INSERT INTO webhook_attempts (id, event_id, endpoint_id, attempt, status_code, latency_ms, error, succeeded)
			SELECT o.attempt_id, o.event_id, o.endpoint_id,
				(SELECT coalesce(max(a.attempt), 0) + 1 FROM webhook_attempts a WHERE a.event_id = o.event_id AND a.endpoint_id = o.endpoint_id),
				o.status_code, o.latency_ms, nullif(o.error, ''), o.ok
			FROM o WHERE o.made
			RETURNING id, event_id, endpoint_id, attempt, created_at),
		d AS (
			UPDATE webhook_deliveries w SET status = o.status, attempts = w.attempts + CASE WHEN o.made THEN 1 ELSE 0 END,
				next_attempt_at = coalesce(o.next_attempt_at, w.next_attempt_at), leased_until = NULL, last_error = nullif(o.error, ''),
				finished_at = CASE WHEN o.status = 'PENDING' THEN NULL ELSE now() END
			-- A delivery skipped meanwhile (its endpoint deleted or disabled) stays so; one
			-- redelivered meanwhile (a new window) is made again.
			FROM o WHERE w.event_id = o.event_id AND w.endpoint_id = o.endpoint_id AND w.status = 'PENDING'
				AND w.window_started_at = o.window_started_at),
		health AS (
			SELECT endpoint_id, bool_and(ok) AS ok, count(*) FILTER (WHERE NOT ok) AS failed, max(retry_at) AS retry_at
			FROM o WHERE made GROUP BY endpoint_id),
		ep AS (
			UPDATE webhook_endpoints e SET failures = CASE WHEN h.ok THEN 0 ELSE e.failures + h.failed END,
				failing_since = CASE WHEN h.ok THEN NULL ELSE coalesce(e.failing_since, now()) END,
				retry_at = CASE WHEN h.ok THEN NULL ELSE h.retry_at END
			-- A success changes the row only when the endpoint was failing.
			FROM health h WHERE e.id = h.endpoint_id AND (NOT h.ok OR e.failures <> 0 OR e.failing_since IS NOT NULL OR e.retry_at IS NOT NULL)),
		held AS (
			UPDATE webhook_deliveries w SET next_attempt_at = h.retry_at
			FROM health h WHERE NOT h.ok AND h.retry_at IS NOT NULL AND w.endpoint_id = h.endpoint_id AND w.status = 'PENDING'
				AND w.next_attempt_at < h.retry_at AND (w.leased_until IS NULL OR w.leased_until <= now())
				AND NOT EXISTS (SELECT 1 FROM o WHERE o.event_id = w.event_id AND o.endpoint_id = w.endpoint_id))
		SELECT id, attempt, created_at FROM att`,
		events, endpoints, ids, codes, latencies, errs, oks, made, statuses, next, retry, windows)
	if err != nil {
		return nil, fmt.Errorf("finish deliveries: %w", mapErr(err))
	}
	numbered := map[uuid.UUID]refund.WebhookAttempt{}
	var id uuid.UUID
	var a refund.WebhookAttempt
	_, err = pgx.ForEachRow(rows, []any{&id, &a.Attempt, &a.CreatedAt}, func() error {
		numbered[id] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("finish deliveries: %w", mapErr(err))
	}
	var out []refund.WebhookAttempt
	for i, o := range outs {
		if o.Attempt == nil {
			continue
		}
		att := *o.Attempt
		att.ID, att.EventID, att.EndpointID = ids[i], o.EventID, o.EndpointID
		att.Attempt, att.CreatedAt = numbered[ids[i]].Attempt, numbered[ids[i]].CreatedAt
		out = append(out, att)
	}
	return out, nil
}

// EventDeliveryStatuses returns the status of each of an event's deliveries by endpoint.
func (s *Store) EventDeliveryStatuses(ctx context.Context, eventID uuid.UUID) (map[uuid.UUID]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT endpoint_id, status FROM webhook_deliveries WHERE event_id = $1`, eventID)
	if err != nil {
		return nil, fmt.Errorf("list deliveries: %w", mapErr(err))
	}
	out := map[uuid.UUID]string{}
	var id uuid.UUID
	var status string
	_, err = pgx.ForEachRow(rows, []any{&id, &status}, func() error {
		out[id] = status
		return nil
	})
	return out, mapErr(err)
}
