package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

const refundColumns = `id, merchant_id, session_id, transaction_id, amount, currency, method, provider, status,
	coalesce(reason, ''), coalesce(reason_code, ''), coalesce(description, ''), coalesce(reference, ''), metadata, line_items,
	target_type, coalesce(target_id, ''), coalesce(provider_reference, ''), coalesce(failure_code, ''), coalesce(failure_message, ''),
	attempts, requires_approval, stuck, coalesce(stuck_reason, ''), workflow_started_at, submitted_at, completed_at, created_at, updated_at`

func scanRefund(row pgx.Row) (refund.Refund, error) {
	var r refund.Refund
	err := row.Scan(refundFields(&r)...)
	return r, err
}

// refundFields are the scan targets of refundColumns, in order.
func refundFields(r *refund.Refund) []any {
	return []any{&r.ID, &r.MerchantID, &r.SessionID, &r.TransactionID, &r.Amount, &r.Currency, &r.Method, &r.Provider,
		&r.Status, &r.Reason, &r.ReasonCode, &r.Description, &r.Reference, &r.Metadata, &r.LineItems, &r.TargetType,
		&r.TargetID, &r.ProviderReference, &r.FailureCode, &r.FailureMessage, &r.Attempts, &r.RequiresApproval, &r.Stuck,
		&r.StuckReason, &r.WorkflowStartedAt, &r.SubmittedAt, &r.CompletedAt, &r.CreatedAt, &r.UpdatedAt}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// CreateRefund resolves the original transaction, reserves the amount and
// writes the refund, its RESERVE ledger entry and its refund.created event in
// one Postgres transaction. A RuleError means nothing was written.
func (s *Store) CreateRefund(ctx context.Context, in refund.NewRefund) (refund.Refund, error) {
	var out refund.Refund
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		t, err := resolveTransaction(ctx, tx, in)
		if err != nil {
			return err
		}
		// Line items and redemptions are read (and locked) only when the refund targets them.
		if len(in.LineItems) > 0 || in.TargetType == refund.TargetGiftCard {
			if err := loadItems(ctx, tx, &t, true); err != nil {
				return err
			}
		}
		if in.Currency != "" && !strings.EqualFold(in.Currency, t.Currency) {
			return refund.Rule(refund.CodeCurrencyMismatch, "currency %s does not match the original transaction's %s", in.Currency, t.Currency)
		}
		amount, lines, err := refundAmount(in, t)
		if err != nil {
			return err
		}
		method, err := in.Route(t, in.TargetType)
		if err != nil {
			return err
		}
		if in.Metadata == nil {
			in.Metadata = map[string]string{}
		}
		if lines == nil {
			lines = []refund.RefundLineItem{}
		}
		targetType := in.TargetType
		if targetType == "" {
			targetType = refund.TargetPaymentMethod
		}
		id := uuid.Must(uuid.NewV7())
		// Above the merchant's approval threshold the refund waits for ops.
		out, err = scanRefund(tx.QueryRow(ctx, `INSERT INTO refunds (id, merchant_id, session_id, transaction_id, amount, currency,
			method, provider, status, reason, reason_code, description, reference, metadata, line_items, target_type, target_id,
			requires_approval, idempotency_key)
			SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'PENDING', $9, $10, $11, $12, $13, $14, $15, $16,
				coalesce($5 > m.approval_threshold, false), $17
			FROM merchants m WHERE m.id = $2
			RETURNING `+refundColumns,
			id, in.MerchantID, t.SessionID, t.ID, amount, t.Currency, method, t.Provider,
			nullable(in.Reason), nullable(in.ReasonCode), nullable(in.Description), nullable(in.Reference), in.Metadata, lines,
			targetType, nullable(in.TargetID), nullable(in.IdempotencyKey)))
		if err != nil {
			return fmt.Errorf("insert refund: %w", err)
		}
		if err := reserve(ctx, tx, out); err != nil {
			return err
		}
		_, err = insertRefundEvent(ctx, tx, out, refund.EventRefundCreated)
		return err
	})
	return out, err
}

// resolveTransaction locks the refund's original transaction, selecting the
// session's single refundable one when none is named.
func resolveTransaction(ctx context.Context, tx pgx.Tx, in refund.NewRefund) (refund.Transaction, error) {
	if in.TransactionID != uuid.Nil {
		t, err := scanTransaction(tx.QueryRow(ctx, `SELECT `+txColumns+` FROM transactions
			WHERE id = $1 AND merchant_id = $2 FOR UPDATE`, in.TransactionID, in.MerchantID))
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && in.SessionID != uuid.Nil && t.SessionID != in.SessionID) {
			return t, refund.Rule(refund.CodeTransactionNotFound, "transaction %s not found", in.TransactionID)
		}
		if err != nil {
			return t, fmt.Errorf("lock transaction: %w", err)
		}
		return t, refundableStatus(t)
	}
	ok, err := sessionExists(ctx, tx, in.MerchantID, in.SessionID)
	if err != nil {
		return refund.Transaction{}, fmt.Errorf("check session: %w", err)
	}
	if !ok {
		return refund.Transaction{}, refund.Rule(refund.CodeSessionNotFound, "session %s not found", in.SessionID)
	}
	rows, err := tx.Query(ctx, `SELECT `+txColumns+` FROM transactions WHERE session_id = $1 AND merchant_id = $2
		ORDER BY id FOR UPDATE`, in.SessionID, in.MerchantID)
	if err != nil {
		return refund.Transaction{}, fmt.Errorf("lock session transactions: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.Transaction, error) { return scanTransaction(r) })
	if err != nil {
		return refund.Transaction{}, fmt.Errorf("scan session transactions: %w", err)
	}
	var refundable []refund.Transaction
	for _, t := range all {
		if refundableStatus(t) == nil {
			refundable = append(refundable, t)
		}
	}
	switch {
	case len(refundable) == 1:
		return refundable[0], nil
	case len(refundable) > 1:
		return refund.Transaction{}, refund.Rule(refund.CodeAmbiguous, "session has %d refundable transactions: set originalTransactionId", len(refundable))
	case len(all) == 0:
		return refund.Transaction{}, refund.Rule(refund.CodeTransactionNotFound, "session %s has no transactions", in.SessionID)
	default:
		// Explain why the session's only candidates cannot be refunded.
		return refund.Transaction{}, refundableStatus(all[0])
	}
}

func refundableStatus(t refund.Transaction) error {
	switch t.Status {
	case refund.TxAuthorized:
		return refund.Rule(refund.CodeNotCaptured, "transaction %s is authorized but not captured: void it instead", t.ID)
	case refund.TxVoided:
		return refund.Rule(refund.CodeNotCaptured, "transaction %s was voided: nothing to refund", t.ID)
	}
	if t.Refundable() <= 0 {
		if t.ReservedAmount > 0 {
			return refund.Rule(refund.CodeAmountInsufficient, "the remaining amount of transaction %s is reserved by refunds in progress", t.ID)
		}
		return refund.Rule(refund.CodeFullyRefunded, "transaction %s is fully refunded", t.ID)
	}
	return nil
}

// refundAmount computes the amount to reserve and the priced line items,
// checking the target's own balance.
func refundAmount(in refund.NewRefund, t refund.Transaction) (int64, []refund.RefundLineItem, error) {
	available := t.Refundable()
	var lines []refund.RefundLineItem
	if len(in.LineItems) > 0 {
		var sum int64
		for i, li := range in.LineItems {
			item, ok := findLine(t.LineItems, li.ID)
			if !ok {
				return 0, nil, refund.FieldRule(fmt.Sprintf("lineItems[%d].id", i), "line item %q is not on the original transaction", li.ID)
			}
			if left := item.Quantity - item.RefundedQuantity - item.ReservedQuantity; li.Quantity > left {
				return 0, nil, refund.Rule(refund.CodeAmountInsufficient, "line item %q has %d refundable units, %d requested", li.ID, left, li.Quantity)
			}
			sum += item.Amount * li.Quantity
			lines = append(lines, refund.RefundLineItem{ID: li.ID, Quantity: li.Quantity, Amount: item.Amount})
		}
		if in.Amount == 0 {
			in.Amount = sum
		} else if in.Amount > sum {
			return 0, nil, refund.FieldRule("refundValue.amount", "amount %d exceeds the %d of the refunded line items", in.Amount, sum)
		}
	}
	if in.TargetType == refund.TargetGiftCard {
		g, ok := findRedemption(t.GiftCardRedemptions, in.TargetID)
		if !ok {
			return 0, nil, refund.FieldRule("targetId", "gift card redemption %q is not on the original transaction", in.TargetID)
		}
		available = min(available, g.Amount-g.RefundedAmount-g.ReservedAmount)
		if available <= 0 {
			return 0, nil, refund.Rule(refund.CodeFullyRefunded, "gift card redemption %q is fully refunded", in.TargetID)
		}
	}
	if in.TargetType != refund.TargetGiftCard {
		// What was paid by gift card goes back only to the gift card.
		available = min(available, t.PaymentMethodRefundable())
		if available <= 0 {
			return 0, nil, refund.Rule(refund.CodeAmountInsufficient, "the payment method of transaction %s has nothing left to refund "+
				"(captured %d, %d of it by gift card): refund the gift card redemptions instead", t.ID, t.Amount, t.GiftCardAmount)
		}
	}
	amount := in.Amount
	if amount == 0 {
		amount = available
	}
	if amount > available {
		return 0, nil, refund.Rule(refund.CodeAmountInsufficient, "refund of %d exceeds the refundable %d", amount, available)
	}
	if amount > 99_999_999 {
		return 0, nil, refund.FieldRule("refundValue.amount", "a refund is at most 99999999 minor units; refund the rest separately")
	}
	return amount, lines, nil
}

func findLine(items []refund.LineItem, id string) (refund.LineItem, bool) {
	for _, li := range items {
		if li.ID == id {
			return li, true
		}
	}
	return refund.LineItem{}, false
}

func findRedemption(items []refund.GiftCardRedemption, id string) (refund.GiftCardRedemption, bool) {
	for _, g := range items {
		if g.ID == id {
			return g, true
		}
	}
	return refund.GiftCardRedemption{}, false
}

// reserve moves the refund's amount to reserved with guarded UPDATEs; the
// CHECK constraints stop any over-refund the guards would miss. A gift-card
// redemption is reserved before its transaction: the redemption's trigger
// moves the transaction's gift-card totals, which the payment-method CHECK
// reads.
func reserve(ctx context.Context, tx pgx.Tx, r refund.Refund) error {
	if r.TargetType == refund.TargetGiftCard {
		tag, err := tx.Exec(ctx, `UPDATE gift_card_redemptions SET reserved_amount = reserved_amount + $3
			WHERE transaction_id = $1 AND id = $2 AND amount - refunded_amount - reserved_amount >= $3`,
			r.TransactionID, r.TargetID, r.Amount)
		if err != nil {
			return fmt.Errorf("reserve gift card redemption: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return refund.Rule(refund.CodeAmountInsufficient, "gift card redemption %q has too little refundable balance", r.TargetID)
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE transactions SET reserved_amount = reserved_amount + $2, updated_at = now()
		WHERE id = $1 AND amount - refunded_amount - reserved_amount >= $2`, r.TransactionID, r.Amount)
	if checkViolation(err) {
		return refund.Rule(refund.CodeAmountInsufficient, "refund of %d exceeds what the payment method may get back", r.Amount)
	}
	if err != nil {
		return fmt.Errorf("reserve balance: %w", err)
	}
	if tag.RowsAffected() != 1 {
		return refund.Rule(refund.CodeAmountInsufficient, "refund of %d exceeds the refundable balance", r.Amount)
	}
	for _, li := range r.LineItems {
		tag, err := tx.Exec(ctx, `UPDATE transaction_line_items SET reserved_quantity = reserved_quantity + $3
			WHERE transaction_id = $1 AND id = $2 AND quantity - refunded_quantity - reserved_quantity >= $3`,
			r.TransactionID, li.ID, li.Quantity)
		if err != nil {
			return fmt.Errorf("reserve line item: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return refund.Rule(refund.CodeAmountInsufficient, "line item %q has too few refundable units", li.ID)
		}
	}
	return insertLedger(ctx, tx, r, "RESERVE")
}

const insertLedgerSQL = `INSERT INTO ledger_entries (id, transaction_id, refund_id, kind, amount) VALUES ($1, $2, $3, $4, $5)`

func insertLedger(ctx context.Context, tx pgx.Tx, r refund.Refund, kind string) error {
	if _, err := tx.Exec(ctx, insertLedgerSQL, uuid.Must(uuid.NewV7()), r.TransactionID, r.ID, kind, r.Amount); err != nil {
		return fmt.Errorf("insert %s ledger entry: %w", kind, err)
	}
	return nil
}

func queueLedger(b *pgx.Batch, r refund.Refund, kind string) {
	b.Queue(insertLedgerSQL, uuid.Must(uuid.NewV7()), r.TransactionID, r.ID, kind, r.Amount)
}

// insertRefundEvent writes the event of a refund's status change; the
// caller holds the refund's row.
func insertRefundEvent(ctx context.Context, tx pgx.Tx, r refund.Refund, eventType string) (refund.Event, error) {
	payload, err := json.Marshal(map[string]any{"refund": r.Object()})
	if err != nil {
		return refund.Event{}, fmt.Errorf("encode event: %w", err)
	}
	return insertEvent(ctx, tx, r.MerchantID, r.ID, eventType, payload)
}

// insertEvent writes an event (of refund refundID, or uuid.Nil) with its
// webhook deliveries (the outbox, see insertEventSQL).
func insertEvent(ctx context.Context, tx pgx.Tx, merchantID, refundID uuid.UUID, eventType string, payload []byte) (refund.Event, error) {
	e := refund.Event{ID: uuid.Must(uuid.NewV7()), MerchantID: merchantID, RefundID: refundID, Type: eventType, Payload: payload}
	var ref *uuid.UUID
	if refundID != uuid.Nil {
		ref = &refundID
	}
	if err := tx.QueryRow(ctx, insertEventSQL, e.ID, e.MerchantID, ref, e.Type, e.Payload).Scan(&e.Sequence, &e.CreatedAt); err != nil {
		return refund.Event{}, fmt.Errorf("insert event: %w", err)
	}
	return e, nil
}

// GetRefund reads a refund in scope.
func (s *Store) GetRefund(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Refund, error) {
	merchant, err := scope.MerchantFilter()
	if err != nil {
		return refund.Refund{}, err
	}
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE id = $1 AND ($2::uuid IS NULL OR merchant_id = $2)`, id, merchant))
	return r, mapErr(err)
}

// FindRefundByProviderReference finds the refund a provider callback is about.
func (s *Store) FindRefundByProviderReference(ctx context.Context, provider, ref string) (refund.Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE provider = $1 AND provider_reference = $2`, provider, ref))
	return r, mapErr(err)
}

// ListRefunds returns refunds newest first and the cursor of the next page.
func (s *Store) ListRefunds(ctx context.Context, f refund.RefundFilter) ([]refund.Refund, uuid.UUID, error) {
	var w where
	if err := w.scope(f.Scope); err != nil {
		return nil, uuid.Nil, err
	}
	if f.SessionID != uuid.Nil {
		w.add("session_id = $%d", f.SessionID)
	}
	if f.TransactionID != uuid.Nil {
		w.add("transaction_id = $%d", f.TransactionID)
	}
	if f.Status != "" {
		w.add("status = $%d", f.Status)
	}
	if f.Provider != "" {
		w.add("provider = $%d", f.Provider)
	}
	if f.Stuck != nil {
		w.add("stuck = $%d", *f.Stuck)
	}
	if !f.CreatedFrom.IsZero() {
		w.add("created_at >= $%d", f.CreatedFrom)
	}
	if !f.CreatedTo.IsZero() {
		w.add("created_at < $%d", f.CreatedTo)
	}
	return listPage(ctx, s.pool, `SELECT `+refundColumns+` FROM refunds`, w, f.After, f.Limit, scanRefund,
		func(r refund.Refund) uuid.UUID { return r.ID })
}

// GetRefundByIdempotencyKey finds the refund a merchant created with key.
func (s *Store) GetRefundByIdempotencyKey(ctx context.Context, merchantID uuid.UUID, key string) (refund.Refund, error) {
	r, err := scanRefund(s.pool.QueryRow(ctx, `SELECT `+refundColumns+` FROM refunds
		WHERE merchant_id = $1 AND idempotency_key = $2`, merchantID, key))
	return r, mapErr(err)
}
