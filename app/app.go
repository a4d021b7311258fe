// Package app builds the dependencies every Backflow process shares from
// configuration: the Postgres pool, the Temporal client and the providers.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"

	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/worker"
)

// Deps are the opened dependencies of a process.
type Deps struct {
	Config    config.Config
	Logger    *slog.Logger
	Store     *store.Store
	Temporal  client.Client
	Namespace string
	Providers *providers.Registry
}

// NewLogger returns the JSON logger every process uses.
func NewLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// Open builds the provider registry, then connects to Postgres and Temporal.
// It fails with a clear message when the providers are misconfigured or
// either server is unreachable.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, opts client.Options) (*Deps, error) {
	reg, err := Providers(cfg, logger)
	if err != nil {
		return nil, err
	}
	pool, err := store.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return nil, fmt.Errorf("postgres unreachable (check DATABASE_URL): %w", err)
	}
	tc, ns, err := DialTemporal(ctx, logger, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &Deps{Config: cfg, Logger: logger, Store: store.New(pool), Temporal: tc, Namespace: ns, Providers: reg}, nil
}

// Close releases the connections.
func (d *Deps) Close() {
	d.Temporal.Close()
	d.Store.Pool().Close()
}

// DialTemporal connects with the SDK's own env conventions (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*), overlaid on opts.
// It returns the client and its namespace.
func DialTemporal(ctx context.Context, logger *slog.Logger, opts client.Options) (client.Client, string, error) {
	envOpts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, "", fmt.Errorf("read temporal env config: %w", err)
	}
	if opts.HostPort != "" {
		envOpts.HostPort = opts.HostPort
	}
	if opts.Namespace != "" {
		envOpts.Namespace = opts.Namespace
	}
	envOpts.MetricsHandler = opts.MetricsHandler
	envOpts.Logger = worker.Logger(logger)
	if envOpts.Namespace == "" {
		envOpts.Namespace = client.DefaultNamespace
	}
	c, err := client.DialContext(ctx, envOpts)
	if err != nil {
		return nil, "", fmt.Errorf("temporal unreachable at %q (set TEMPORAL_ADDRESS): %w", envOpts.HostPort, err)
	}
	return c, envOpts.Namespace, nil
}

// Where the provider configuration came from.
const (
	ProvidersFromFile    = "BACKFLOW_PROVIDERS_FILE"
	ProvidersFromEnv     = "BACKFLOW_PROVIDERS"
	ProvidersFromSandbox = "sandbox"
)

// ProviderConfigs resolves the providers this process talks to: the file
// BACKFLOW_PROVIDERS_FILE when set, else the JSON in BACKFLOW_PROVIDERS, else
// every sandbox provider at BACKFLOW_SANDBOX_URL; a configured list replaces
// the sandbox providers, it does not add to them. Stripe is added when
// BACKFLOW_STRIPE_URL is set. It also returns the source.
func ProviderConfigs(cfg config.Config) ([]providers.Config, string, error) {
	source, text := ProvidersFromEnv, cfg.ProvidersJSON
	if cfg.ProvidersFile != "" {
		b, err := os.ReadFile(cfg.ProvidersFile)
		if err != nil {
			return nil, "", fmt.Errorf("read providers file: %w", err)
		}
		source, text = ProvidersFromFile, string(b)
	}
	var cfgs []providers.Config
	if strings.TrimSpace(text) != "" {
		var err error
		if cfgs, err = providers.ParseConfigs(text); err != nil {
			return nil, "", fmt.Errorf("%s: %w", source, err)
		}
	} else {
		source, cfgs = ProvidersFromSandbox, providers.SandboxConfigs(cfg.SandboxURL)
	}
	if cfg.StripeURL != "" {
		if cfg.StripeCallbackSecret == "" && !cfg.StripePollingOnly {
			return nil, "", errors.New("BACKFLOW_STRIPE_URL is set without BACKFLOW_STRIPE_CALLBACK_SECRET: " +
				"Stripe's webhooks could not be verified and would all be rejected; set it to the signing secret " +
				"(whsec_...) of the endpoint registered at Stripe, or BACKFLOW_STRIPE_POLLING_ONLY=true")
		}
		cfgs = append(cfgs, providers.Config{Name: providers.TypeStripe, Type: providers.TypeStripe, BaseURL: cfg.StripeURL,
			APIKey: cfg.StripeAPIKey, CallbackSecret: cfg.StripeCallbackSecret, PollingOnly: cfg.StripePollingOnly})
	}
	return cfgs, source, nil
}

// Providers builds the provider registry (see ProviderConfigs) and logs, per
// provider, the callback URL to register there, or that it polls only.
func Providers(cfg config.Config, logger *slog.Logger) (*providers.Registry, error) {
	cfgs, source, err := ProviderConfigs(cfg)
	if err != nil {
		return nil, err
	}
	reg, err := providers.NewRegistry(cfgs, &http.Client{Timeout: cfg.ProviderTimeout})
	if err != nil {
		return nil, err
	}
	if source == ProvidersFromFile && cfg.ProvidersJSON != "" {
		logger.Warn("BACKFLOW_PROVIDERS is ignored: BACKFLOW_PROVIDERS_FILE takes precedence", "file", cfg.ProvidersFile)
	}
	logger.Info("providers configured; the API and every worker need this same configuration",
		"source", source, "providers", reg.Names())
	for _, c := range cfgs {
		if c.PollingOnly {
			logger.Warn("provider polls only: its callbacks are rejected and outcomes come from status checks",
				"provider", c.Name, "type", c.Type)
			continue
		}
		logger.Info("register this callback URL at the provider", "provider", c.Name, "type", c.Type,
			"callbackUrl", cfg.PublicURL+providers.CallbackPath(c.Name))
	}
	return reg, nil
}
