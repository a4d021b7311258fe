package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/app"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/store"
)

const verifyUsage = `usage: backflow verify [flags]

Checks the money invariants on the database (and each refund's workflow on
Temporal): no over-refund, a ledger that explains every balance, no
orphaned reservation, event sequences without gaps, one live workflow per
refund in progress, none failed or terminated. It only reads (one read-only
snapshot, statements bounded to 60 s), so it is safe on a production
database. It prints every violation with its refund and transaction ids and
exits 1 when there is any.

Postgres is DATABASE_URL; Temporal TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE.

flags:`

// errViolations makes verify exit non-zero.
var errViolations = errors.New("money invariants broken")

// runVerify is `backflow verify`: the invariant checker as an ops command.
func runVerify(ctx context.Context, cfg config.Config, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), verifyUsage)
		fs.PrintDefaults()
	}
	since := fs.Duration("since", 24*time.Hour, "check transactions and refunds created in this last span (0: all of them)")
	from := fs.String("from", "", "check objects created from this RFC 3339 time (overrides --since)")
	to := fs.String("to", "", "check objects created before this RFC 3339 time")
	withTemporal := fs.Bool("temporal", true, "also check each refund's workflow on Temporal")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	var merchants merchantList
	fs.Var(&merchants, "merchant", "check only this merchant (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := invariants.Options{Merchants: merchants, WorkflowGrace: time.Minute}
	var err error
	if opts.CreatedFrom, opts.CreatedTo, err = verifyRange(*since, *from, *to, time.Now()); err != nil {
		return err
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	if *withTemporal {
		logger := slog.New(slog.DiscardHandler)
		tc, ns, err := app.DialTemporal(ctx, logger, client.Options{})
		if err != nil {
			return err
		}
		defer tc.Close()
		opts.Temporal, opts.Namespace = tc, ns
		if opts.HistoryRetention, err = historyRetention(ctx, tc, ns); err != nil {
			return err
		}
	}
	report, err := invariants.Check(ctx, pool, opts)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		for _, v := range report.Violations {
			fmt.Fprintln(out, v)
		}
		fmt.Fprintln(out, report.Summary())
	}
	if !report.OK() {
		return fmt.Errorf("%w: %d violations", errViolations, len(report.Violations))
	}
	return nil
}

// verifyRange turns the flags into a created-at range; zero ends are open.
func verifyRange(since time.Duration, from, to string, now time.Time) (time.Time, time.Time, error) {
	var start, end time.Time
	var err error
	if since > 0 {
		start = now.Add(-since)
	}
	if from != "" {
		if start, err = time.Parse(time.RFC3339, from); err != nil {
			return start, end, fmt.Errorf("--from: want an RFC 3339 time like 2026-11-26T00:00:00Z: %w", err)
		}
	}
	if to != "" {
		if end, err = time.Parse(time.RFC3339, to); err != nil {
			return start, end, fmt.Errorf("--to: want an RFC 3339 time like 2026-11-26T00:00:00Z: %w", err)
		}
	}
	if !start.IsZero() && !end.IsZero() && !start.Before(end) {
		return start, end, errors.New("--from must be before --to")
	}
	return start, end, nil
}

// historyRetention is how long the namespace keeps closed workflows.
func historyRetention(ctx context.Context, c client.Client, ns string) (time.Duration, error) {
	resp, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: ns})
	if err != nil {
		return 0, fmt.Errorf("describe namespace %s: %w", ns, err)
	}
	return resp.GetConfig().GetWorkflowExecutionRetentionTtl().AsDuration(), nil
}

// merchantList is a repeatable --merchant flag.
type merchantList []uuid.UUID

func (m *merchantList) String() string {
	ids := make([]string, len(*m))
	for i, id := range *m {
		ids[i] = id.String()
	}
	return strings.Join(ids, ",")
}

func (m *merchantList) Set(v string) error {
	id, err := uuid.Parse(v)
	if err != nil {
		return fmt.Errorf("not a merchant id: %w", err)
	}
	*m = append(*m, id)
	return nil
}

// verifyLockID is the Postgres advisory lock that lets one worker at a time
// run the scheduled check ("backflow verify" in ASCII).
const verifyLockID = 0x6266766572696679

// verifyEvery runs the check of the last day every interval in the worker
// and exports its result (backflow_invariant_violations) until ctx ends.
// Workers take turns through an advisory lock, and only refunds in progress
// are looked up on Temporal, so the check stays cheap at any scale.
func verifyEvery(ctx context.Context, deps *app.Deps, every time.Duration, m *metrics.Metrics) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		report, ran, err := verifyOnce(ctx, deps)
		if ran {
			m.InvariantCheck(report.ViolationsByRule(), err)
		}
		switch {
		case err != nil && ctx.Err() == nil:
			deps.Logger.Warn("scheduled invariant check could not run", "error", err)
		case err == nil && !report.OK():
			deps.Logger.Error("money invariants broken: run backflow verify (docs/runbook.md)", "violations", len(report.Violations),
				"summary", report.Summary())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// verifyOnce runs the scheduled check unless another worker is running it.
func verifyOnce(ctx context.Context, deps *app.Deps) (invariants.Report, bool, error) {
	conn, err := deps.Store.Pool().Acquire(ctx)
	if err != nil {
		return invariants.Report{}, false, err
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(verifyLockID)).Scan(&locked); err != nil || !locked {
		return invariants.Report{}, false, err
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(verifyLockID))
	}()
	report, err := invariants.Check(ctx, deps.Store.Pool(), invariants.Options{
		CreatedFrom: time.Now().Add(-24 * time.Hour), Temporal: deps.Temporal, Namespace: deps.Namespace,
		WorkflowGrace: time.Minute, LiveWorkflowsOnly: true,
	})
	return report, true, err
}
