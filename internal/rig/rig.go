// Package rig is a whole Backflow in one process, for tests and the soak:
// the API and a worker on real Postgres and Temporal with the sandbox PSP
// over HTTP (Rig, and Stack for a test with a fresh merchant), fault
// injection between the connectors and the provider (FaultProxy), provider
// callback duplication (CallbackEcho), an API client and mixed load (Load),
// waits on refunds, and the report the reliability tests write (Row,
// Render). It is the one home of the helpers end-to-end tests share; the
// services themselves (a database, Temporal) come from internal/testenv.
//
// The fault scenarios are the tests of ./reliability; docs/reliability.md
// is rendered from one run of them.
package rig

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/config"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/sandbox"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/worker"
)

// RigOptions configure StartRig.
type RigOptions struct {
	Store     *store.Store
	Temporal  client.Client
	TaskQueue string // one per rig, so workers of different rigs never take each other's tasks
	Logger    *slog.Logger
	// Policy of the refunds the rig's worker runs; zero → FastPolicy.
	Policy activities.Policy
	// WebhookPolicy, when set, overrides webhook delivery timing.
	WebhookPolicy *activities.WebhookPolicy
	// ProviderTimeout is the connectors' HTTP timeout; default 3s.
	ProviderTimeout time.Duration
	// AsyncDelay of the sandbox's asynchronous outcomes; default 500ms.
	AsyncDelay time.Duration
	// ProviderProxy wraps the sandbox, to inject faults between the connectors and the provider.
	ProviderProxy func(http.Handler) http.Handler
	// APIProxy wraps the API handler (e.g. CallbackEcho).
	APIProxy func(http.Handler) http.Handler
	// NoWorker leaves the worker to the caller (StartWorker, or a worker process).
	NoWorker bool
	// ExtraProviders are configured next to the sandbox's (e.g. stripe on stripe-mock).
	ExtraProviders []providers.Config
	// WebhookURLs is the webhook URL policy of the API and the worker;
	// zero → TestURLPolicy(nil): loopback allowed. Whatever it is, a rig
	// never resolves a name for real (a StubResolver when none is set) nor
	// dials but loopback (webhooks.LoopbackOnly when no guard is set).
	WebhookURLs webhooks.URLPolicy
	// RateLimit is each API key's rate limit; nil → server.DefaultRateLimit().
	RateLimit *server.RateLimit
	// HTTPLimits are the API server's timeouts; zero → server.DefaultLimits().
	HTTPLimits server.Limits
}

// FastPolicy keeps refunds quick: short polls, few attempts, short SLA.
func FastPolicy() activities.Policy {
	return activities.Policy{
		StuckAfter:            5 * time.Second,
		PollInitial:           300 * time.Millisecond,
		PollMax:               time.Second,
		SubmitAttempts:        4,
		SubmitInitialInterval: 200 * time.Millisecond,
		StuckRetryEvery:       2 * time.Second,
		ApprovalTimeout:       time.Hour,
	}
}

// Rig is a whole Backflow over real HTTP: the API, the sandbox PSP and a
// worker, on the Postgres and Temporal it is given.
type Rig struct {
	Store      *store.Store
	Temporal   client.Client
	TaskQueue  string
	APIURL     string
	Sandbox    *sandbox.Server
	SandboxURL string
	Providers  *providers.Registry
	Activities *activities.Activities
	Logger     *slog.Logger

	mu        sync.Mutex
	workers   []sdkworker.Worker
	opsAPIKey string
	api       *httptest.Server
	psp       *httptest.Server
}

// StartRig starts the API, the sandbox and (unless NoWorker) a worker.
func StartRig(o RigOptions) (*Rig, error) {
	if o.Store == nil || o.Temporal == nil || o.TaskQueue == "" {
		return nil, errors.New("start rig: Store, Temporal and TaskQueue are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Policy == (activities.Policy{}) {
		o.Policy = FastPolicy()
	}
	if o.ProviderTimeout <= 0 {
		o.ProviderTimeout = 3 * time.Second
	}
	if o.AsyncDelay <= 0 {
		o.AsyncDelay = 500 * time.Millisecond
	}
	if u := o.WebhookURLs; u.Resolver == nil && u.DialGuard == nil && !u.AllowLoopback {
		o.WebhookURLs = TestURLPolicy(nil)
	}
	if o.WebhookURLs.Resolver == nil {
		o.WebhookURLs.Resolver = NewStubResolver()
	}
	if o.WebhookURLs.DialGuard == nil {
		o.WebhookURLs.DialGuard = webhooks.LoopbackOnly
	}
	if o.RateLimit == nil {
		l := server.DefaultRateLimit()
		o.RateLimit = &l
	}
	if o.HTTPLimits == (server.Limits{}) {
		o.HTTPLimits = server.DefaultLimits()
	}
	apiSrv := httptest.NewUnstartedServer(nil)
	o.HTTPLimits.Apply(apiSrv.Config)
	apiURL := "http://" + apiSrv.Listener.Addr().String()
	// The sandbox's timed outcomes (08 reversal, 09 credentials outage, 10
	// look-up lag), shortened like the policy.
	psp := sandbox.New(sandbox.Options{CallbackURL: apiURL, AsyncDelay: o.AsyncDelay, Logger: o.Logger,
		ReverseAfter: time.Second, AuthOutage: 2 * time.Second, LookupLag: time.Second})
	var pspHandler http.Handler = psp
	if o.ProviderProxy != nil {
		pspHandler = o.ProviderProxy(psp)
	}
	pspSrv := httptest.NewServer(pspHandler)
	reg, err := providers.NewRegistry(append(providers.SandboxConfigs(pspSrv.URL), o.ExtraProviders...),
		&http.Client{Timeout: o.ProviderTimeout})
	if err != nil {
		pspSrv.Close()
		psp.Close()
		return nil, fmt.Errorf("provider registry: %w", err)
	}
	svc := NewService(o.Store, o.Temporal, o.TaskQueue, reg, o.Logger, refunds.Hooks{}, refunds.WithWebhookURLs(o.WebhookURLs))
	api := server.New(server.Deps{Service: svc, Logger: o.Logger, RateLimit: *o.RateLimit}).Handler()
	if o.APIProxy != nil {
		api = o.APIProxy(api)
	}
	apiSrv.Config.Handler = api
	apiSrv.Start()
	// Dispatchers poll often, so tests see deliveries within tens of ms.
	acts := &activities.Activities{Store: worker.ActivityStore(o.Store), Providers: reg, Policy: o.Policy,
		WebhookClient: o.WebhookURLs.Client(),
		Dispatch:      activities.DispatchOptions{PollInterval: 50 * time.Millisecond},
		Workflows:     gateway(o.Temporal, o.TaskQueue)}
	if o.WebhookPolicy != nil {
		acts.Webhooks = *o.WebhookPolicy
	}
	r := &Rig{Store: o.Store, Temporal: o.Temporal, TaskQueue: o.TaskQueue, APIURL: apiURL, Sandbox: psp,
		SandboxURL: pspSrv.URL, Providers: reg, Activities: acts, Logger: o.Logger, api: apiSrv, psp: pspSrv}
	if !o.NoWorker {
		if err := r.StartWorker(); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// StartWorker starts (or restarts) the rig's in-process workers, refunds
// and webhooks (on config.WebhookTaskQueueFor(TaskQueue)), and its webhook
// dispatcher.
func (r *Rig) StartWorker() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.workers != nil {
		return nil
	}
	refundsWorker := worker.New(r.Temporal, r.TaskQueue, r.Activities, sdkworker.Options{})
	webhooksWorker := worker.NewWebhooks(r.Temporal, config.WebhookTaskQueueFor(r.TaskQueue), r.Activities, sdkworker.Options{})
	for i, w := range []sdkworker.Worker{refundsWorker, webhooksWorker} {
		if err := w.Start(); err != nil {
			for _, started := range r.workers[:i] {
				started.Stop()
			}
			r.workers = nil
			return fmt.Errorf("start worker: %w", err)
		}
		r.workers = append(r.workers, w)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Activities.Workflows.EnsureWebhookDispatchers(ctx)
}

// StopWorker stops the workers, as a deploy would; running activities are abandoned.
func (r *Rig) StopWorker() {
	r.mu.Lock()
	ws := r.workers
	r.workers = nil
	r.mu.Unlock()
	for _, w := range ws {
		w.Stop()
	}
}

// Close stops everything the rig started.
func (r *Rig) Close() {
	r.StopWorker()
	r.api.Close()
	r.Sandbox.Close()
	r.psp.Close()
}

// Merchant is a tenant with an API key holding every merchant scope.
type Merchant struct {
	ID  uuid.UUID
	Key string
}

// NewMerchant creates a merchant and its key; threshold nil means no approvals.
func (r *Rig) NewMerchant(ctx context.Context, threshold *int64) (Merchant, error) {
	return NewMerchant(ctx, r.Store, threshold)
}

// NewMerchant creates a merchant and a key with every merchant scope.
func NewMerchant(ctx context.Context, st *store.Store, threshold *int64) (Merchant, error) {
	m, err := st.CreateMerchant(ctx, "reliability-"+uuid.NewString()[:8], threshold)
	if err != nil {
		return Merchant{}, fmt.Errorf("create merchant: %w", err)
	}
	key, err := st.CreateAPIKey(ctx, m.ID, "reliability", refund.MerchantScopes)
	if err != nil {
		return Merchant{}, fmt.Errorf("create key: %w", err)
	}
	return Merchant{ID: m.ID, Key: key}, nil
}

// Client returns an API client acting as m.
func (r *Rig) Client(m Merchant) *Client { return NewClient(r.APIURL, m.Key) }

// NewService is the refunds service on real Postgres and Temporal, as
// `backflow api` builds it, with the test webhook URL policy unless opts
// say otherwise.
func NewService(st *store.Store, c client.Client, taskQueue string, reg *providers.Registry, log *slog.Logger, h refunds.Hooks,
	opts ...refunds.Option) *refunds.Service {
	opts = append([]refunds.Option{refunds.WithWebhookURLs(TestURLPolicy(nil))}, opts...)
	return refunds.New(st, reg, gateway(c, taskQueue), log, h, opts...)
}

// gateway is the refunds gateway of a rig's task queues, with one webhook dispatcher.
func gateway(c client.Client, taskQueue string) refunds.TemporalGateway {
	return refunds.TemporalGateway{Client: c, TaskQueue: taskQueue, WebhookTaskQueue: config.WebhookTaskQueueFor(taskQueue), WebhookDispatchers: 1}
}
