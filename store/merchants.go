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

// API key scopes.
const (
	keyPrefixLen            = 12
	keyRandomBytes          = 24
	merchantKeyPrefixString = "bf_"
)

// CreateMerchant inserts a merchant.
func (s *Store) CreateMerchant(ctx context.Context, name string, approvalThreshold *int64) (refund.Merchant, error) {
	m := refund.Merchant{ID: uuid.Must(uuid.NewV7()), Name: name, ApprovalThreshold: approvalThreshold}
	_, err := s.pool.Exec(ctx, `INSERT INTO merchants (id, name, approval_threshold) VALUES ($1, $2, $3)`,
		m.ID, m.Name, m.ApprovalThreshold)
	return m, mapErr(err)
}

// GetMerchant reads one merchant.
func (s *Store) GetMerchant(ctx context.Context, id uuid.UUID) (refund.Merchant, error) {
	var m refund.Merchant
	err := s.pool.QueryRow(ctx, `SELECT id, name, approval_threshold FROM merchants WHERE id = $1`, id).
		Scan(&m.ID, &m.Name, &m.ApprovalThreshold)
	return m, mapErr(err)
}

// FindMerchantByName returns the first merchant with that name.
func (s *Store) FindMerchantByName(ctx context.Context, name string) (refund.Merchant, error) {
	var m refund.Merchant
	err := s.pool.QueryRow(ctx, `SELECT id, name, approval_threshold FROM merchants WHERE name = $1 ORDER BY id LIMIT 1`, name).
		Scan(&m.ID, &m.Name, &m.ApprovalThreshold)
	return m, mapErr(err)
}

// HashKey is how API keys are stored: never in clear.
func HashKey(key string) []byte {
	sum := sha256.Sum256([]byte(key))
	return sum[:]
}

// CreateAPIKey generates a key for merchantID (uuid.Nil for an ops key) and
// returns it in clear; only its hash is stored.
func (s *Store) CreateAPIKey(ctx context.Context, merchantID uuid.UUID, name string, scopes []string) (string, error) {
	buf := make([]byte, keyRandomBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	key := merchantKeyPrefixString + base64.RawURLEncoding.EncodeToString(buf)
	return key, s.InsertAPIKey(ctx, merchantID, name, key, scopes)
}

// InsertAPIKey stores a given key (used by the dev seed for stable demo keys).
func (s *Store) InsertAPIKey(ctx context.Context, merchantID uuid.UUID, name, key string, scopes []string) error {
	var mid *uuid.UUID
	if merchantID != uuid.Nil {
		mid = &merchantID
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (id, merchant_id, key_hash, key_prefix, name, scopes)
		VALUES ($1, $2, $3, $4, $5, $6)`, uuid.Must(uuid.NewV7()), mid, HashKey(key), key[:min(keyPrefixLen, len(key))], name, scopes)
	return mapErr(err)
}

// Authenticate resolves a clear API key to its principal.
func (s *Store) Authenticate(ctx context.Context, key string) (refund.Principal, error) {
	var p refund.Principal
	var mid *uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT id, merchant_id, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
		HashKey(key)).Scan(&p.KeyID, &mid, &p.Scopes)
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
