-- +goose Up
-- The money rules of SPEC §12. This migration refuses to run on data that
-- already breaks them (a payment registered twice, a payment-method refund
-- beyond captured less gift cards), naming the rows: merge or correct them
-- by hand first (docs/runbook.md, "Upgrading to this release (migration 3)").

-- A refund the provider reverses after it succeeded (REVERSED), and the
-- ledger entry that gives its amount back to the refundable balance.
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check
    CHECK (status IN ('PENDING', 'PROCESSING', 'SUCCEEDED', 'DECLINED', 'FAILED', 'CANCELED', 'REVERSED'));
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
    CHECK (kind IN ('RESERVE', 'SETTLE', 'RELEASE', 'REVERSE'));
-- Endpoints that took every event type also take the new one.
UPDATE webhook_endpoints SET event_types = event_types || '{refund.reversed}'
WHERE event_types @> '{refund.created,refund.succeeded,refund.failed,refund.canceled}'
    AND NOT 'refund.reversed' = ANY (event_types);

-- Why a refund is stuck (provider.auth, provider.no_answer, ...), for ops.
ALTER TABLE refunds ADD COLUMN stuck_reason text;
-- How many times the refund was about to be sent to its provider: a
-- rejection ends a refund only on its first send, whatever replays, resets
-- or worker versions happen.
ALTER TABLE refunds ADD COLUMN sends int NOT NULL DEFAULT 0;
-- When the reconciler last checked that an open refund's workflow runs.
ALTER TABLE refunds ADD COLUMN reconciled_at timestamptz;
CREATE INDEX refunds_reconcile_idx ON refunds (reconciled_at NULLS FIRST) WHERE status IN ('PENDING', 'PROCESSING');

-- One payment, one balance.
-- +goose StatementBegin
DO $$
DECLARE dups text;
BEGIN
    SELECT string_agg(format('%s/%s (merchant %s): %s', provider, provider_reference, merchant_id, ids), '; ')
    INTO dups FROM (
        SELECT merchant_id, provider, provider_reference, string_agg(id::text, ', ' ORDER BY id) AS ids
        FROM transactions GROUP BY merchant_id, provider, provider_reference HAVING count(*) > 1 LIMIT 20) d;
    IF dups IS NOT NULL THEN
        RAISE EXCEPTION 'payments registered more than once: %', dups
            USING HINT = 'merge each into one transaction before upgrading: docs/runbook.md, "Upgrading to this release (migration 3)"';
    END IF;
END $$;
-- +goose StatementEnd
CREATE UNIQUE INDEX transactions_payment_idx ON transactions (merchant_id, provider, provider_reference);

-- Gift cards: the part of a payment paid by gift card is refunded only to
-- the gift card. The transaction carries the totals of its redemptions,
-- kept by a trigger, so the payment method's own cap is a CHECK.
ALTER TABLE transactions
    ADD COLUMN gift_card_amount   bigint NOT NULL DEFAULT 0,
    ADD COLUMN gift_card_refunded bigint NOT NULL DEFAULT 0,
    ADD COLUMN gift_card_reserved bigint NOT NULL DEFAULT 0;
UPDATE transactions t SET gift_card_amount = g.amount, gift_card_refunded = g.refunded, gift_card_reserved = g.reserved
FROM (SELECT transaction_id, sum(amount) AS amount, sum(refunded_amount) AS refunded, sum(reserved_amount) AS reserved
      FROM gift_card_redemptions GROUP BY transaction_id) g
WHERE g.transaction_id = t.id;
-- +goose StatementBegin
DO $$
DECLARE bad text;
BEGIN
    SELECT string_agg(id::text, ', ') INTO bad FROM (
        SELECT id FROM transactions
        WHERE (refunded_amount - gift_card_refunded) + (reserved_amount - gift_card_reserved) > amount - gift_card_amount
        LIMIT 20) b;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'transactions whose payment method got back more than captured less gift cards: %', bad
            USING HINT = 'docs/runbook.md, "Upgrading to this release (migration 3)"';
    END IF;
END $$;
-- +goose StatementEnd
ALTER TABLE transactions
    ADD CONSTRAINT transactions_gift_cards_within_amount
        CHECK (gift_card_amount <= amount AND gift_card_refunded >= 0 AND gift_card_reserved >= 0
               AND gift_card_refunded + gift_card_reserved <= gift_card_amount),
    ADD CONSTRAINT transactions_payment_method_no_over_refund
        CHECK ((refunded_amount - gift_card_refunded) + (reserved_amount - gift_card_reserved) <= amount - gift_card_amount);

-- +goose StatementBegin
CREATE FUNCTION gift_card_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE transactions SET gift_card_amount = gift_card_amount + NEW.amount,
            gift_card_refunded = gift_card_refunded + NEW.refunded_amount,
            gift_card_reserved = gift_card_reserved + NEW.reserved_amount
        WHERE id = NEW.transaction_id;
    ELSE
        UPDATE transactions SET gift_card_amount = gift_card_amount + NEW.amount - OLD.amount,
            gift_card_refunded = gift_card_refunded + NEW.refunded_amount - OLD.refunded_amount,
            gift_card_reserved = gift_card_reserved + NEW.reserved_amount - OLD.reserved_amount
        WHERE id = NEW.transaction_id;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER gift_card_totals AFTER INSERT OR UPDATE ON gift_card_redemptions
    FOR EACH ROW EXECUTE FUNCTION gift_card_totals();

-- A create retried after its response was lost (a crash, a client gone)
-- finds the object it made by its Idempotency-Key instead of making another.
ALTER TABLE sessions ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX sessions_idempotency_idx ON sessions (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
ALTER TABLE webhook_endpoints ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX webhook_endpoints_idempotency_idx ON webhook_endpoints (merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The Idempotency-Key of the endpoint's last secret rotation.
ALTER TABLE webhook_endpoints ADD COLUMN rotation_key text;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN rotation_key;
DROP INDEX webhook_endpoints_idempotency_idx;
ALTER TABLE webhook_endpoints DROP COLUMN idempotency_key;
DROP INDEX sessions_idempotency_idx;
ALTER TABLE sessions DROP COLUMN idempotency_key;
DROP TRIGGER gift_card_totals ON gift_card_redemptions;
DROP FUNCTION gift_card_totals();
ALTER TABLE transactions DROP CONSTRAINT transactions_payment_method_no_over_refund,
    DROP CONSTRAINT transactions_gift_cards_within_amount,
    DROP COLUMN gift_card_reserved, DROP COLUMN gift_card_refunded, DROP COLUMN gift_card_amount;
DROP INDEX transactions_payment_idx;
DROP INDEX refunds_reconcile_idx;
ALTER TABLE refunds DROP COLUMN reconciled_at, DROP COLUMN sends, DROP COLUMN stuck_reason;
UPDATE webhook_endpoints SET event_types = array_remove(event_types, 'refund.reversed');
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('RESERVE', 'SETTLE', 'RELEASE'));
ALTER TABLE refunds DROP CONSTRAINT refunds_status_check;
ALTER TABLE refunds ADD CONSTRAINT refunds_status_check
    CHECK (status IN ('PENDING', 'PROCESSING', 'SUCCEEDED', 'DECLINED', 'FAILED', 'CANCELED'));
