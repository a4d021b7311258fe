package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// endpointColumnsOf lists an endpoint's columns, of table alias t ("" for none).
func endpointColumnsOf(t string) string {
	return fmt.Sprintf(`%[1]sid, %[1]smerchant_id, %[1]surl, %[1]sevent_types, %[1]ssecret, coalesce(%[1]sprevious_secret, ''),
	%[1]sprevious_secret_expires_at, %[1]sdisabled_at, coalesce(%[1]sdisabled_reason, ''), %[1]sdeleted_at, %[1]screated_at,
	%[1]sfailures, %[1]sfailing_since`, t)
}

var endpointColumns = endpointColumnsOf("")

func endpointFields(e *refund.WebhookEndpoint) []any {
	return []any{&e.ID, &e.MerchantID, &e.URL, &e.EventTypes, &e.Secret, &e.PreviousSecret, &e.PreviousSecretExpiresAt,
		&e.DisabledAt, &e.DisabledReason, &e.DeletedAt, &e.CreatedAt, &e.Failures, &e.FailingSince}
}

func scanEndpoint(row pgx.Row) (refund.WebhookEndpoint, error) {
	var e refund.WebhookEndpoint
	err := row.Scan(endpointFields(&e)...)
	return e, err
}

// CreateWebhookEndpoint adds an endpoint, refusing more than
// MaxWebhookEndpoints live endpoints per merchant.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, in refund.NewWebhookEndpoint) (refund.WebhookEndpoint, error) {
	var out refund.WebhookEndpoint
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// The merchant row serializes concurrent creates so the limit holds.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE`, in.MerchantID); err != nil {
			return fmt.Errorf("lock merchant: %w", err)
		}
		if in.IdempotencyKey != "" {
			e, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
				WHERE merchant_id = $1 AND idempotency_key = $2`, in.MerchantID, in.IdempotencyKey))
			if err == nil {
				out = e // made by this key before: its response was lost
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("find endpoint by idempotency key: %w", err)
			}
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL`,
			in.MerchantID).Scan(&n); err != nil {
			return fmt.Errorf("count endpoints: %w", err)
		}
		if n >= refund.MaxWebhookEndpoints {
			return refund.Rule(refund.CodeWebhookEndpointLimit, "a merchant may have at most %d webhook endpoints; delete one first", refund.MaxWebhookEndpoints)
		}
		var err error
		out, err = scanEndpoint(tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret, idempotency_key)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+endpointColumns,
			uuid.Must(uuid.NewV7()), in.MerchantID, in.URL, in.EventTypes, in.Secret, nullable(in.IdempotencyKey)))
		if err != nil {
			return fmt.Errorf("insert endpoint: %w", err)
		}
		return nil
	})
	return out, err
}

// ListWebhookEndpoints returns a merchant's endpoints that are not deleted, oldest first.
func (s *Store) ListWebhookEndpoints(ctx context.Context, merchantID uuid.UUID) ([]refund.WebhookEndpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE merchant_id = $1 AND deleted_at IS NULL ORDER BY id`, merchantID)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.WebhookEndpoint, error) { return scanEndpoint(r) })
	return out, mapErr(err)
}

// GetWebhookEndpoint reads an endpoint in scope, deleted ones included.
func (s *Store) GetWebhookEndpoint(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.WebhookEndpoint, error) {
	merchant, err := scope.MerchantFilter()
	if err != nil {
		return refund.WebhookEndpoint{}, err
	}
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
		WHERE id = $1 AND ($2::uuid IS NULL OR merchant_id = $2)`, id, merchant))
	return e, mapErr(err)
}

// DeleteWebhookEndpoint soft-deletes an endpoint: its attempts stay, its
// pending deliveries are skipped, and one in flight is its last. A deleted
// or unknown endpoint is ErrNotFound.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, merchantID, id uuid.UUID) (refund.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `WITH ep AS (
			UPDATE webhook_endpoints SET deleted_at = now()
			WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL RETURNING `+endpointColumns+`),
		skipped AS (`+skipPendingSQL+` AND EXISTS (SELECT 1 FROM ep))
		SELECT * FROM ep`, id, merchantID))
	return e, mapErr(err)
}

// skipPendingSQL ends endpoint $1's pending deliveries: it is deleted or disabled.
const skipPendingSQL = `UPDATE webhook_deliveries SET status = 'SKIPPED', finished_at = now(), leased_until = NULL
	WHERE endpoint_id = $1 AND status = 'PENDING'`

// RotateWebhookSecret makes secret the endpoint's signing secret and keeps
// the current one valid for grace (deliveries carry both signatures until
// then). A secret still in an earlier grace period is dropped. A rotation
// retried with the same idempotency key (its response was lost) returns the
// endpoint as that rotation left it: rotating again would drop the secret
// the merchant still uses.
func (s *Store) RotateWebhookSecret(ctx context.Context, merchantID, id uuid.UUID, secret string, grace time.Duration, idempotencyKey string) (refund.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET previous_secret = secret,
		previous_secret_expires_at = now() + make_interval(secs => $4), secret = $3, rotation_key = $5
		WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL AND ($5::text IS NULL OR rotation_key IS DISTINCT FROM $5)
		RETURNING `+endpointColumns, id, merchantID, secret, grace.Seconds(), nullable(idempotencyKey)))
	if errors.Is(err, pgx.ErrNoRows) && idempotencyKey != "" {
		e, err = scanEndpoint(s.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints
			WHERE id = $1 AND merchant_id = $2 AND deleted_at IS NULL AND rotation_key = $3`, id, merchantID, idempotencyKey))
	}
	return e, mapErr(err)
}

// DisableWebhookEndpoint stops deliveries to an endpoint (it answered 410
// Gone, or failed for too long): in one transaction its pending deliveries
// are skipped and a webhook_endpoint.disabled event for its merchant is
// written (and queued for its other endpoints). It reports whether this
// call disabled it: disabling twice keeps the first time and reason.
func (s *Store) DisableWebhookEndpoint(ctx context.Context, id uuid.UUID, reason string) (refund.WebhookEndpoint, bool, error) {
	var e refund.WebhookEndpoint
	disabled := false
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		e, err = scanEndpoint(tx.QueryRow(ctx, `UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $2
			WHERE id = $1 AND disabled_at IS NULL AND deleted_at IS NULL RETURNING `+endpointColumns, id, reason))
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("disable endpoint: %w", err)
		}
		disabled = true
		if _, err := tx.Exec(ctx, skipPendingSQL, id); err != nil {
			return fmt.Errorf("skip deliveries of disabled endpoint: %w", err)
		}
		payload, err := json.Marshal(map[string]any{"endpoint": map[string]any{"id": e.ID, "url": e.URL, "status": "DISABLED",
			"disabledAt": e.DisabledAt.UTC(), "disabledReason": e.DisabledReason}})
		if err != nil {
			return fmt.Errorf("encode event: %w", err)
		}
		_, err = insertEvent(ctx, tx, e.MerchantID, uuid.Nil, refund.EventEndpointDisabled, payload)
		return err
	})
	return e, disabled, mapErr(err)
}

// eventColumnsOf lists an event's columns, of table alias t ("" for none);
// an event about an endpoint reads as refund uuid.Nil.
func eventColumnsOf(t string) string {
	return fmt.Sprintf(`%[1]sid, %[1]smerchant_id, coalesce(%[1]srefund_id, '00000000-0000-0000-0000-000000000000'),
	%[1]stype, %[1]ssequence, %[1]spayload, %[1]screated_at`, t)
}

var eventColumns = eventColumnsOf("")

func eventFields(e *refund.Event) []any {
	return []any{&e.ID, &e.MerchantID, &e.RefundID, &e.Type, &e.Sequence, &e.Payload, &e.CreatedAt}
}

func scanEvent(row pgx.Row) (refund.Event, error) {
	var e refund.Event
	err := row.Scan(eventFields(&e)...)
	return e, err
}

// GetEvent reads an event in scope.
func (s *Store) GetEvent(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Event, error) {
	merchant, err := scope.MerchantFilter()
	if err != nil {
		return refund.Event{}, err
	}
	e, err := scanEvent(s.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM refund_events
		WHERE id = $1 AND ($2::uuid IS NULL OR merchant_id = $2)`, id, merchant))
	return e, mapErr(err)
}

// ListEvents returns events newest first and the cursor of the next page.
func (s *Store) ListEvents(ctx context.Context, f refund.EventFilter) ([]refund.Event, uuid.UUID, error) {
	var w where
	if err := w.scope(f.Scope); err != nil {
		return nil, uuid.Nil, err
	}
	if f.RefundID != uuid.Nil {
		w.add("refund_id = $%d", f.RefundID)
	}
	if f.Type != "" {
		w.add("type = $%d", f.Type)
	}
	return listPage(ctx, s.pool, `SELECT `+eventColumns+` FROM refund_events`, w, f.After, f.Limit, scanEvent,
		func(e refund.Event) uuid.UUID { return e.ID })
}

// RecordWebhookAttempt appends an attempt, numbering it after the event's
// earlier attempts to the same endpoint.
func (s *Store) RecordWebhookAttempt(ctx context.Context, a refund.WebhookAttempt) (refund.WebhookAttempt, error) {
	a.ID = uuid.Must(uuid.NewV7())
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_attempts (id, event_id, endpoint_id, attempt, status_code, latency_ms, error, succeeded)
		VALUES ($1, $2, $3, (SELECT coalesce(max(attempt), 0) + 1 FROM webhook_attempts WHERE event_id = $2 AND endpoint_id = $3),
			$4, $5, $6, $7)
		RETURNING attempt, created_at`,
		a.ID, a.EventID, a.EndpointID, a.StatusCode, a.LatencyMS, nullable(a.Error), a.Succeeded).Scan(&a.Attempt, &a.CreatedAt)
	if err != nil {
		return a, fmt.Errorf("insert webhook attempt: %w", mapErr(err))
	}
	return a, nil
}

// ListWebhookAttempts returns an event's delivery attempts, oldest first.
func (s *Store) ListWebhookAttempts(ctx context.Context, eventID uuid.UUID) ([]refund.WebhookAttempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, event_id, endpoint_id, attempt, status_code, latency_ms, coalesce(error, ''),
		succeeded, created_at FROM webhook_attempts WHERE event_id = $1 ORDER BY created_at, id`, eventID)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", mapErr(err))
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.WebhookAttempt, error) {
		var a refund.WebhookAttempt
		return a, r.Scan(&a.ID, &a.EventID, &a.EndpointID, &a.Attempt, &a.StatusCode, &a.LatencyMS, &a.Error, &a.Succeeded, &a.CreatedAt)
	})
	return out, mapErr(err)
}

// EventDeliveries returns one delivery of an event per active endpoint of
// its merchant subscribed to its type (for a redelivery).
func (s *Store) EventDeliveries(ctx context.Context, ev refund.Event) ([]refund.Delivery, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM webhook_endpoints
		WHERE merchant_id = $1 AND $2 = ANY (event_types) AND deleted_at IS NULL AND disabled_at IS NULL
		ORDER BY id`, ev.MerchantID, ev.Type)
	if err != nil {
		return nil, fmt.Errorf("list subscribed endpoints: %w", mapErr(err))
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, mapErr(err)
	}
	out := make([]refund.Delivery, 0, len(ids))
	for _, id := range ids {
		out = append(out, refund.Delivery{EventID: ev.ID, EndpointID: id})
	}
	return out, nil
}
