// Package store holds all SQL: merchants, keys, transactions, the refundable
// balance ledger, refunds, events, webhooks and idempotency records.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/backflow/backflow/refund"
	"github.com/google/uuid"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the Postgres-backed store.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Pool exposes the pool for health checks.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Connect opens a pool and checks it answers.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return pool, nil
}

// inTx runs fn in one transaction, committing on nil and rolling back
// otherwise; errors of fn, begin and commit alike leave mapped.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return mapErr(pgx.BeginFunc(ctx, s.pool, fn))
}

// where builds the conditions of a list query, numbering its arguments.
type where struct {
	conds []string
	args  []any
}

// scope adds the merchant condition of a scope (none for refund.AllMerchants).
func (w *where) scope(s refund.Scope) error {
	merchant, err := s.MerchantFilter()
	if merchant != nil {
		w.add("merchant_id = $%d", *merchant)
	}
	return err
}

func (w *where) add(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, fmt.Sprintf(cond, len(w.args)))
}

// listPage runs a newest-first keyset query over a table whose ids are UUID
// v7 (so id order is creation order). It returns at most limit rows (default
// 20, at most 200; callers validate the limit) and the cursor of the next
// page, uuid.Nil on the last.
func listPage[T any](ctx context.Context, q querier, selectFrom string, w where, after uuid.UUID, limit int,
	scan func(pgx.Row) (T, error), id func(T) uuid.UUID) ([]T, uuid.UUID, error) {
	if after != uuid.Nil {
		w.add("id < $%d", after)
	}
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 200)
	sql := selectFrom
	if len(w.conds) > 0 {
		sql += " WHERE " + strings.Join(w.conds, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY id DESC LIMIT %d", limit+1)
	rows, err := q.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, uuid.Nil, mapErr(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
	if err != nil {
		return nil, uuid.Nil, mapErr(err)
	}
	var next uuid.UUID
	if len(out) > limit {
		out = out[:limit]
		next = id(out[limit-1])
	}
	return out, next, nil
}

// checkViolation reports whether err is a CHECK constraint refusing a write
// (SQLSTATE 23514): a money rule the database enforced.
func checkViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

// mapErr turns pgx errors into the domain's errors at the boundary, so
// no caller reads SQLSTATEs: no rows is refund.ErrNotFound, a unique
// violation refund.ErrDuplicate, a database that cannot answer
// refund.ErrUnavailable, text Postgres cannot store a validation RuleError.
// Mapping a mapped error again leaves it as it is.
func mapErr(err error) error {
	var rule *refund.RuleError
	switch {
	case err == nil, errors.As(err, &rule), errors.Is(err, refund.ErrNotFound), errors.Is(err, refund.ErrDuplicate),
		errors.Is(err, refund.ErrUnavailable):
		return err
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %w", refund.ErrNotFound, err)
	case sqlState(err) == "23505":
		return fmt.Errorf("%w: %w", refund.ErrDuplicate, err)
	case sqlState(err) == "22021", sqlState(err) == "22P05":
		// Character not in repertoire, untranslatable: NUL (\u0000) is valid
		// JSON but Postgres cannot store it in text or jsonb.
		return &refund.RuleError{Code: refund.CodeValidation, Message: "a text field holds a character that cannot be stored (such as \\u0000)"}
	case databaseDown(err):
		return refund.Unavailable("the database is unavailable; retry with the same Idempotency-Key", err)
	}
	return err
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// databaseDown reports whether err says Postgres could not be reached or
// went away mid-request (connect failure, timeout, a connection cut by a
// crash or restart, the server shutting down or starting up): the outcome
// is for the client to retry, not an internal error.
func databaseDown(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	state := sqlState(err)
	switch {
	case errors.As(err, &connErr), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	case state != "":
		// 08: connection exception; 57P0x: admin/crash shutdown, cannot connect now; 53300: too many connections.
		return strings.HasPrefix(state, "08") || strings.HasPrefix(state, "57P") || state == "53300"
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &netErr)
}
