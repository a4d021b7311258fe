package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/app"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/internal/bench"
)

const benchUsage = `usage: backflow bench [flags]

Measures the refund path of a running stack (API, worker, sandbox PSP,
Postgres, Temporal) against a baseline workflow of four no-op regular
activities on the same Temporal server. make bench (scripts/bench.sh) brings
up a private stack and runs it; see docs/benchmarks.md.

The API is BACKFLOW_URL (or --api-url), the merchant key BACKFLOW_API_KEY
(or --api-key); Postgres is DATABASE_URL and Temporal TEMPORAL_ADDRESS.

flags:`

// runBench measures the refund path.
func runBench(ctx context.Context, cfg config.Config, args []string) error {
	if len(args) > 0 && args[0] == "baseline-worker" {
		return runBaselineWorker(ctx, args[1:])
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), benchUsage)
		fs.PrintDefaults()
	}
	n := fs.Int("n", 1000, "refunds in the measured phase (and baseline workflows)")
	conc := fs.Int("c", 32, "concurrency: closed-loop clients, each waiting for its workflow to complete")
	rate := fs.Float64("rate", 0, "open loop at this many per second instead of closed loop (0: closed loop)")
	warmup := fs.Int("warmup", -1, "unmeasured items before each phase (default 2 × concurrency)")
	halfRate := fs.Duration("half-rate", 20*time.Second, "duration of the phase at half the max rate, for the accept latency (0: skip)")
	baseline := fs.Bool("baseline", true, "run the baseline workflow phase")
	samples := fs.Int("samples", 20, "workflow histories read per phase")
	apiURL := fs.String("api-url", benchEnvOr("BACKFLOW_URL", cfg.PublicURL), "Backflow API base URL; several API processes comma-separated (requests go round-robin)")
	apiKey := fs.String("api-key", os.Getenv("BACKFLOW_API_KEY"), "merchant API key (scopes refunds:write, transactions:write)")
	endpoints := fs.Int("endpoints", 0, "webhook endpoints of the merchant in phase (a): loopback receivers the bench starts, answering 204; (a0) runs the refunds before they exist")
	deadEndpoints := fs.Int("dead-endpoints", 0, "more webhook endpoints in phase (a): loopback ports that refuse connections")
	provider := fs.String("provider", "cardpay", "provider of the captured transactions")
	currency := fs.String("currency", "EUR", "currency")
	amount := fs.Int64("amount", 1000, "refund amount in minor units; must end in 00 (sandbox: immediate success)")
	idem := fs.Bool("idempotency-key", true, "send an Idempotency-Key with every refund, as merchants should")
	jsonOut := fs.String("json", "", "write the JSON report to this file (- for stdout, then no text)")
	label := fs.String("label", "", "what is measured, recorded in the report (e.g. the git commit)")
	inProcess := fs.Bool("baseline-in-process", false, "run the baseline worker inside the bench process instead of its own process")
	temporalMetrics := fs.String("temporal-metrics", "", "the Temporal server's Prometheus URL, for its persistence operations per workflow (dev server: --metrics-port)")
	var procs benchProcFlags
	fs.Var(&procs, "pid", "name=pid of a process to measure (CPU, memory); repeat: api, worker, temporal, postgres, sandbox")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *apiKey == "" {
		return errors.New("bench: set --api-key or BACKFLOW_API_KEY")
	}
	if *n < 1 || *conc < 1 {
		return errors.New("bench: -n and -c must be positive")
	}
	urls := apiURLs(*apiURL)
	if len(urls) == 0 {
		return errors.New("bench: set --api-url or BACKFLOW_URL")
	}
	if *endpoints < 0 || *deadEndpoints < 0 || *endpoints+*deadEndpoints > 16 {
		return errors.New("bench: -endpoints and -dead-endpoints are at least 0, and at most 16 together (a merchant's limit)")
	}
	if *warmup < 0 {
		*warmup = 2 * *conc
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tc, _, err := app.DialTemporal(ctx, logger, client.Options{})
	if err != nil {
		return err
	}
	defer tc.Close()

	progress := io.Writer(os.Stderr)
	bc := bench.Config{
		APIURLs: urls, APIKey: *apiKey, DatabaseURL: cfg.DatabaseURL, Temporal: tc,
		Refunds: *n, Concurrency: *conc, Rate: *rate, Warmup: *warmup, HalfRate: *halfRate, Baseline: *baseline,
		Samples: *samples, Endpoints: *endpoints, DeadEndpoints: *deadEndpoints, Provider: *provider, Currency: *currency, TxAmount: 10 * *amount, Amount: *amount,
		IdempotencyKeys: *idem, Label: *label, BaselineTaskQueue: bench.BaselineTaskQueue, Procs: procs, Progress: progress,
		TemporalMetricsURL: *temporalMetrics,
	}
	if *inProcess {
		bc.BaselineWorker = func(context.Context) (int, func(), error) {
			w := bench.NewBaselineWorker(tc, bench.BaselineTaskQueue)
			if err := w.Start(); err != nil {
				return 0, nil, err
			}
			return 0, w.Stop, nil
		}
	} else {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		bc.BaselineWorker = func(ctx context.Context) (int, func(), error) {
			return bench.StartWorkerProcess(ctx, exe, []string{"bench", "baseline-worker", "--task-queue", bench.BaselineTaskQueue}, os.Stderr)
		}
	}
	rep, err := bench.Run(ctx, bc)
	if rep == nil {
		return err
	}
	if *jsonOut != "-" {
		rep.WriteText(os.Stdout)
	}
	if *jsonOut != "" {
		b, jerr := json.MarshalIndent(rep, "", "  ")
		if jerr != nil {
			return jerr
		}
		b = append(b, '\n')
		if *jsonOut == "-" {
			_, jerr = os.Stdout.Write(b)
		} else {
			jerr = os.WriteFile(*jsonOut, b, 0o644)
			fmt.Fprintf(os.Stderr, "JSON report: %s\n", *jsonOut)
		}
		if jerr != nil {
			return jerr
		}
	}
	return err
}

// runBaselineWorker runs the baseline workflow's worker until interrupted;
// it prints "ready" once polling.
func runBaselineWorker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench baseline-worker", flag.ContinueOnError)
	tq := fs.String("task-queue", bench.BaselineTaskQueue, "task queue")
	if err := fs.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tc, _, err := app.DialTemporal(ctx, logger, client.Options{})
	if err != nil {
		return err
	}
	defer tc.Close()
	w := bench.NewBaselineWorker(tc, *tq)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start baseline worker: %w", err)
	}
	defer w.Stop()
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// benchProcFlags collects --pid name=pid.
type benchProcFlags []bench.Proc

func (p *benchProcFlags) String() string { return fmt.Sprint(*p) }

func (p *benchProcFlags) Set(v string) error {
	name, raw, ok := strings.Cut(v, "=")
	pid, err := strconv.Atoi(raw)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want name=pid, got %q", v)
	}
	*p = append(*p, bench.Proc{Name: name, PID: pid})
	return nil
}

func benchEnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// apiURLs splits the --api-url list.
func apiURLs(list string) []string {
	var out []string
	for _, u := range strings.Split(list, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			out = append(out, u)
		}
	}
	return out
}
