-- +goose Up
CREATE TABLE merchants (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    approval_threshold bigint CHECK (approval_threshold IS NULL OR approval_threshold >= 0),
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- API keys are stored as SHA-256 hashes; merchant_id is NULL for ops keys.
CREATE TABLE api_keys (
    id          uuid PRIMARY KEY,
    merchant_id uuid REFERENCES merchants (id),
    key_hash    bytea NOT NULL UNIQUE,
    key_prefix  text NOT NULL,
    name        text NOT NULL DEFAULT '',
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE TABLE sessions (
    id          uuid PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES merchants (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The refundable balance lives on the transaction row; the CHECK makes an
-- over-refund impossible whatever the Go code does.
CREATE TABLE transactions (
    id                 uuid PRIMARY KEY,
    merchant_id        uuid NOT NULL REFERENCES merchants (id),
    session_id         uuid NOT NULL REFERENCES sessions (id),
    provider           text NOT NULL,
    method             text NOT NULL,
    amount             bigint NOT NULL CHECK (amount > 0),
    currency           char(3) NOT NULL,
    status             text NOT NULL CHECK (status IN ('AUTHORIZED', 'CAPTURED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'VOIDED')),
    provider_reference text NOT NULL,
    payout_destination jsonb,
    refunded_amount    bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    reserved_amount    bigint NOT NULL DEFAULT 0 CHECK (reserved_amount >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transactions_no_over_refund CHECK (refunded_amount + reserved_amount <= amount)
);
CREATE INDEX transactions_session_idx ON transactions (session_id);

-- amount is the unit amount; quantities are refunded per unit.
CREATE TABLE transaction_line_items (
    transaction_id    uuid NOT NULL REFERENCES transactions (id),
    id                text NOT NULL,
    amount            bigint NOT NULL CHECK (amount > 0),
    quantity          bigint NOT NULL CHECK (quantity > 0),
    refunded_quantity bigint NOT NULL DEFAULT 0 CHECK (refunded_quantity >= 0),
    reserved_quantity bigint NOT NULL DEFAULT 0 CHECK (reserved_quantity >= 0),
    PRIMARY KEY (transaction_id, id),
    CONSTRAINT line_items_no_over_refund CHECK (refunded_quantity + reserved_quantity <= quantity)
);

CREATE TABLE gift_card_redemptions (
    transaction_id  uuid NOT NULL REFERENCES transactions (id),
    id              text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    refunded_amount bigint NOT NULL DEFAULT 0 CHECK (refunded_amount >= 0),
    reserved_amount bigint NOT NULL DEFAULT 0 CHECK (reserved_amount >= 0),
    PRIMARY KEY (transaction_id, id),
    CONSTRAINT redemptions_no_over_refund CHECK (refunded_amount + reserved_amount <= amount)
);

CREATE TABLE refunds (
    id                      uuid PRIMARY KEY,
    merchant_id             uuid NOT NULL REFERENCES merchants (id),
    session_id              uuid NOT NULL REFERENCES sessions (id),
    transaction_id          uuid NOT NULL REFERENCES transactions (id),
    amount                  bigint NOT NULL CHECK (amount BETWEEN 1 AND 99999999),
    currency                char(3) NOT NULL,
    method                  text NOT NULL CHECK (method IN ('PROVIDER_REFUND', 'PAYOUT_REFUND')),
    provider                text NOT NULL,
    status                  text NOT NULL CHECK (status IN ('PENDING', 'PROCESSING', 'SUCCEEDED', 'DECLINED', 'FAILED', 'CANCELED')),
    reason                  text,
    reason_code             text,
    description             text,
    reference               text,
    metadata                jsonb NOT NULL DEFAULT '{}',
    line_items              jsonb NOT NULL DEFAULT '[]',
    target_type             text NOT NULL DEFAULT 'PAYMENT_METHOD',
    target_id               text,
    provider_reference      text,
    failure_code            text,
    failure_message         text,
    attempts                int NOT NULL DEFAULT 0,
    requires_approval       boolean NOT NULL DEFAULT false,
    stuck                   boolean NOT NULL DEFAULT false,
    idempotency_key         text,
    workflow_started_at     timestamptz,
    submitted_at            timestamptz,
    completed_at            timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refunds_merchant_created_idx ON refunds (merchant_id, created_at DESC, id DESC);
CREATE INDEX refunds_transaction_idx ON refunds (transaction_id);
CREATE INDEX refunds_open_idx ON refunds (status, created_at) WHERE status IN ('PENDING', 'PROCESSING');
CREATE UNIQUE INDEX refunds_provider_ref_idx ON refunds (provider, provider_reference) WHERE provider_reference IS NOT NULL;
CREATE UNIQUE INDEX refunds_idempotency_idx ON refunds (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- Append-only: every balance change writes one row in the same transaction.
CREATE TABLE ledger_entries (
    id             uuid PRIMARY KEY,
    transaction_id uuid NOT NULL REFERENCES transactions (id),
    refund_id      uuid NOT NULL REFERENCES refunds (id),
    kind           text NOT NULL CHECK (kind IN ('RESERVE', 'SETTLE', 'RELEASE')),
    amount         bigint NOT NULL CHECK (amount > 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (refund_id, kind)
);
CREATE INDEX ledger_entries_transaction_idx ON ledger_entries (transaction_id);

-- Outbox: one row per refund status change, written with the change.
CREATE TABLE refund_events (
    id          uuid PRIMARY KEY,
    merchant_id uuid NOT NULL REFERENCES merchants (id),
    refund_id   uuid NOT NULL REFERENCES refunds (id),
    type        text NOT NULL,
    sequence    int NOT NULL,
    payload     jsonb NOT NULL,
    dispatched_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (refund_id, sequence)
);
CREATE INDEX refund_events_merchant_idx ON refund_events (merchant_id, created_at DESC, id DESC);
CREATE INDEX refund_events_undispatched_idx ON refund_events (created_at) WHERE dispatched_at IS NULL;

CREATE TABLE idempotency_keys (
    merchant_id     uuid NOT NULL,
    endpoint        text NOT NULL,
    key             text NOT NULL,
    fingerprint     bytea NOT NULL,
    locked_at       timestamptz,
    response_status int,
    response_body   bytea,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, endpoint, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

CREATE TABLE webhook_endpoints (
    id                       uuid PRIMARY KEY,
    merchant_id              uuid NOT NULL REFERENCES merchants (id),
    url                      text NOT NULL,
    event_types              text[] NOT NULL,
    secret                   text NOT NULL,
    previous_secret          text,
    previous_secret_expires_at timestamptz,
    disabled_at              timestamptz,
    deleted_at               timestamptz,
    created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_merchant_idx ON webhook_endpoints (merchant_id);

CREATE TABLE webhook_attempts (
    id          uuid PRIMARY KEY,
    event_id    uuid NOT NULL REFERENCES refund_events (id),
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints (id),
    attempt     int NOT NULL,
    status_code int,
    latency_ms  int NOT NULL,
    error       text,
    succeeded   boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_event_idx ON webhook_attempts (event_id, created_at);

CREATE TABLE ops_audit (
    id         uuid PRIMARY KEY,
    actor_key  uuid NOT NULL,
    action     text NOT NULL,
    refund_id  uuid,
    detail     jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ops_audit_refund_idx ON ops_audit (refund_id, created_at);

-- +goose Down
DROP TABLE ops_audit, webhook_attempts, webhook_endpoints, idempotency_keys, refund_events,
    ledger_entries, refunds, gift_card_redemptions, transaction_line_items, transactions,
    sessions, api_keys, merchants;
