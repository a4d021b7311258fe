// Package config reads Backflow's configuration from environment variables.
package config

import (
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultTaskQueue is the task queue workers poll unless configured otherwise.
const DefaultTaskQueue = "backflow-refunds"

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
