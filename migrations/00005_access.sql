-- +goose Up
-- Keys managed through the ops API: when each was last used (written at
-- most once a minute per key) and listing a merchant's keys.
ALTER TABLE api_keys ADD COLUMN last_used_at timestamptz;
CREATE INDEX api_keys_merchant_idx ON api_keys (merchant_id, id);
-- A key always has a scope.
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_present CHECK (cardinality(scopes) > 0);

-- +goose Down
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_present;
DROP INDEX api_keys_merchant_idx;
ALTER TABLE api_keys DROP COLUMN last_used_at;
