package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Generated API keys: "bf_" and 24 random bytes, URL-safe base64. The first
// keyPrefixLen characters are kept in clear to recognise a key by.
const (
	keyPrefixLen            = 12
	keyRandomBytes          = 24
	merchantKeyPrefixString = "bf_"
)

const merchantColumns = `id, name, approval_threshold, created_at`

func scanMerchant(r pgx.Row) (refund.Merchant, error) {
	var m refund.Merchant
	return m, r.Scan(&m.ID, &m.Name, &m.ApprovalThreshold, &m.CreatedAt)
}

// CreateMerchant inserts a merchant.
func (s *Store) CreateMerchant(ctx context.Context, name string, approvalThreshold *int64) (refund.Merchant, error) {
	m, err := scanMerchant(s.pool.QueryRow(ctx, `INSERT INTO merchants (id, name, approval_threshold) VALUES ($1, $2, $3)
		RETURNING `+merchantColumns, uuid.Must(uuid.NewV7()), name, approvalThreshold))
	return m, mapErr(err)
}

// GetMerchant reads one merchant.
func (s *Store) GetMerchant(ctx context.Context, id uuid.UUID) (refund.Merchant, error) {
	m, err := scanMerchant(s.pool.QueryRow(ctx, `SELECT `+merchantColumns+` FROM merchants WHERE id = $1`, id))
	return m, mapErr(err)
}

// FindMerchantByName returns the first merchant with that name.
func (s *Store) FindMerchantByName(ctx context.Context, name string) (refund.Merchant, error) {
	m, err := scanMerchant(s.pool.QueryRow(ctx, `SELECT `+merchantColumns+` FROM merchants WHERE name = $1 ORDER BY id LIMIT 1`, name))
	return m, mapErr(err)
}

// ListMerchants returns a page of merchants, newest first, and the next page's cursor.
func (s *Store) ListMerchants(ctx context.Context, after uuid.UUID, limit int) ([]refund.Merchant, uuid.UUID, error) {
	return listPage(ctx, s.pool, `SELECT `+merchantColumns+` FROM merchants`, where{}, after, limit, scanMerchant,
		func(m refund.Merchant) uuid.UUID { return m.ID })
}

// HashKey is how API keys are stored: never in clear.
func HashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// CreateAPIKey generates a key for merchantID (uuid.Nil for an ops key)
// and returns it in clear; only its hash is stored. For test fixtures: the
// product validates requests through the refunds service.
func (s *Store) CreateAPIKey(ctx context.Context, merchantID uuid.UUID, name string, scopes []string) (string, error) {
	_, key, err := s.InsertAPIKey(ctx, refund.NewAPIKey{MerchantID: merchantID, Name: name, Scopes: scopes})
	return key, err
}

// InsertAPIKey stores a key, in.Secret or a generated one, and returns it
// with its secret in clear: the only time anyone sees it. Only the hash and
// the prefix are stored. An unknown merchant is refund.ErrNotFound.
func (s *Store) InsertAPIKey(ctx context.Context, in refund.NewAPIKey) (refund.APIKey, string, error) {
	key := in.Secret
	if key == "" {
		buf := make([]byte, keyRandomBytes)
		if _, err := rand.Read(buf); err != nil {
			return refund.APIKey{}, "", fmt.Errorf("generate key: %w", err)
		}
		key = merchantKeyPrefixString + base64.RawURLEncoding.EncodeToString(buf)
	}
	k := refund.APIKey{ID: uuid.Must(uuid.NewV7()), MerchantID: in.MerchantID, Name: in.Name,
		Prefix: key[:min(keyPrefixLen, len(key))], Scopes: in.Scopes}
	err := s.pool.QueryRow(ctx, `INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix, name, scopes)
		SELECT $1, $2, $3, $4, $5, $6 WHERE $2::uuid IS NULL OR EXISTS (SELECT 1 FROM merchants WHERE id = $2)
		RETURNING created_at`, k.ID, nilUUID(in.MerchantID), HashKey(key), k.Prefix, k.Name, k.Scopes).Scan(&k.CreatedAt)
	if err != nil {
		return refund.APIKey{}, "", mapErr(err)
	}
	return k, key, nil
}

const keyColumns = `id, merchant_id, name, key_prefix, scopes, created_at, last_used_at, revoked_at`

func scanKey(r pgx.Row) (refund.APIKey, error) {
	var k refund.APIKey
	var mid *uuid.UUID // NULL for ops keys
	err := r.Scan(&k.ID, &mid, &k.Name, &k.Prefix, &k.Scopes, &k.CreatedAt, &k.LastUsedAt, &k.RevokedAt)
	if mid != nil {
		k.MerchantID = *mid
	}
	return k, err
}

// ListAPIKeys returns a merchant's keys, revoked ones included, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, merchantID uuid.UUID) ([]refund.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE merchant_id = $1 ORDER BY id`, merchantID)
	if err != nil {
		return nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (refund.APIKey, error) { return scanKey(r) })
	return out, mapErr(err)
}

// RevokeAPIKey revokes a key (again: a no-op) and returns it; refund.ErrNotFound when unknown.
func (s *Store) RevokeAPIKey(ctx context.Context, id uuid.UUID) (refund.APIKey, error) {
	k, err := scanKey(s.pool.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
		RETURNING `+keyColumns, id))
	return k, mapErr(err)
}

// Authenticate resolves a clear API key to its principal; a revoked or
// unknown key is refund.ErrNotFound. It records when the key was last used,
// writing at most once a minute per key.
func (s *Store) Authenticate(ctx context.Context, key string) (refund.Principal, error) {
	var p refund.Principal
	var mid *uuid.UUID
	err := s.pool.QueryRow(ctx, `WITH k AS (
			SELECT id, merchant_id, scopes, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL),
		used AS (
			UPDATE api_keys a SET last_used_at = now() FROM k
			WHERE a.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'))
		SELECT id, merchant_id, scopes FROM k`, HashKey(key)).Scan(&p.KeyID, &mid, &p.Scopes)
	if err != nil {
		return p, mapErr(err)
	}
	if mid != nil {
		p.MerchantID = *mid
	}
	return p, nil
}

// CreateSession inserts a checkout session. With an idempotency key, a
// session the key already made is returned instead (the first response was
// lost), so a retried create never makes two.
func (s *Store) CreateSession(ctx context.Context, merchantID uuid.UUID, idempotencyKey string) (uuid.UUID, error) {
	id := uuid.Must(uuid.NewV7())
	tag, err := s.pool.Exec(ctx, `INSERT INTO sessions (id, merchant_id, idempotency_key) VALUES ($1, $2, $3)
		ON CONFLICT (merchant_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING`,
		id, merchantID, nullable(idempotencyKey))
	if err != nil || tag.RowsAffected() == 1 {
		return id, mapErr(err)
	}
	// A statement of its own: it sees the session a concurrent request with
	// the same key committed while the insert waited for it.
	err = s.pool.QueryRow(ctx, `SELECT id FROM sessions WHERE merchant_id = $1 AND idempotency_key = $2`,
		merchantID, idempotencyKey).Scan(&id)
	return id, mapErr(err)
}

func sessionExists(ctx context.Context, q pgx.Tx, merchantID, sessionID uuid.UUID) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE id = $1 AND merchant_id = $2)`, sessionID, merchantID).Scan(&ok)
	return ok, err
}
