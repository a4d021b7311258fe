package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BeginRefund marks that the refund's workflow runs and returns the refund
// with what the provider call needs of its original transaction: the
// provider reference, the payout destination and the amount.
func (s *Store) BeginRefund(ctx context.Context, id uuid.UUID) (Refund, Transaction, error) {
	var r Refund
	var t Transaction
	// One round trip: the refund's update returns its transaction too.
	err := s.pool.QueryRow(ctx, `WITH r AS (
			UPDATE refunds SET workflow_started_at = coalesce(workflow_started_at, now())
			WHERE id = $1 RETURNING `+refundColumns+`)
		SELECT r.*, t.provider_reference, t.payout_destination, t.amount
		FROM r JOIN transactions t ON t.id = r.transaction_id`, id).Scan(append(refundFields(&r),
		&t.ProviderReference, &t.PayoutDestination, &t.Amount)...)
	t.ID = r.TransactionID
	return r, t, mapErr(err)
}

// MarkProcessing moves a PENDING refund to PROCESSING just before it is sent
// to the provider. A refund already final (canceled) returns a RuleError and
// must not be sent.
func (s *Store) MarkProcessing(ctx context.Context, id uuid.UUID) (Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `UPDATE refunds
		SET status = 'PROCESSING', submitted_at = coalesce(submitted_at, now()), updated_at = now()
		WHERE id = $1 AND status IN ('PENDING', 'PROCESSING') RETURNING `+refundColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.GetRefund(ctx, uuid.Nil, id)
		if gerr != nil {
			return cur, gerr
		}
		return cur, ruleErr(CodeNotCancelable, "refund %s is already %s", id, cur.Status)
	}
	return r, mapErr(err)
}

// SetProviderReference records the provider's id for the refund so callbacks can find it.
func (s *Store) SetProviderReference(ctx context.Context, id uuid.UUID, ref string) error {
	_, err := s.pool.Exec(ctx, `UPDATE refunds SET provider_reference = $2, updated_at = now()
		WHERE id = $1 AND provider_reference IS DISTINCT FROM $2`, id, ref)
	return mapErr(err)
}

// SetStuck flags or clears the stuck flag ops filter on.
func (s *Store) SetStuck(ctx context.Context, id uuid.UUID, stuck bool) error {
	_, err := s.pool.Exec(ctx, `UPDATE refunds SET stuck = $2, updated_at = now() WHERE id = $1 AND stuck <> $2`, id, stuck)
	return mapErr(err)
}

// Outcome is how a refund ends.
type Outcome struct {
	Status            string // SUCCEEDED, DECLINED, FAILED or CANCELED
	ProviderReference string
	FailureCode       string
	FailureMessage    string
	Attempts          int
}

// Finalize settles (SUCCEEDED) or releases (anything else) the refund's
// reservation, moves the original transaction's status, records the ledger
// entry and the event, all in one transaction. It is idempotent: a refund
// already final is returned unchanged with no event, so a retried or
// duplicated finalize never moves money twice.
func (s *Store) Finalize(ctx context.Context, id uuid.UUID, o Outcome) (Refund, *Event, error) {
	var out Refund
	var ev *Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return fmt.Errorf("lock refund: %w", err)
		}
		out = r
		if FinalStatus(r.Status) {
			return nil
		}
		if o.Status == StatusCanceled && r.Status != StatusPending {
			return ruleErr(CodeNotCancelable, "refund %s is %s: only a PENDING refund not yet sent can be canceled", id, r.Status)
		}
		if err := moveBalance(ctx, tx, r, o.Status == StatusSucceeded); err != nil {
			return err
		}
		out, err = scanRefund(tx.QueryRow(ctx, `UPDATE refunds SET status = $2,
			provider_reference = coalesce($3, provider_reference), failure_code = $4, failure_message = $5,
			attempts = greatest(attempts, $6), stuck = false, completed_at = now(), updated_at = now()
			WHERE id = $1 RETURNING `+refundColumns,
			id, o.Status, nullable(o.ProviderReference), nullable(o.FailureCode), nullable(o.FailureMessage), o.Attempts))
		if err != nil {
			return fmt.Errorf("update refund: %w", err)
		}
		e, err := insertEvent(ctx, tx, out, eventTypeFor(o.Status))
		ev = &e
		return err
	})
	return out, ev, err
}

func eventTypeFor(status string) string {
	switch status {
	case StatusSucceeded:
		return EventRefundSucceeded
	case StatusCanceled:
		return EventRefundCanceled
	default:
		return EventRefundFailed
	}
}

// moveBalance turns the reservation into refunded money (settle) or gives it back (release).
func moveBalance(ctx context.Context, tx pgx.Tx, r Refund, settle bool) error {
	var settled int64
	kind := "RELEASE"
	if settle {
		settled, kind = r.Amount, "SETTLE"
	}
	_, err := tx.Exec(ctx, `UPDATE transactions SET refunded_amount = refunded_amount + $3,
		reserved_amount = reserved_amount - $2,
		status = CASE WHEN $3 = 0 THEN status WHEN refunded_amount + $3 = amount THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END,
		updated_at = now() WHERE id = $1`, r.TransactionID, r.Amount, settled)
	if err != nil {
		return fmt.Errorf("%s balance: %w", kind, err)
	}
	for _, li := range r.LineItems {
		var done int64
		if settle {
			done = li.Quantity
		}
		if _, err := tx.Exec(ctx, `UPDATE transaction_line_items SET refunded_quantity = refunded_quantity + $4,
			reserved_quantity = reserved_quantity - $3 WHERE transaction_id = $1 AND id = $2`,
			r.TransactionID, li.ID, li.Quantity, done); err != nil {
			return fmt.Errorf("%s line item: %w", kind, err)
		}
	}
	if r.TargetType == TargetGiftCard {
		if _, err := tx.Exec(ctx, `UPDATE gift_card_redemptions SET refunded_amount = refunded_amount + $4,
			reserved_amount = reserved_amount - $3 WHERE transaction_id = $1 AND id = $2`,
			r.TransactionID, r.TargetID, r.Amount, settled); err != nil {
			return fmt.Errorf("%s gift card redemption: %w", kind, err)
		}
	}
	return insertLedger(ctx, tx, r, kind)
}

// OrphanRefunds lists PENDING refunds older than grace whose workflow never
// reported it started: the API crashed between the DB write and the start.
func (s *Store) OrphanRefunds(ctx context.Context, grace time.Duration, limit int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM refunds WHERE status = 'PENDING' AND workflow_started_at IS NULL
		AND created_at < now() - make_interval(secs => $1) ORDER BY created_at LIMIT $2`, grace.Seconds(), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}
