package bench

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgSnapshot is a reading of the database's cumulative statistics.
type pgSnapshot struct {
	db         map[string]float64 // pg_stat_database counters
	statements map[int64]stmtStat // pg_stat_statements, when installed
}

type stmtStat struct {
	query string
	calls float64
	ms    float64
	rows  float64
}

var dbCounters = []string{"xact_commit", "xact_rollback", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated", "tup_deleted", "blks_hit", "blks_read"}

// pgStatsFlush is how long a Postgres 15 backend may keep its counters
// before publishing them to pg_stat_database (PGSTAT_MIN_INTERVAL is 1 s).
const pgStatsFlush = 1500 * time.Millisecond

func snapshotPG(ctx context.Context, pool *pgxpool.Pool) (pgSnapshot, error) {
	s := pgSnapshot{db: map[string]float64{}, statements: map[int64]stmtStat{}}
	vals := make([]any, len(dbCounters))
	ptrs := make([]float64, len(dbCounters))
	for i := range ptrs {
		vals[i] = &ptrs[i]
	}
	q := "SELECT " + strings.Join(func() []string {
		out := make([]string, len(dbCounters))
		for i, c := range dbCounters {
			out[i] = c + "::float8"
		}
		return out
	}(), ", ") + " FROM pg_stat_database WHERE datname = current_database()"
	if err := pool.QueryRow(ctx, q).Scan(vals...); err != nil {
		return s, fmt.Errorf("read pg_stat_database: %w", err)
	}
	for i, c := range dbCounters {
		s.db[c] = ptrs[i]
	}
	rows, err := pool.Query(ctx, `SELECT queryid, calls::float8, total_exec_time, rows::float8, query FROM pg_stat_statements
		WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND queryid IS NOT NULL`)
	if err != nil {
		s.statements = nil // not installed: fall back to pg_stat_database
		return s, nil
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st stmtStat
		if err := rows.Scan(&id, &st.calls, &st.ms, &st.rows, &st.query); err != nil {
			return s, err
		}
		s.statements[id] = st
	}
	return s, rows.Err()
}

// SQLStats is the database work of one phase, per completed refund.
type SQLStats struct {
	Source string `json:"source"` // pg_stat_statements or pg_stat_database
	// Transactions is xact_commit per refund: every autocommit statement and
	// every explicit transaction counts one.
	Transactions float64 `json:"transactionsPerRefund"`
	Rollbacks    float64 `json:"rollbacksPerRefund"`
	TupInserted  float64 `json:"rowsInsertedPerRefund"`
	TupUpdated   float64 `json:"rowsUpdatedPerRefund"`
	TupDeleted   float64 `json:"rowsDeletedPerRefund"`
	// Statements counts every statement (BEGIN and COMMIT included) per
	// refund, and ExecMs their server time, from pg_stat_statements.
	Statements float64         `json:"statementsPerRefund,omitempty"`
	ExecMs     float64         `json:"execMsPerRefund,omitempty"`
	Top        []StatementStat `json:"statements,omitempty"`
}

// StatementStat is one normalized statement's share of a refund.
type StatementStat struct {
	Query     string  `json:"query"`
	PerRefund float64 `json:"callsPerRefund"`
	MeanMs    float64 `json:"meanMs"`
}

var spaces = regexp.MustCompile(`\s+`)

// isOwn tells the bench's own statistics queries apart from Backflow's.
func isOwn(q string) bool {
	q = strings.ToLower(q)
	return strings.Contains(q, "pg_stat_") || strings.Contains(q, "from refunds where id = any")
}

func diffPG(before, after pgSnapshot, n int) SQLStats {
	per := func(k string) float64 {
		if n == 0 {
			return 0
		}
		return round((after.db[k]-before.db[k])/float64(n), 2)
	}
	out := SQLStats{Source: "pg_stat_database", Transactions: per("xact_commit"), Rollbacks: per("xact_rollback"),
		TupInserted: per("tup_inserted"), TupUpdated: per("tup_updated"), TupDeleted: per("tup_deleted")}
	if before.statements == nil || after.statements == nil || n == 0 {
		return out
	}
	out.Source = "pg_stat_statements"
	type agg struct {
		calls, ms float64
	}
	byText := map[string]*agg{}
	var calls, execMs float64
	for id, a := range after.statements {
		if isOwn(a.query) {
			continue
		}
		b := before.statements[id]
		dc, dm := a.calls-b.calls, a.ms-b.ms
		if dc <= 0 {
			continue
		}
		q := strings.TrimSpace(spaces.ReplaceAllString(a.query, " "))
		if len(q) > 110 {
			q = q[:107] + "..."
		}
		if byText[q] == nil {
			byText[q] = &agg{}
		}
		byText[q].calls += dc
		byText[q].ms += dm
		calls += dc
		execMs += dm
	}
	out.Statements = round(calls/float64(n), 2)
	out.ExecMs = round(execMs/float64(n), 3)
	for q, a := range byText {
		pr := round(a.calls/float64(n), 2)
		if pr < 0.01 {
			continue
		}
		out.Top = append(out.Top, StatementStat{Query: q, PerRefund: pr, MeanMs: round(a.ms/a.calls, 3)})
	}
	slices.SortFunc(out.Top, func(x, y StatementStat) int {
		return cmp.Or(cmp.Compare(y.PerRefund, x.PerRefund), strings.Compare(x.Query, y.Query))
	})
	return out
}

// DBTimes are the refund's milestones as Postgres recorded them (its own
// clock, no polling): created (API commit), workflow started (first step),
// submitted (marked PROCESSING) and completed (SUCCEEDED).
type DBTimes struct {
	Succeeded        int     `json:"succeeded"`
	Other            int     `json:"notSucceeded"`
	ToSucceeded      Latency `json:"createdToCompleted"`
	ToWorkflowStart  Latency `json:"createdToWorkflowStarted"`
	StartToSubmitted Latency `json:"workflowStartedToSubmitted"`
	SubmittedToDone  Latency `json:"submittedToCompleted"`
	// Throughput is refunds completed per second, first created to last completed.
	Throughput float64 `json:"throughputPerSec"`
}

func refundTimes(ctx context.Context, pool *pgxpool.Pool, ids []uuid.UUID) (DBTimes, error) {
	var out DBTimes
	rows, err := pool.Query(ctx, `SELECT status, created_at, workflow_started_at, submitted_at, completed_at
		FROM refunds WHERE id = ANY($1)`, ids)
	if err != nil {
		return out, fmt.Errorf("read refund times: %w", err)
	}
	defer rows.Close()
	var total, toStart, toSubmit, toDone []time.Duration
	var first, last time.Time
	for rows.Next() {
		var status string
		var created time.Time
		var started, submitted, completed *time.Time
		if err := rows.Scan(&status, &created, &started, &submitted, &completed); err != nil {
			return out, err
		}
		if status != "SUCCEEDED" || completed == nil {
			out.Other++
			continue
		}
		out.Succeeded++
		total = append(total, completed.Sub(created))
		if first.IsZero() || created.Before(first) {
			first = created
		}
		if completed.After(last) {
			last = *completed
		}
		if started != nil && submitted != nil {
			toStart = append(toStart, started.Sub(created))
			toSubmit = append(toSubmit, submitted.Sub(*started))
			toDone = append(toDone, completed.Sub(*submitted))
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	out.ToSucceeded, out.ToWorkflowStart = Summarize(total), Summarize(toStart)
	out.StartToSubmitted, out.SubmittedToDone = Summarize(toSubmit), Summarize(toDone)
	if last.After(first) {
		out.Throughput = round(float64(out.Succeeded)/last.Sub(first).Seconds(), 1)
	}
	return out, nil
}
