package store

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// IdempotencyRetention is how long keys are kept; SPEC asks for at least 24 h.
const IdempotencyRetention = 48 * time.Hour

// staleLock is how long an in-flight claim blocks others; after it a crashed
// request's key can be claimed again. Every create the key guards is itself
// unique by the key (refunds, sessions, endpoints, rotations) or by the
// payment (transactions), so the re-run returns the original.
const staleLock = time.Minute

// ClaimIdempotencyKey claims key for one request. It returns a stored
// response to replay, refund.ErrIdempotencyMismatch, refund.ErrIdempotencyInProgress, or
// (nil, nil) when the caller owns the key and must Complete or Release it.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, merchantID uuid.UUID, endpoint, key string, fingerprint []byte) (*refund.StoredResponse, error) {
	// A new key, the common case, is one statement; only a reused key needs
	// the locking transaction below.
	const claim = `INSERT INTO idempotency_keys (merchant_id, endpoint, key, fingerprint, locked_at)
		VALUES ($1, $2, $3, $4, now()) ON CONFLICT DO NOTHING`
	tag, err := s.pool.Exec(ctx, claim, merchantID, endpoint, key, fingerprint)
	if err != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", mapErr(err))
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	var out *refund.StoredResponse
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, claim, merchantID, endpoint, key, fingerprint)
		if err != nil {
			return fmt.Errorf("claim idempotency key: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return nil // released meanwhile
		}
		var fp []byte
		var status *int
		var body []byte
		var expired, locked bool
		// Ages are read on the database's clock, the one that wrote them.
		err = tx.QueryRow(ctx, `SELECT fingerprint, response_status, response_body,
				created_at < now() - make_interval(secs => $4), coalesce(locked_at > now() - make_interval(secs => $5), false)
			FROM idempotency_keys WHERE merchant_id = $1 AND endpoint = $2 AND key = $3 FOR UPDATE`,
			merchantID, endpoint, key, IdempotencyRetention.Seconds(), staleLock.Seconds()).Scan(&fp, &status, &body, &expired, &locked)
		if err != nil {
			return fmt.Errorf("read idempotency key: %w", err)
		}
		switch {
		case expired:
			// Past retention the key is free again: take it over.
		case !bytes.Equal(fp, fingerprint):
			return refund.ErrIdempotencyMismatch
		case status != nil:
			out = &refund.StoredResponse{Status: *status, Body: body}
			return nil
		case locked:
			return refund.ErrIdempotencyInProgress
		}
		_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET fingerprint = $4, locked_at = now(), response_status = NULL,
			response_body = NULL, created_at = now() WHERE merchant_id = $1 AND endpoint = $2 AND key = $3`,
			merchantID, endpoint, key, fingerprint)
		return err
	})
	return out, err
}

// CompleteIdempotencyKey stores the response to replay for key.
func (s *Store) CompleteIdempotencyKey(ctx context.Context, merchantID uuid.UUID, endpoint, key string, resp refund.StoredResponse) error {
	_, err := s.pool.Exec(ctx, `UPDATE idempotency_keys SET response_status = $4, response_body = $5, locked_at = NULL
		WHERE merchant_id = $1 AND endpoint = $2 AND key = $3`, merchantID, endpoint, key, resp.Status, resp.Body)
	return mapErr(err)
}

// ReleaseIdempotencyKey forgets a claim whose request failed transiently, so it can be retried.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, merchantID uuid.UUID, endpoint, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE merchant_id = $1 AND endpoint = $2 AND key = $3
		AND response_status IS NULL`, merchantID, endpoint, key)
	return mapErr(err)
}

// PurgeIdempotencyKeys deletes keys past retention.
func (s *Store) PurgeIdempotencyKeys(ctx context.Context) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)`,
		IdempotencyRetention.Seconds())
	return tag.RowsAffected(), mapErr(err)
}
