// Package bench is Backflow's benchmark: it drives refunds through the API
// of a running stack and, on the same Temporal server, a baseline workflow of
// four no-op regular activities, then reports throughput, latency, history,
// SQL, CPU and memory side by side (`backflow bench`, `make bench`).
package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

// Config is one bench run.
type Config struct {
	APIURLs     []string // one per API process; requests go round-robin
	APIKey      string
	DatabaseURL string
	Temporal    client.Client

	Refunds     int     // refunds in the measured phase, and baseline workflows
	Concurrency int     // closed-loop clients
	Rate        float64 // > 0: open loop at this rate instead
	Warmup      int     // unmeasured items before each phase
	// HalfRate is how long the third phase runs refunds open-loop at half the
	// throughput phase (a) reached, to read the accept latency below saturation.
	HalfRate time.Duration
	Baseline bool
	Samples  int // histories read per workflow kind

	// Endpoints and DeadEndpoints, when set, give the merchant webhook
	// endpoints for phase (a): loopback receivers answering 204, and
	// loopback ports that refuse connections. Phase (a0) runs the same
	// refunds before they exist, for the ratio.
	Endpoints     int
	DeadEndpoints int

	Provider        string
	Currency        string
	TxAmount        int64 // captured amount of each transaction
	Amount          int64 // refund amount; ends in 00 so the sandbox succeeds at once
	IdempotencyKeys bool
	Label           string // what is measured (e.g. the git commit), for the report

	BaselineTaskQueue string
	// BaselineWorker starts the baseline worker: its process id (0 when it
	// runs in this process) and how to stop it.
	BaselineWorker func(ctx context.Context) (pid int, stop func(), err error)

	// TemporalMetricsURL is the Temporal server's Prometheus endpoint, for
	// its persistence operations per workflow (optional).
	TemporalMetricsURL string

	Procs    []Proc // processes to watch (api, worker, temporal, postgres, sandbox)
	Progress io.Writer
}

// Run runs the benchmark and returns its report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Amount%100 != 0 {
		return nil, errors.New("bench: the refund amount must end in 00 (sandbox: immediate success)")
	}
	if cfg.Warmup < 0 {
		cfg.Warmup = 0
	}
	say := func(format string, args ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "==> "+format+"\n", args...)
		}
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	api := newAPIClient(cfg.APIURLs, cfg.APIKey, max(cfg.Concurrency, 16))
	tag := time.Now().UTC().Format("20060102T150405")
	rep := &Report{Machine: machine(), Config: reportConfig(cfg), StartedAt: time.Now().UTC()}
	procs := append(slices.Clone(cfg.Procs), Proc{Name: "bench", PID: os.Getpid()})

	var baselinePID int
	if cfg.Baseline && cfg.BaselineWorker != nil {
		pid, stop, err := cfg.BaselineWorker(ctx)
		if err != nil {
			return nil, fmt.Errorf("start the baseline worker: %w", err)
		}
		defer stop()
		baselinePID = pid
		if pid != 0 {
			procs = append(procs, Proc{Name: "baseline-worker", PID: pid})
		}
	}

	// How busy the machine is before any load: on a shared machine, other
	// work skews every figure.
	m0, t0 := machineBusySeconds(), time.Now()
	time.Sleep(2 * time.Second)
	rep.IdleBusyPercent = round((machineBusySeconds()-m0)*100/(time.Since(t0).Seconds()*float64(rep.Machine.CPUs)), 1)
	say("machine busy before the run: %.0f%% of %d CPUs", rep.IdleBusyPercent, rep.Machine.CPUs)

	// (a) Backflow: refunds through the API.
	hooks := cfg.Endpoints+cfg.DeadEndpoints > 0
	perPhase := cfg.Refunds
	if hooks {
		perPhase = 2 * cfg.Refunds // (a0) without endpoints, then (a)
	}
	say("creating %d captured transactions through the API", cfg.Warmup+perPhase)
	txs, err := api.createTransactions(ctx, cfg.Warmup+perPhase, 16, cfg.Provider, cfg.Currency, cfg.TxAmount, tag+"a")
	if err != nil {
		return nil, err
	}
	refundIDs := make([]uuid.UUID, len(txs))
	refundPhase := func(name string, offset, n int, conc int, rate float64) PhaseResult {
		return Phase{Name: name, Total: n, Concurrency: conc, Rate: rate, MaxInFlight: max(conc, 256), Progress: cfg.Progress,
			Do: func(ctx context.Context, i int) Item {
				j := offset + i
				key := ""
				if cfg.IdempotencyKeys {
					key = fmt.Sprintf("bench-%s-%s-%d", tag, name, j)
				}
				it := Item{Start: time.Now()}
				ans, err := api.createRefund(ctx, txs[j], cfg.Amount, cfg.Currency, key, fmt.Sprintf("bench-%d", j))
				it.Accept = time.Since(it.Start)
				if err != nil {
					it.Err = err
					return it
				}
				refundIDs[j] = ans.RefundID
				var state struct {
					Status string `json:"status"`
				}
				if err := awaitWorkflow(ctx, cfg.Temporal, workflows.RefundWorkflowID(ans.RefundID), &state); err != nil {
					it.Err = fmt.Errorf("refund %s: %w", ans.RefundID, err)
					return it
				}
				it.E2E = time.Since(it.Start)
				if refund.Status(state.Status) != refund.StatusSucceeded {
					it.Err = fmt.Errorf("refund %s ended %s", ans.RefundID, state.Status)
				}
				return it
			}}.Run(ctx)
	}
	if cfg.Warmup > 0 {
		say("warm-up: %d refunds", cfg.Warmup)
		w := refundPhase("warm-up", 0, cfg.Warmup, cfg.Concurrency, 0)
		if w.Completed == 0 {
			return nil, fmt.Errorf("warm-up: no refund completed: %v", w.FirstErrors)
		}
	}
	offset := cfg.Warmup
	var recv *Receivers
	if hooks {
		a0, err := refundsWithoutEndpoints(ctx, cfg, say, pool, procs, func() PhaseResult {
			return refundPhase("no-endpoints", offset, cfg.Refunds, cfg.Concurrency, cfg.Rate)
		}, refundIDs[offset:offset+cfg.Refunds])
		if err != nil {
			return nil, err
		}
		rep.NoEndpoints = a0
		offset += cfg.Refunds
		if recv, err = StartReceivers(cfg.Endpoints, cfg.DeadEndpoints); err != nil {
			return nil, err
		}
		defer recv.Close()
		if err := api.registerEndpoints(ctx, append(slices.Clone(recv.Live), recv.Dead...)); err != nil {
			return nil, err
		}
		say("webhook endpoints: %d loopback receivers answering 204, %d loopback ports refusing connections", len(recv.Live), len(recv.Dead))
	}
	say("(a) Backflow: %d refunds, %s", cfg.Refunds, mode(cfg))
	a, err := measure(ctx, cfg.TemporalMetricsURL, pool, procs, func() PhaseResult {
		return refundPhase("backflow", offset, cfg.Refunds, cfg.Concurrency, cfg.Rate)
	})
	if err != nil {
		return nil, err
	}
	rep.Backflow = a
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if recv != nil {
		expected := 2 * a.Completed * len(recv.Live)
		say("waiting for the %d webhook deliveries of (a) to the live endpoints", expected)
		w := recv.waitDeliveries(ctx, expected, a.Started, time.Minute)
		rep.Webhooks = &w
	}
	ids := nonNil(refundIDs[offset : offset+cfg.Refunds])
	db, err := refundTimes(ctx, pool, ids)
	if err != nil {
		return nil, err
	}
	rep.Backflow.DB = &db
	rep.Backflow.Memory = memories(procs, "api", "worker")
	wfIDs := make([]string, 0, len(ids))
	for _, id := range sample(ids, cfg.Samples) {
		wfIDs = append(wfIDs, workflows.RefundWorkflowID(id))
	}
	hist, err := analyzeHistories(ctx, cfg.Temporal, wfIDs)
	if err != nil {
		return nil, err
	}
	rep.Backflow.History = &hist

	// (b) the baseline: four no-op regular activities, same server, same load.
	if cfg.Baseline {
		var started []string
		baselinePhase := func(name string, n int, record bool) PhaseResult {
			ids := make([]string, n)
			r := Phase{Name: name, Total: n, Concurrency: cfg.Concurrency, Rate: cfg.Rate, MaxInFlight: max(cfg.Concurrency, 256),
				Progress: cfg.Progress, Do: func(ctx context.Context, i int) Item {
					id := fmt.Sprintf("bench-baseline-%s-%s-%d", tag, name, i)
					it := Item{Start: time.Now()}
					_, err := cfg.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: cfg.BaselineTaskQueue},
						BaselineWorkflowName)
					it.Accept = time.Since(it.Start)
					if err != nil {
						it.Err = err
						return it
					}
					ids[i] = id
					// Waited for by id alone, as a refund is: both phases pay the same.
					if err := awaitWorkflow(ctx, cfg.Temporal, id, nil); err != nil {
						it.Err = fmt.Errorf("%s: %w", id, err)
						return it
					}
					it.E2E = time.Since(it.Start)
					return it
				}}.Run(ctx)
			if record {
				for _, id := range ids {
					if id != "" {
						started = append(started, id)
					}
				}
			}
			return r
		}
		if cfg.Warmup > 0 {
			say("warm-up: %d baseline workflows", cfg.Warmup)
			baselinePhase("warm-up", cfg.Warmup, false)
		}
		say("(b) baseline (%d no-op regular activities): %d workflows, %s", BaselineActivities, cfg.Refunds, mode(cfg))
		b, err := measure(ctx, cfg.TemporalMetricsURL, nil, procs, func() PhaseResult { return baselinePhase("baseline", cfg.Refunds, true) })
		if err != nil {
			return nil, err
		}
		rep.Baseline = &b
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		if baselinePID != 0 {
			rep.Baseline.Memory = memories(procs, "baseline-worker")
		}
		hist, err := analyzeHistories(ctx, cfg.Temporal, sample(started, cfg.Samples))
		if err != nil {
			return nil, err
		}
		rep.Baseline.History = &hist
	}

	// (c) Backflow below saturation: accept latency at half the max rate.
	if cfg.HalfRate > 0 && rep.Backflow.Throughput > 0 {
		rate := rep.Backflow.Throughput / 2
		n := int(math.Ceil(rate * cfg.HalfRate.Seconds()))
		say("creating %d captured transactions for the half-rate phase", n)
		more, err := api.createTransactions(ctx, n, 16, cfg.Provider, cfg.Currency, cfg.TxAmount, tag+"c")
		if err != nil {
			return nil, err
		}
		offset := len(txs)
		txs = append(txs, more...)
		refundIDs = append(refundIDs, make([]uuid.UUID, n)...)
		say("(c) Backflow at half its max rate: %d refunds at %.1f/s", n, rate)
		c, err := measure(ctx, cfg.TemporalMetricsURL, nil, procs, func() PhaseResult { return refundPhase("half-rate", offset, n, cfg.Concurrency, rate) })
		if err != nil {
			return nil, err
		}
		if ctx.Err() == nil {
			ids := nonNil(refundIDs[offset:])
			db, err := refundTimes(ctx, pool, ids)
			if err != nil {
				return nil, err
			}
			c.DB = &db
			wfIDs := make([]string, 0, cfg.Samples)
			for _, id := range sample(ids, cfg.Samples) {
				wfIDs = append(wfIDs, workflows.RefundWorkflowID(id))
			}
			hist, err := analyzeHistories(ctx, cfg.Temporal, wfIDs)
			if err != nil {
				return nil, err
			}
			c.History = &hist
		}
		rep.HalfRate = &c
	}
	if mem := memories(procs); len(mem) > 0 {
		rep.Memory = mem
	}
	rep.finish()
	return rep, ctx.Err()
}

// awaitWorkflow waits for the workflow to complete and decodes its result. A
// workflow not started yet (an API that starts it after answering) is waited for.
func awaitWorkflow(ctx context.Context, c client.Client, id string, result any) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := c.GetWorkflow(ctx, id, "").Get(ctx, result)
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// measure runs one phase between snapshots of CPU time and, when set, the
// database's statistics and the Temporal server's persistence metrics.
func measure(ctx context.Context, metricsURL string, pool *pgxpool.Pool, procs []Proc, run func() PhaseResult) (PhaseReport, error) {
	var before pgSnapshot
	var ops0 map[string]opStat
	var err error
	if pool != nil {
		time.Sleep(pgStatsFlush) // let the set-up's counters land before the first reading
		if before, err = snapshotPG(ctx, pool); err != nil {
			return PhaseReport{}, err
		}
	}
	if metricsURL != "" {
		if ops0, err = snapshotPersistence(ctx, metricsURL); err != nil {
			return PhaseReport{}, err
		}
	}
	cpu0, t0 := cpuSeconds(procs), time.Now()
	r := run()
	cpu1, elapsed := cpuSeconds(procs), time.Since(t0)
	out := PhaseReport{PhaseResult: r, CPU: cpuReport(cpu0, cpu1, elapsed, r.Completed)}
	if ctx.Err() != nil {
		return out, nil
	}
	if metricsURL != "" {
		ops1, err := snapshotPersistence(ctx, metricsURL)
		if err != nil {
			return out, err
		}
		p := diffPersistence(ops0, ops1, r.Completed)
		out.Persistence = &p
	}
	if pool != nil {
		time.Sleep(pgStatsFlush)
		after, err := snapshotPG(ctx, pool)
		if err != nil {
			return out, err
		}
		sql := diffPG(before, after, r.Completed)
		out.SQL = &sql
	}
	return out, nil
}

func mode(cfg Config) string {
	if cfg.Rate > 0 {
		return fmt.Sprintf("open loop at %.1f/s", cfg.Rate)
	}
	return fmt.Sprintf("concurrency %d", cfg.Concurrency)
}

func nonNil(ids []uuid.UUID) []uuid.UUID {
	out := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if id != uuid.Nil {
			out = append(out, id)
		}
	}
	return out
}

// sample picks up to n items spread evenly over s.
func sample[T any](s []T, n int) []T {
	if n <= 0 || len(s) == 0 {
		return nil
	}
	if len(s) <= n {
		return s
	}
	out := make([]T, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, s[i*len(s)/n])
	}
	return out
}

func memories(procs []Proc, names ...string) map[string]Memory {
	out := map[string]Memory{}
	for _, p := range procs {
		if len(names) > 0 && !slices.Contains(names, p.Name) {
			continue
		}
		if m, ok := readMemory(p.PID); ok {
			sum := out[p.Name] // several processes of one name (two APIs) add up
			out[p.Name] = Memory{RSS: round(sum.RSS+m.RSS, 1), HWM: round(sum.HWM+m.HWM, 1)}
		}
	}
	return out
}

// StartWorkerProcess runs `exe args...` (the baseline worker) and waits for
// it to print "ready". Stopping it sends SIGTERM and waits.
func StartWorkerProcess(ctx context.Context, exe string, args []string, stderr io.Writer) (int, func(), error) {
	cmd := exec.Command(exe, args...)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- errors.New("the baseline worker exited before it was ready")
	}()
	select {
	case err := <-ready:
		if err != nil {
			stop()
			return 0, nil, err
		}
	case <-time.After(30 * time.Second):
		stop()
		return 0, nil, errors.New("the baseline worker was not ready within 30 s")
	case <-ctx.Done():
		stop()
		return 0, nil, ctx.Err()
	}
	return cmd.Process.Pid, stop, nil
}

// refundsWithoutEndpoints is phase (a0): the refunds of phase (a) for the
// merchant before it has webhook endpoints, measured the same way, for the
// ratio of (a) to it.
func refundsWithoutEndpoints(ctx context.Context, cfg Config, say func(string, ...any), pool *pgxpool.Pool, procs []Proc,
	run func() PhaseResult, ids []uuid.UUID) (*PhaseReport, error) {
	say("(a0) Backflow, merchant without webhook endpoints: %d refunds, %s", cfg.Refunds, mode(cfg))
	a0, err := measure(ctx, cfg.TemporalMetricsURL, pool, procs, run)
	if err != nil || ctx.Err() != nil {
		return nil, errors.Join(err, ctx.Err())
	}
	wfIDs := make([]string, 0, cfg.Samples)
	for _, id := range sample(nonNil(ids), cfg.Samples) {
		wfIDs = append(wfIDs, workflows.RefundWorkflowID(id))
	}
	hist, err := analyzeHistories(ctx, cfg.Temporal, wfIDs)
	if err != nil {
		return nil, err
	}
	a0.History = &hist
	return &a0, nil
}
