// Package config reads Backflow's configuration from environment variables.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultTaskQueue is the task queue workers poll unless configured otherwise.
const DefaultTaskQueue = "backflow-refunds"

// WebhookTaskQueueFor is the webhooks task queue beside a refunds task
// queue, unless BACKFLOW_WEBHOOK_TASK_QUEUE says otherwise.
func WebhookTaskQueueFor(taskQueue string) string { return taskQueue + "-webhooks" }

// The task queues a worker process can run (BACKFLOW_WORKER_QUEUES,
// backflow worker --queues): refunds (refund workflows, the reconciler)
// and webhooks (the webhook dispatchers).
const (
	QueueRefunds  = "refunds"
	QueueWebhooks = "webhooks"
)

// Config is the whole configuration of every Backflow process. Temporal
// connection settings are not here: they follow the SDK's own env conventions
// (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*),
// read by go.temporal.io/sdk/contrib/envconfig.
type Config struct {
	DatabaseURL     string        // DATABASE_URL
	DBMaxConns      int32         // BACKFLOW_DB_MAX_CONNS
	HTTPAddr        string        // BACKFLOW_HTTP_ADDR: API listen address
	APIWorker       bool          // BACKFLOW_API_WORKER: the API process also runs a worker, so refunds start eagerly
	WorkerHTTPAddr  string        // BACKFLOW_WORKER_HTTP_ADDR: worker /metrics and health
	PublicURL       string        // BACKFLOW_PUBLIC_URL: where providers send callbacks, <PublicURL>/v1/provider-callbacks/<name>
	TaskQueue       string        // BACKFLOW_TASK_QUEUE
	SandboxAddr     string        // BACKFLOW_SANDBOX_ADDR: sandbox PSP listen address
	SandboxURL      string        // BACKFLOW_SANDBOX_URL: sandbox base URL the connectors use
	ProvidersJSON   string        // BACKFLOW_PROVIDERS: JSON provider list, replacing the sandbox providers
	ProvidersFile   string        // BACKFLOW_PROVIDERS_FILE: same, from a file; wins over BACKFLOW_PROVIDERS
	StripeURL       string        // BACKFLOW_STRIPE_URL: enables the stripe provider
	StripeAPIKey    string        // BACKFLOW_STRIPE_API_KEY
	StuckAfter      time.Duration // BACKFLOW_STUCK_AFTER: SLA after which a PROCESSING refund is flagged stuck
	ApprovalTimeout time.Duration // BACKFLOW_APPROVAL_TIMEOUT: an approval wait ends as CANCELED approval.expired
	ProviderTimeout time.Duration // BACKFLOW_PROVIDER_TIMEOUT: HTTP timeout of one provider call
	ReconcileEvery  time.Duration // BACKFLOW_RECONCILE_EVERY: reconciler schedule interval
	VerifyEvery     time.Duration // BACKFLOW_VERIFY_EVERY: the worker checks the last day's money invariants this often
	LogLevel        slog.Level    // BACKFLOW_LOG_LEVEL
	// RateLimit is each API key's requests a second (0: no limit) and
	// RateBurst its burst: BACKFLOW_RATE_LIMIT, "100:200" by default.
	RateLimit float64
	RateBurst int
	// WebhookAllowLoopback lets webhook endpoints be loopback addresses, and
	// plain http to them (development and tests only).
	WebhookAllowLoopback bool // BACKFLOW_WEBHOOK_ALLOW_LOOPBACK

	// The worker's queues and webhook delivery (docs/webhooks.md, "Running the dispatchers").
	WorkerQueues     []string // BACKFLOW_WORKER_QUEUES: refunds,webhooks (both) by default
	WebhookTaskQueue string   // BACKFLOW_WEBHOOK_TASK_QUEUE: default <BACKFLOW_TASK_QUEUE>-webhooks
	// WebhookDispatchers is how many dispatcher workflows share the outbox.
	WebhookDispatchers int // BACKFLOW_WEBHOOK_DISPATCHERS
	// WebhookWorkerSlots and WebhookWorkerPollers are the webhooks worker's
	// activity slots (dispatchers one process runs at once) and pollers.
	WebhookWorkerSlots         int           // BACKFLOW_WEBHOOK_WORKER_SLOTS
	WebhookWorkerPollers       int           // BACKFLOW_WEBHOOK_WORKER_POLLERS
	WebhookConcurrency         int           // BACKFLOW_WEBHOOK_CONCURRENCY: attempts in flight per dispatcher
	WebhookEndpointConcurrency int           // BACKFLOW_WEBHOOK_ENDPOINT_CONCURRENCY: attempts in flight per endpoint and dispatcher
	WebhookRate                float64       // BACKFLOW_WEBHOOK_RATE: attempts per second per dispatcher, 0 unlimited
	WebhookTimeout             time.Duration // BACKFLOW_WEBHOOK_TIMEOUT: HTTP timeout of one attempt (at most 60s)
	WebhookDisableAfter        time.Duration // BACKFLOW_WEBHOOK_DISABLE_AFTER: an endpoint failing this long is disabled

	// Stripe's webhooks: the signing secret (whsec_...) of the endpoint
	// registered at Stripe, or polling only (outcomes from status checks).
	StripeCallbackSecret string // BACKFLOW_STRIPE_CALLBACK_SECRET
	StripePollingOnly    bool   // BACKFLOW_STRIPE_POLLING_ONLY
}

// Load reads the configuration from the environment, applying defaults.
func Load() (Config, error) {
	c := Config{
		DatabaseURL:    env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/backflow?sslmode=disable"),
		HTTPAddr:       env("BACKFLOW_HTTP_ADDR", ":8080"),
		WorkerHTTPAddr: env("BACKFLOW_WORKER_HTTP_ADDR", ":9091"),
		PublicURL:      env("BACKFLOW_PUBLIC_URL", "http://127.0.0.1:8080"),
		TaskQueue:      env("BACKFLOW_TASK_QUEUE", DefaultTaskQueue),
		SandboxAddr:    env("BACKFLOW_SANDBOX_ADDR", ":8090"),
		SandboxURL:     env("BACKFLOW_SANDBOX_URL", "http://127.0.0.1:8090"),
		ProvidersJSON:  os.Getenv("BACKFLOW_PROVIDERS"),
		ProvidersFile:  os.Getenv("BACKFLOW_PROVIDERS_FILE"),
		StripeURL:      os.Getenv("BACKFLOW_STRIPE_URL"),
		StripeAPIKey:   os.Getenv("BACKFLOW_STRIPE_API_KEY"),

		StripeCallbackSecret: os.Getenv("BACKFLOW_STRIPE_CALLBACK_SECRET"),
	}
	var errs []error
	c.PublicURL = publicURL(c.PublicURL, &errs)
	c.StripePollingOnly = boolEnv("BACKFLOW_STRIPE_POLLING_ONLY", false, &errs)
	c.DBMaxConns = int32(intEnv("BACKFLOW_DB_MAX_CONNS", 20, &errs))
	c.APIWorker = boolEnv("BACKFLOW_API_WORKER", false, &errs)
	c.WebhookAllowLoopback = boolEnv("BACKFLOW_WEBHOOK_ALLOW_LOOPBACK", false, &errs)
	c.RateLimit, c.RateBurst = rateEnv("BACKFLOW_RATE_LIMIT", &errs)
	c.StuckAfter = durationEnv("BACKFLOW_STUCK_AFTER", 15*time.Minute, &errs)
	c.ApprovalTimeout = durationEnv("BACKFLOW_APPROVAL_TIMEOUT", 168*time.Hour, &errs)
	c.ProviderTimeout = durationEnv("BACKFLOW_PROVIDER_TIMEOUT", 10*time.Second, &errs)
	c.ReconcileEvery = durationEnv("BACKFLOW_RECONCILE_EVERY", time.Minute, &errs)
	c.VerifyEvery = durationEnv("BACKFLOW_VERIFY_EVERY", 15*time.Minute, &errs)
	c.WorkerQueues = queuesEnv("BACKFLOW_WORKER_QUEUES", &errs)
	c.WebhookTaskQueue = env("BACKFLOW_WEBHOOK_TASK_QUEUE", WebhookTaskQueueFor(c.TaskQueue))
	if c.WebhookTaskQueue == c.TaskQueue {
		errs = append(errs, fmt.Errorf("BACKFLOW_WEBHOOK_TASK_QUEUE: must differ from BACKFLOW_TASK_QUEUE, so refunds never wait behind deliveries"))
	}
	c.WebhookDispatchers = intEnv("BACKFLOW_WEBHOOK_DISPATCHERS", 1, &errs)
	c.WebhookWorkerSlots = intEnv("BACKFLOW_WEBHOOK_WORKER_SLOTS", 2, &errs)
	c.WebhookWorkerPollers = intEnv("BACKFLOW_WEBHOOK_WORKER_POLLERS", 2, &errs)
	c.WebhookConcurrency = intEnv("BACKFLOW_WEBHOOK_CONCURRENCY", 32, &errs)
	c.WebhookEndpointConcurrency = intEnv("BACKFLOW_WEBHOOK_ENDPOINT_CONCURRENCY", 4, &errs)
	c.WebhookRate = floatEnv("BACKFLOW_WEBHOOK_RATE", 0, &errs)
	c.WebhookTimeout = durationEnv("BACKFLOW_WEBHOOK_TIMEOUT", 10*time.Second, &errs)
	if c.WebhookTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("BACKFLOW_WEBHOOK_TIMEOUT: at most 60s, so a slow endpoint holds a slot no longer; got %s", c.WebhookTimeout))
	}
	c.WebhookDisableAfter = durationEnv("BACKFLOW_WEBHOOK_DISABLE_AFTER", 72*time.Hour, &errs)
	if err := c.LogLevel.UnmarshalText([]byte(env("BACKFLOW_LOG_LEVEL", "INFO"))); err != nil {
		errs = append(errs, fmt.Errorf("BACKFLOW_LOG_LEVEL: %w", err))
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("read config: %v", errs)
	}
	return c, nil
}

// LogValue masks secrets when the config is logged.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("databaseURL", maskURL(c.DatabaseURL)),
		slog.String("httpAddr", c.HTTPAddr),
		slog.Bool("apiWorker", c.APIWorker),
		slog.String("workerHTTPAddr", c.WorkerHTTPAddr),
		slog.String("publicURL", c.PublicURL),
		slog.String("taskQueue", c.TaskQueue),
		slog.String("sandboxURL", c.SandboxURL),
		slog.Bool("stripe", c.StripeURL != ""),
		slog.Bool("stripeCallbackSecret", c.StripeCallbackSecret != ""),
		slog.Bool("stripePollingOnly", c.StripePollingOnly),
		slog.Duration("stuckAfter", c.StuckAfter),
		slog.Duration("approvalTimeout", c.ApprovalTimeout),
		slog.Duration("providerTimeout", c.ProviderTimeout),
		slog.Duration("reconcileEvery", c.ReconcileEvery),
		slog.Duration("verifyEvery", c.VerifyEvery),
		slog.Bool("webhookAllowLoopback", c.WebhookAllowLoopback),
		slog.Float64("rateLimit", c.RateLimit),
		slog.Int("rateBurst", c.RateBurst),
		slog.Any("workerQueues", c.WorkerQueues),
		slog.String("webhookTaskQueue", c.WebhookTaskQueue),
		slog.Int("webhookDispatchers", c.WebhookDispatchers),
		slog.Int("webhookConcurrency", c.WebhookConcurrency),
		slog.Int("webhookEndpointConcurrency", c.WebhookEndpointConcurrency),
		slog.Float64("webhookRate", c.WebhookRate),
		slog.Duration("webhookTimeout", c.WebhookTimeout),
		slog.Duration("webhookDisableAfter", c.WebhookDisableAfter),
	)
}

// publicURL checks BACKFLOW_PUBLIC_URL, the base of the callback URLs
// registered at providers: an absolute http(s) URL, kept without a trailing slash.
func publicURL(raw string, errs *[]error) string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		*errs = append(*errs, fmt.Errorf("BACKFLOW_PUBLIC_URL: want an absolute http(s) URL such as https://refunds.example.com, got %q", raw))
		return raw
	}
	return strings.TrimRight(raw, "/")
}

func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "invalid"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func intEnv(key string, def int, errs *[]error) int {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		*errs = append(*errs, fmt.Errorf("%s: want a positive integer, got %q", key, v))
		return def
	}
	return n
}

// ParseQueues reads a comma-separated list of worker queues (refunds,
// webhooks): at least one, each known.
func ParseQueues(v string) ([]string, error) {
	var out []string
	for _, q := range strings.Split(v, ",") {
		q = strings.TrimSpace(q)
		switch {
		case q == "":
		case q != QueueRefunds && q != QueueWebhooks:
			return nil, fmt.Errorf("unknown queue %q: want %s and/or %s", q, QueueRefunds, QueueWebhooks)
		case !slices.Contains(out, q):
			out = append(out, q)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no queue: want %s and/or %s", QueueRefunds, QueueWebhooks)
	}
	return out, nil
}

func queuesEnv(key string, errs *[]error) []string {
	q, err := ParseQueues(env(key, QueueRefunds+","+QueueWebhooks))
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: %w", key, err))
		return []string{QueueRefunds, QueueWebhooks}
	}
	return q
}

func floatEnv(key string, def float64, errs *[]error) float64 {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		*errs = append(*errs, fmt.Errorf("%s: want a number ≥ 0, got %q", key, v))
		return def
	}
	return f
}

func boolEnv(key string, def bool, errs *[]error) bool {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		*errs = append(*errs, fmt.Errorf("%s: want true or false, got %q", key, v))
		return def
	}
	return b
}

func durationEnv(key string, def time.Duration, errs *[]error) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		*errs = append(*errs, fmt.Errorf("%s: want a positive duration like 30s, got %q", key, v))
		return def
	}
	return d
}

// rateEnv reads a per-key rate limit: "RATE" (requests a second; the burst
// is twice that), "RATE:BURST", or "0"/"off" for none. Unset: 100:200.
func rateEnv(key string, errs *[]error) (float64, int) {
	v := strings.TrimSpace(os.Getenv(key))
	switch strings.ToLower(v) {
	case "":
		return 100, 200
	case "0", "off":
		return 0, 0
	}
	rateText, burstText, hasBurst := strings.Cut(v, ":")
	r, err := strconv.ParseFloat(strings.TrimSuffix(rateText, "/s"), 64)
	burst := int(math.Ceil(2 * r))
	if hasBurst && err == nil {
		burst, err = strconv.Atoi(burstText)
	}
	if err != nil || r <= 0 || math.IsInf(r, 0) || burst < 1 {
		*errs = append(*errs, fmt.Errorf("%s: want requests a second per API key and an optional burst, like 100 or 100:200 (0 or off: no limit), got %q", key, v))
		return 100, 200
	}
	return r, burst
}
