package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// BeginRefund marks that the refund's workflow runs and returns the refund
// with what the provider call needs of its original transaction (the
// provider reference, the payout destination and the amount).
func (s *Store) BeginRefund(ctx context.Context, id uuid.UUID) (refund.Refund, refund.Transaction, error) {
	var r refund.Refund
	var t refund.Transaction
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
func (s *Store) MarkProcessing(ctx context.Context, id uuid.UUID) (refund.Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `UPDATE refunds
		SET status = 'PROCESSING', submitted_at = coalesce(submitted_at, now()), updated_at = now()
		WHERE id = $1 AND status IN ('PENDING', 'PROCESSING') RETURNING `+refundColumns, id))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.GetRefund(ctx, refund.AllMerchants, id)
		if gerr != nil {
			return cur, gerr
		}
		return cur, refund.Rule(refund.CodeNotCancelable, "refund %s is already %s", id, cur.Status)
	}
	return r, mapErr(err)
}

// CountSend records that the refund is about to be sent to its provider and
// returns how many sends that makes. Only the first (1) is a first send, on
// which a rejection may end the refund (SPEC §12); the count lives here, not
// in workflow or activity state, so no replay, reset or older worker can
// take a later send for the first.
func (s *Store) CountSend(ctx context.Context, id uuid.UUID) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `UPDATE refunds SET sends = sends + 1 WHERE id = $1 RETURNING sends`, id).Scan(&n)
	return n, mapErr(err)
}

// SetProviderReference records the provider's id for the refund so callbacks can find it.
func (s *Store) SetProviderReference(ctx context.Context, id uuid.UUID, ref string) error {
	_, err := s.pool.Exec(ctx, `UPDATE refunds SET provider_reference = $2, updated_at = now()
		WHERE id = $1 AND provider_reference IS DISTINCT FROM $2`, id, ref)
	return mapErr(err)
}

// SetStuck flags the refund stuck with a reason (StuckAuth, ...), or clears
// the flag (reason ignored); ops filter on both.
func (s *Store) SetStuck(ctx context.Context, id uuid.UUID, stuck bool, reason string) error {
	if !stuck {
		reason = ""
	}
	_, err := s.pool.Exec(ctx, `UPDATE refunds SET stuck = $2, stuck_reason = $3, updated_at = now()
		WHERE id = $1 AND (stuck, coalesce(stuck_reason, '')) IS DISTINCT FROM ($2, $3)`, id, stuck, reason)
	return mapErr(err)
}

// Finalize settles (SUCCEEDED) or releases (anything else) the refund's
// reservation, moves the original transaction's status, records the ledger
// entry and the event, all in one transaction. It is idempotent: a refund
// already final is returned unchanged with no event, so a retried or
// duplicated finalize never moves money twice.
func (s *Store) Finalize(ctx context.Context, id uuid.UUID, o refund.Outcome) (refund.Refund, *refund.Event, error) {
	var out refund.Refund
	var ev *refund.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return fmt.Errorf("lock refund: %w", err)
		}
		out = r
		if r.Status.Final() {
			return nil
		}
		// A refund sent to its provider is canceled only by the provider voiding it.
		if o.Status == refund.StatusCanceled && r.Status != refund.StatusPending && o.FailureCode != refund.FailureVoided {
			return refund.Rule(refund.CodeNotCancelable, "refund %s is %s: only a PENDING refund not yet sent can be canceled", id, r.Status)
		}
		if out, err = closeRefund(ctx, tx, r, o); err != nil {
			return err
		}
		e, err := insertRefundEvent(ctx, tx, out, refund.EventTypeFor(o.Status))
		if err != nil {
			return err
		}
		ev = &e
		return nil
	})
	return out, ev, err
}

func closeRefund(ctx context.Context, tx pgx.Tx, r refund.Refund, o refund.Outcome) (refund.Refund, error) {
	b := &pgx.Batch{}
	steps := queueMoveBalance(b, r, o.Status == refund.StatusSucceeded)
	b.Queue(`UPDATE refunds SET status = $2,
		provider_reference = coalesce($3, provider_reference), failure_code = $4, failure_message = $5,
		attempts = greatest(attempts, $6), stuck = false, completed_at = now(), updated_at = now()
		WHERE id = $1 RETURNING `+refundColumns,
		r.ID, o.Status, nullable(o.ProviderReference), nullable(o.FailureCode), nullable(o.FailureMessage), o.Attempts)
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	for _, step := range steps {
		if _, err := res.Exec(); err != nil {
			return r, fmt.Errorf("%s: %w", step, err)
		}
	}
	out, err := scanRefund(res.QueryRow())
	if err != nil {
		return r, fmt.Errorf("update refund: %w", err)
	}
	return out, res.Close()
}

// queueMoveBalance queues the statements that turn the reservation into
// refunded money (settle) or give it back (release), and the ledger entry;
// it returns what each does, for errors.
func queueMoveBalance(b *pgx.Batch, r refund.Refund, settle bool) []string {
	var settled int64
	kind := "RELEASE"
	if settle {
		settled, kind = r.Amount, "SETTLE"
	}
	steps := []string{kind + " balance"}
	b.Queue(`UPDATE transactions SET refunded_amount = refunded_amount + $3,
		reserved_amount = reserved_amount - $2,
		status = CASE WHEN $3 = 0 THEN status WHEN refunded_amount + $3 = amount THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END,
		updated_at = now() WHERE id = $1`, r.TransactionID, r.Amount, settled)
	for _, li := range r.LineItems {
		var done int64
		if settle {
			done = li.Quantity
		}
		steps = append(steps, kind+" line item "+li.ID)
		b.Queue(`UPDATE transaction_line_items SET refunded_quantity = refunded_quantity + $4,
			reserved_quantity = reserved_quantity - $3 WHERE transaction_id = $1 AND id = $2`,
			r.TransactionID, li.ID, li.Quantity, done)
	}
	if r.TargetType == refund.TargetGiftCard {
		steps = append(steps, kind+" gift card redemption")
		b.Queue(`UPDATE gift_card_redemptions SET refunded_amount = refunded_amount + $4,
			reserved_amount = reserved_amount - $3 WHERE transaction_id = $1 AND id = $2`,
			r.TransactionID, r.TargetID, r.Amount, settled)
	}
	steps = append(steps, "insert "+kind+" ledger entry")
	queueLedger(b, r, kind)
	return steps
}

// Reverse records that the provider reversed a SUCCEEDED refund: in one
// transaction the settled amount goes back to the refundable balance (with
// its line items and gift-card redemption), the REVERSE ledger entry and the
// refund.reversed event are written, and the refund becomes REVERSED. A
// refund already REVERSED is returned unchanged with no event; any other
// status is a RuleError (only a provider's word about a paid refund
// reverses it).
func (s *Store) Reverse(ctx context.Context, id uuid.UUID, code, message string) (refund.Refund, *refund.Event, error) {
	var out refund.Refund
	var ev *refund.Event
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := scanRefund(tx.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return fmt.Errorf("lock refund: %w", err)
		}
		out = r
		switch r.Status {
		case refund.StatusReversed:
		case refund.StatusSucceeded:
			if out, err = reverseRefund(ctx, tx, r, code, message); err != nil {
				return err
			}
			e, err := insertRefundEvent(ctx, tx, out, refund.EventRefundReversed)
			if err != nil {
				return err
			}
			ev = &e
		default:
			return refund.Rule(refund.CodeNotReversible, "refund %s is %s: only a SUCCEEDED refund can be reversed", id, r.Status)
		}
		return nil
	})
	return out, ev, err
}

// reverseRefund gives a settled refund's amount back and marks it REVERSED, in one round trip.
func reverseRefund(ctx context.Context, tx pgx.Tx, r refund.Refund, code, message string) (refund.Refund, error) {
	b := &pgx.Batch{}
	steps := []string{"REVERSE balance"}
	b.Queue(`UPDATE transactions SET refunded_amount = refunded_amount - $2,
		status = CASE WHEN refunded_amount - $2 = 0 THEN 'CAPTURED' ELSE 'PARTIALLY_REFUNDED' END,
		updated_at = now() WHERE id = $1`, r.TransactionID, r.Amount)
	for _, li := range r.LineItems {
		steps = append(steps, "REVERSE line item "+li.ID)
		b.Queue(`UPDATE transaction_line_items SET refunded_quantity = refunded_quantity - $3
			WHERE transaction_id = $1 AND id = $2`, r.TransactionID, li.ID, li.Quantity)
	}
	if r.TargetType == refund.TargetGiftCard {
		steps = append(steps, "REVERSE gift card redemption")
		b.Queue(`UPDATE gift_card_redemptions SET refunded_amount = refunded_amount - $3
			WHERE transaction_id = $1 AND id = $2`, r.TransactionID, r.TargetID, r.Amount)
	}
	steps = append(steps, "insert REVERSE ledger entry")
	queueLedger(b, r, "REVERSE")
	b.Queue(`UPDATE refunds SET status = 'REVERSED', failure_code = $2, failure_message = $3, updated_at = now()
		WHERE id = $1 RETURNING `+refundColumns, r.ID, nullable(code), nullable(message))
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	for _, step := range steps {
		if _, err := res.Exec(); err != nil {
			return r, fmt.Errorf("%s: %w", step, err)
		}
	}
	out, err := scanRefund(res.QueryRow())
	if err != nil {
		return r, fmt.Errorf("update refund: %w", err)
	}
	return out, res.Close()
}

// StaleOpenRefunds picks, round-robin, up to limit open refunds whose
// workflow started and that did not change for idle, and records that they
// were checked now: the reconciler's sweep for refunds whose workflow closed
// without finishing them.
func (s *Store) StaleOpenRefunds(ctx context.Context, idle time.Duration, limit int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `UPDATE refunds SET reconciled_at = now() WHERE id IN (
			SELECT id FROM refunds WHERE status IN ('PENDING', 'PROCESSING') AND workflow_started_at IS NOT NULL
				AND updated_at < now() - make_interval(secs => $1)
			ORDER BY reconciled_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING id`, idle.Seconds(), limit)
	if err != nil {
		return nil, mapErr(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return ids, mapErr(err)
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
