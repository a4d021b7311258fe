// Package app builds the dependencies every Backflow process shares from
// configuration: the Postgres pool, the Temporal client and the providers.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"

	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/store"
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

// Open connects to Postgres and Temporal and builds the provider registry.
// It fails with a clear message when either is unreachable.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, opts client.Options) (*Deps, error) {
	pool, err := store.Connect(ctx, cfg.DatabaseURL, cfg.DBMaxConns)
	if err != nil {
		return nil, fmt.Errorf("postgres unreachable (check DATABASE_URL): %w", err)
	}
	tc, ns, err := DialTemporal(ctx, logger, opts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	reg, err := Providers(cfg)
	if err != nil {
		pool.Close()
		tc.Close()
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
	envOpts.Logger = log.NewStructuredLogger(logger)
	if envOpts.Namespace == "" {
		envOpts.Namespace = client.DefaultNamespace
	}
	c, err := client.DialContext(ctx, envOpts)
	if err != nil {
		return nil, "", fmt.Errorf("temporal unreachable at %q (set TEMPORAL_ADDRESS): %w", envOpts.HostPort, err)
	}
	return c, envOpts.Namespace, nil
}

// Providers builds the provider registry: BACKFLOW_PROVIDERS(_FILE) when set,
// otherwise every sandbox provider, plus stripe when BACKFLOW_STRIPE_URL is set.
func Providers(cfg config.Config) (*providers.Registry, error) {
	text := cfg.ProvidersJSON
	if cfg.ProvidersFile != "" {
		b, err := os.ReadFile(cfg.ProvidersFile)
		if err != nil {
			return nil, fmt.Errorf("read providers file: %w", err)
		}
		text = string(b)
	}
	var cfgs []providers.Config
	if text != "" {
		var err error
		if cfgs, err = providers.ParseConfigs(text); err != nil {
			return nil, fmt.Errorf("parse providers: %w", err)
		}
	} else {
		cfgs = providers.SandboxConfigs(cfg.SandboxURL)
	}
	if cfg.StripeURL != "" {
		cfgs = append(cfgs, providers.Config{Name: "stripe", Type: "stripe", BaseURL: cfg.StripeURL, APIKey: cfg.StripeAPIKey})
	}
	return providers.NewRegistry(cfgs, &http.Client{Timeout: cfg.ProviderTimeout})
}
