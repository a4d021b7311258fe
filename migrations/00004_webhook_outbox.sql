-- +goose Up
-- The webhook outbox: one row per event and subscribed endpoint, written in
-- the same transaction as the event. The webhook dispatchers claim due rows
-- (a lease, so a dead dispatcher's rows are claimed again), post them and
-- record the outcome; a refund's workflow no longer starts anything per
-- endpoint (docs/webhooks.md, "How it runs").
CREATE TABLE webhook_deliveries (
    event_id          uuid NOT NULL REFERENCES refund_events (id),
    endpoint_id       uuid NOT NULL REFERENCES webhook_endpoints (id),
    -- The event's refund and sequence: a refund's events reach an endpoint
    -- in sequence order (NULL for events that are not about a refund).
    refund_id         uuid REFERENCES refunds (id),
    sequence          int NOT NULL,
    status            text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'SKIPPED')),
    -- Attempts since window_started_at (the event, or its last redelivery);
    -- retries give up a configured time past it.
    attempts          int NOT NULL DEFAULT 0,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    leased_until      timestamptz,
    last_error        text,
    finished_at       timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, endpoint_id),
    CHECK ((status = 'PENDING') = (finished_at IS NULL))
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'PENDING';
CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (endpoint_id, refund_id, sequence) WHERE status = 'PENDING';
-- The deliveries in flight (leased; a lease past its time is claimable again).
CREATE INDEX webhook_deliveries_leased_idx ON webhook_deliveries (endpoint_id) WHERE status = 'PENDING' AND leased_until IS NOT NULL;

-- An endpoint's health: consecutive failed attempts, since when it fails
-- (cleared by a 2xx), and when the next attempt to it may start (the
-- endpoint's own backoff, so a dead endpoint costs one probe per backoff
-- step, not one attempt per pending delivery).
ALTER TABLE webhook_endpoints ADD COLUMN failures int NOT NULL DEFAULT 0,
    ADD COLUMN failing_since timestamptz, ADD COLUMN retry_at timestamptz;

-- Events about an endpoint (webhook_endpoint.disabled) belong to no refund.
ALTER TABLE refund_events ALTER COLUMN refund_id DROP NOT NULL;
-- Endpoints that took every event type also take the new one.
UPDATE webhook_endpoints SET event_types = event_types || '{webhook_endpoint.disabled}'
WHERE event_types @> '{refund.created,refund.succeeded,refund.failed,refund.canceled,refund.reversed}'
    AND NOT 'webhook_endpoint.disabled' = ANY (event_types);

-- +goose Down
DROP TABLE webhook_deliveries;
UPDATE webhook_endpoints SET event_types = array_remove(event_types, 'webhook_endpoint.disabled');
DELETE FROM webhook_attempts WHERE event_id IN (SELECT id FROM refund_events WHERE refund_id IS NULL);
DELETE FROM refund_events WHERE refund_id IS NULL;
ALTER TABLE refund_events ALTER COLUMN refund_id SET NOT NULL;
ALTER TABLE webhook_endpoints DROP COLUMN retry_at, DROP COLUMN failing_since, DROP COLUMN failures;
