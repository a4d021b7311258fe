-- +goose Up
-- Why an endpoint was disabled (e.g. it answered 410 Gone), for the merchant and ops.
ALTER TABLE webhook_endpoints ADD COLUMN disabled_reason text;
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_url_scheme
    CHECK (url ~* '^https?://');
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_event_types_present
    CHECK (cardinality(event_types) > 0);
ALTER TABLE webhook_endpoints ADD CONSTRAINT webhook_endpoints_previous_secret_expiry
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL));

-- GET /v1/events pages a merchant's events newest first by id (UUID v7),
-- optionally for one refund.
CREATE INDEX refund_events_merchant_id_idx ON refund_events (merchant_id, id DESC);
CREATE INDEX webhook_attempts_endpoint_idx ON webhook_attempts (endpoint_id, created_at);

-- +goose Down
DROP INDEX webhook_attempts_endpoint_idx;
DROP INDEX refund_events_merchant_id_idx;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_previous_secret_expiry;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_event_types_present;
ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_url_scheme;
ALTER TABLE webhook_endpoints DROP COLUMN disabled_reason;
