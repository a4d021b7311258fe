// Command backflow runs every Backflow process: the API, the worker, the
// sandbox PSP, migrations, the demo seed and the ops CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/app"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/migrations"
	"github.com/backflow/backflow/providers/sandbox"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/worker"
)

const usage = `usage: backflow <command>

commands:
  api       serve the merchant and ops HTTP API
  worker    run the Temporal worker: refund workflows and the reconciler, and the
            webhook dispatchers (backflow worker --queues refunds,webhooks; either alone)
  sandbox   serve the sandbox PSP (cardpay, paydesk, orchestra, momo, banktransfer)
  migrate   apply database migrations
  seed      create the demo merchant, keys and sample transactions (idempotent)
  ops       inspect and steer refunds (backflow ops help)
  verify    check the money invariants, read-only (backflow verify -h)
  bench     measure the refund path against a baseline workflow (backflow bench -h)

configuration: environment variables, see README.md`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "backflow:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	switch args[0] {
	case "api":
		return runAPI(ctx, cfg)
	case "worker":
		return runWorker(ctx, cfg, args[1:])
	case "sandbox":
		return runSandbox(ctx, cfg)
	case "migrate":
		return runMigrate(ctx, cfg)
	case "seed":
		return runSeed(ctx, cfg, args[1:])
	case "ops":
		return runOps(ctx, cfg, args[1:])
	case "verify":
		return runVerify(ctx, cfg, args[1:], os.Stdout)
	case "bench":
		return runBench(ctx, cfg, args[1:])
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func runAPI(ctx context.Context, cfg config.Config) error {
	logger := app.NewLogger(cfg.LogLevel)
	m := metrics.New()
	deps, err := app.Open(ctx, cfg, logger, client.Options{MetricsHandler: m.Temporal()})
	if err != nil {
		return err
	}
	defer deps.Close()
	m.WatchStore(deps.Store, metrics.StoreScrapeTimeout, logger)
	if cfg.APIWorker {
		// A worker on the API's own client lets StartWorkflow hand the first
		// workflow task straight back (eager start), skipping matching.
		stop, err := startWorkers(ctx, cfg, deps, m, []string{config.QueueRefunds})
		if err != nil {
			return err
		}
		defer stop()
	}
	svc := refunds.New(deps.Store, deps.Providers, gateway(cfg, deps), logger,
		refunds.Hooks{Created: m.RefundCreated, Reversed: m.RefundFinished, Contradiction: m.Contradiction},
		refunds.WithWebhookURLs(webhookURLs(cfg)))
	srv := server.New(server.Deps{Service: svc, Logger: logger, Metrics: m.Handler(),
		Middleware: []echo.MiddlewareFunc{m.EchoMiddleware},
		RateLimit:  server.RateLimit{PerSecond: cfg.RateLimit, Burst: cfg.RateBurst}, RateLimited: m.RateLimited})
	logger.Info("api listening", "addr", cfg.HTTPAddr, "config", cfg)
	return serve(ctx, cfg.HTTPAddr, srv.Handler())
}

func runWorker(ctx context.Context, cfg config.Config, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	queues := fs.String("queues", strings.Join(cfg.WorkerQueues, ","),
		"task queues to run: refunds (refund workflows, reconciler), webhooks (webhook dispatchers), or both (BACKFLOW_WORKER_QUEUES)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	run, err := config.ParseQueues(*queues)
	if err != nil {
		return fmt.Errorf("--queues: %w", err)
	}
	logger := app.NewLogger(cfg.LogLevel)
	m := metrics.New()
	deps, err := app.Open(ctx, cfg, logger, client.Options{MetricsHandler: m.Temporal()})
	if err != nil {
		return err
	}
	defer deps.Close()
	m.WatchStore(deps.Store, metrics.StoreScrapeTimeout, logger)
	stop, err := startWorkers(ctx, cfg, deps, m, run)
	if err != nil {
		return err
	}
	defer stop()
	logger.Info("worker running", "queues", run, "taskQueue", cfg.TaskQueue, "webhookTaskQueue", cfg.WebhookTaskQueue,
		"namespace", deps.Namespace, "config", cfg)
	if slices.Contains(run, config.QueueRefunds) {
		go verifyEvery(ctx, deps, cfg.VerifyEvery, m)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"status":"ok"}`)) })
	mux.Handle("/metrics", m.Handler())
	return serve(ctx, cfg.WorkerHTTPAddr, mux)
}

// gateway is the refunds gateway of the configured task queues.
func gateway(cfg config.Config, deps *app.Deps) refunds.TemporalGateway {
	return refunds.TemporalGateway{Client: deps.Temporal, TaskQueue: cfg.TaskQueue, WebhookTaskQueue: cfg.WebhookTaskQueue,
		WebhookDispatchers: cfg.WebhookDispatchers}
}

// startWorkers starts a worker per queue asked for, each with its own
// options: the refunds worker (after the search attributes and the
// reconciler schedule) and the webhooks worker (then its dispatchers). The
// returned function stops them.
func startWorkers(ctx context.Context, cfg config.Config, deps *app.Deps, m *metrics.Metrics, queues []string) (func(), error) {
	policy := activities.DefaultPolicy()
	policy.StuckAfter, policy.ApprovalTimeout = cfg.StuckAfter, cfg.ApprovalTimeout
	acts := &activities.Activities{Store: worker.ActivityStore(deps.Store), Providers: deps.Providers, Policy: policy,
		Webhooks: activities.WebhookPolicy{AttemptTimeout: cfg.WebhookTimeout}, WebhookClient: webhookURLs(cfg).Client(),
		Dispatch: activities.DispatchOptions{Concurrency: cfg.WebhookConcurrency, PerEndpoint: cfg.WebhookEndpointConcurrency,
			Rate: cfg.WebhookRate, DisableAfter: cfg.WebhookDisableAfter},
		Workflows: gateway(cfg, deps), Observe: m.RefundFinished, ObserveDelivery: m.WebhookAttempted, EndpointDisabled: m.WebhookEndpointDisabled}
	var started []sdkworker.Worker
	stop := func() {
		for _, w := range started {
			w.Stop()
		}
	}
	if slices.Contains(queues, config.QueueRefunds) {
		if err := worker.EnsureSearchAttributes(ctx, deps.Temporal, deps.Namespace); err != nil {
			// Temporal Cloud manages search attributes through its control plane.
			deps.Logger.Warn("could not register search attributes; register them by hand", "error", err)
		}
		if err := worker.EnsureReconcileSchedule(ctx, deps.Temporal, cfg.TaskQueue, cfg.ReconcileEvery); err != nil {
			return nil, err
		}
		w := worker.New(deps.Temporal, cfg.TaskQueue, acts, sdkworker.Options{})
		if err := w.Start(); err != nil {
			return nil, fmt.Errorf("start refunds worker: %w", err)
		}
		started = append(started, w)
	}
	if slices.Contains(queues, config.QueueWebhooks) {
		w := worker.NewWebhooks(deps.Temporal, cfg.WebhookTaskQueue, acts, sdkworker.Options{
			MaxConcurrentActivityExecutionSize: cfg.WebhookWorkerSlots, MaxConcurrentActivityTaskPollers: cfg.WebhookWorkerPollers})
		if err := w.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start webhooks worker: %w", err)
		}
		started = append(started, w)
		if err := acts.Workflows.EnsureWebhookDispatchers(ctx); err != nil {
			stop()
			return nil, err
		}
	}
	return stop, nil
}

// webhookURLs is the webhook URL policy: https to public addresses, plus
// loopback with BACKFLOW_WEBHOOK_ALLOW_LOOPBACK (development). Its client
// keeps as many idle connections per endpoint as a dispatcher has attempts
// in flight to it, so a busy endpoint is not redialled for every delivery.
func webhookURLs(cfg config.Config) webhooks.URLPolicy {
	return webhooks.URLPolicy{AllowLoopback: cfg.WebhookAllowLoopback, IdleConnsPerHost: 2 * cfg.WebhookEndpointConcurrency}
}

func runSandbox(ctx context.Context, cfg config.Config) error {
	logger := app.NewLogger(cfg.LogLevel)
	psp := sandbox.New(sandbox.Options{CallbackURL: cfg.PublicURL, Logger: logger})
	defer psp.Close()
	logger.Info("sandbox PSP listening", "addr", cfg.SandboxAddr, "callbacks", cfg.PublicURL)
	return serve(ctx, cfg.SandboxAddr, psp)
}

func runMigrate(ctx context.Context, cfg config.Config) error {
	pool, err := store.Connect(ctx, cfg.DatabaseURL, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool); err != nil {
		return err
	}
	fmt.Println("migrations applied")
	return nil
}

// serve runs an HTTP server until ctx ends, then shuts it down gracefully.
// Its timeouts and header limit are the API's (server.DefaultLimits).
func serve(ctx context.Context, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h}
	server.DefaultLimits().Apply(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
