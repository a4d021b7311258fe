package store

import (
	"context"
	"fmt"
	"reflect"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/backflow/backflow/refund"
)

// CreateTransaction registers a payment with its line items and gift-card
// redemptions. A payment is registered once per (merchant, provider,
// provider reference): registering it again with the same details returns
// the existing transaction and created=false; with other details it is a
// RuleError (transaction.duplicate). Nothing is ever counted twice.
func (s *Store) CreateTransaction(ctx context.Context, in refund.NewTransaction) (t refund.Transaction, created bool, err error) {
	id := uuid.Must(uuid.NewV7())
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		ok, err := sessionExists(ctx, tx, in.MerchantID, in.SessionID)
		if err != nil {
			return fmt.Errorf("check session: %w", err)
		}
		if !ok {
			return refund.Rule(refund.CodeSessionNotFound, "session %s not found", in.SessionID)
		}
		// A concurrent registration of the same payment waits here for the
		// first to commit, then finds it.
		tag, err := tx.Exec(ctx, `INSERT INTO transactions
			(id, merchant_id, session_id, provider, method, amount, currency, status, provider_reference, payout_destination)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (merchant_id, provider, provider_reference) DO NOTHING`,
			id, in.MerchantID, in.SessionID, in.Provider, in.Method, in.Amount, in.Currency, in.Status,
			in.ProviderReference, in.PayoutDestination)
		if err != nil {
			return fmt.Errorf("insert transaction: %w", err)
		}
		if created = tag.RowsAffected() == 1; !created {
			return nil
		}
		for _, li := range in.LineItems {
			if _, err := tx.Exec(ctx, `INSERT INTO transaction_line_items (transaction_id, id, amount, quantity) VALUES ($1, $2, $3, $4)`,
				id, li.ID, li.Amount, li.Quantity); err != nil {
				return fmt.Errorf("insert line item: %w", err)
			}
		}
		for _, g := range in.GiftCardRedemptions {
			if _, err := tx.Exec(ctx, `INSERT INTO gift_card_redemptions (transaction_id, id, amount) VALUES ($1, $2, $3)`,
				id, g.ID, g.Amount); err != nil {
				return fmt.Errorf("insert gift card redemption: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return refund.Transaction{}, false, err
	}
	if created {
		t, err = s.GetTransaction(ctx, refund.OfMerchant(in.MerchantID), id)
		return t, true, err
	}
	t, err = s.transactionByPayment(ctx, in.MerchantID, in.Provider, in.ProviderReference)
	if err != nil {
		return t, false, err
	}
	if !sameRegistration(t, in) {
		return t, false, refund.Rule(refund.CodeTransactionDup, "payment %s of provider %s is already registered as transaction %s with other details",
			in.ProviderReference, in.Provider, t.ID)
	}
	return t, false, nil
}

// transactionByPayment reads the transaction of a provider's payment.
func (s *Store) transactionByPayment(ctx context.Context, merchantID uuid.UUID, provider, ref string) (refund.Transaction, error) {
	t, err := scanTransaction(s.pool.QueryRow(ctx, `SELECT `+txColumns+` FROM transactions
		WHERE merchant_id = $1 AND provider = $2 AND provider_reference = $3`, merchantID, provider, ref))
	if err != nil {
		return t, mapErr(err)
	}
	return t, mapErr(loadItems(ctx, s.pool, &t, false))
}

// sameRegistration reports whether in registers t again, as first registered.
func sameRegistration(t refund.Transaction, in refund.NewTransaction) bool {
	if t.SessionID != in.SessionID || t.Method != in.Method || t.Amount != in.Amount || t.Currency != in.Currency ||
		!reflect.DeepEqual(t.PayoutDestination, in.PayoutDestination) ||
		len(t.LineItems) != len(in.LineItems) || len(t.GiftCardRedemptions) != len(in.GiftCardRedemptions) {
		return false
	}
	// A CAPTURED registration's status moves on as the payment is refunded.
	if t.Status != in.Status && !(in.Status == refund.TxCaptured && capturedOrRefunded(t.Status)) {
		return false
	}
	lines := map[string]refund.LineItem{}
	for _, li := range t.LineItems {
		lines[li.ID] = li
	}
	for _, li := range in.LineItems {
		if got, ok := lines[li.ID]; !ok || got.Amount != li.Amount || got.Quantity != li.Quantity {
			return false
		}
	}
	gifts := map[string]int64{}
	for _, g := range t.GiftCardRedemptions {
		gifts[g.ID] = g.Amount
	}
	for _, g := range in.GiftCardRedemptions {
		if amount, ok := gifts[g.ID]; !ok || amount != g.Amount {
			return false
		}
	}
	return true
}

// capturedOrRefunded: the statuses a CAPTURED registration moves through as it is refunded.
func capturedOrRefunded(status refund.TxStatus) bool {
	return status == refund.TxCaptured || status == refund.TxPartiallyRefunded || status == refund.TxRefunded
}

const txColumns = `id, merchant_id, session_id, provider, method, amount, currency, status, provider_reference,
	payout_destination, refunded_amount, reserved_amount, gift_card_amount, gift_card_refunded, gift_card_reserved,
	created_at, updated_at`

func scanTransaction(row pgx.Row) (refund.Transaction, error) {
	var t refund.Transaction
	err := row.Scan(&t.ID, &t.MerchantID, &t.SessionID, &t.Provider, &t.Method, &t.Amount, &t.Currency, &t.Status,
		&t.ProviderReference, &t.PayoutDestination, &t.RefundedAmount, &t.ReservedAmount, &t.GiftCardAmount,
		&t.GiftCardRefunded, &t.GiftCardReserved, &t.CreatedAt, &t.UpdatedAt)
	return t, err
}

// querier is what both a pool and a transaction offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetTransaction reads a transaction in scope with its items.
func (s *Store) GetTransaction(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Transaction, error) {
	merchant, err := scope.MerchantFilter()
	if err != nil {
		return refund.Transaction{}, err
	}
	t, err := scanTransaction(s.pool.QueryRow(ctx, `SELECT `+txColumns+` FROM transactions
		WHERE id = $1 AND ($2::uuid IS NULL OR merchant_id = $2)`, id, merchant))
	if err != nil {
		return t, mapErr(err)
	}
	return t, mapErr(loadItems(ctx, s.pool, &t, false))
}

// loadItems fills line items and gift-card redemptions, locking them when forUpdate.
func loadItems(ctx context.Context, q querier, t *refund.Transaction, forUpdate bool) error {
	lock := ""
	if forUpdate {
		lock = " FOR UPDATE"
	}
	rows, err := q.Query(ctx, `SELECT id, amount, quantity, refunded_quantity, reserved_quantity
		FROM transaction_line_items WHERE transaction_id = $1 ORDER BY id`+lock, t.ID)
	if err != nil {
		return fmt.Errorf("query line items: %w", err)
	}
	t.LineItems, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.LineItem, error) {
		var li refund.LineItem
		return li, r.Scan(&li.ID, &li.Amount, &li.Quantity, &li.RefundedQuantity, &li.ReservedQuantity)
	})
	if err != nil {
		return fmt.Errorf("scan line items: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT id, amount, refunded_amount, reserved_amount
		FROM gift_card_redemptions WHERE transaction_id = $1 ORDER BY id`+lock, t.ID)
	if err != nil {
		return fmt.Errorf("query gift card redemptions: %w", err)
	}
	t.GiftCardRedemptions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.GiftCardRedemption, error) {
		var g refund.GiftCardRedemption
		return g, r.Scan(&g.ID, &g.Amount, &g.RefundedAmount, &g.ReservedAmount)
	})
	if err != nil {
		return fmt.Errorf("scan gift card redemptions: %w", err)
	}
	return nil
}

func nilUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// ListLedger returns the ledger entries of a refund, oldest first.
func (s *Store) ListLedger(ctx context.Context, refundID uuid.UUID) ([]refund.LedgerEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, transaction_id, refund_id, kind, amount, created_at
		FROM ledger_entries WHERE refund_id = $1 ORDER BY id`, refundID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.LedgerEntry, error) {
		var e refund.LedgerEntry
		return e, r.Scan(&e.ID, &e.TransactionID, &e.RefundID, &e.Kind, &e.Amount, &e.CreatedAt)
	})
	return out, mapErr(err)
}
