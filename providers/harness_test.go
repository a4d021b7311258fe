package providers_test

// The connector tests' shared parts: a sandbox with shortened timings, a
// sink for its callbacks, the refund and payout flows of every provider.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/sandbox"
	"github.com/backflow/backflow/refund"
)

// The sandbox's timed outcomes, shortened for tests. The windows of 09 and
// 10 must outlast the first status check a test makes right after a submit.
const (
	asyncDelay   = 50 * time.Millisecond
	reverseAfter = 100 * time.Millisecond
	authOutage   = time.Second
	lookupLag    = time.Second
)

// sandboxOptions are the sandbox's options in tests.
func sandboxOptions(callbackURL string) sandbox.Options {
	return sandbox.Options{
		CallbackURL: callbackURL, AsyncDelay: asyncDelay, ReverseAfter: reverseAfter,
		AuthOutage: authOutage, LookupLag: lookupLag, Logger: slog.New(slog.DiscardHandler),
	}
}

// waitTimeout bounds every wait for a callback.
const waitTimeout = 10 * time.Second

// callback is one callback the sink received.
type callback struct {
	provider string
	header   http.Header
	body     []byte
}

// callbackSink stands in for Backflow's /v1/provider-callbacks/{provider}.
type callbackSink struct {
	mu      sync.Mutex
	got     []callback
	changed chan struct{} // closed and replaced on every arrival
}

func newCallbackSink() *callbackSink { return &callbackSink{changed: make(chan struct{})} }

func (s *callbackSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	provider, ok := strings.CutPrefix(r.URL.Path, "/v1/provider-callbacks/")
	body, err := io.ReadAll(r.Body)
	if !ok || r.Method != http.MethodPost || err != nil {
		http.Error(w, "bad callback", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got = append(s.got, callback{provider: provider, header: r.Header.Clone(), body: body})
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// about matches the callback events about one refund: by the Backflow id
// the provider echoes, or else by the provider's own reference.
func about(refundID, ref string) func(providers.CallbackEvent) bool {
	return func(ev providers.CallbackEvent) bool {
		return ev.RefundID == refundID || ev.RefundID == "" && ev.Result.ProviderReference == ref
	}
}

// find returns the callback for provider that conn parses as matching.
func (s *callbackSink) find(conn providers.Connector, provider string, match func(providers.CallbackEvent) bool) (callback, providers.CallbackEvent, <-chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cb := range s.got {
		if cb.provider != provider {
			continue
		}
		if ev, err := conn.ParseCallback(cb.header, cb.body); err == nil && match(ev) {
			return cb, ev, s.changed, true
		}
	}
	return callback{}, providers.CallbackEvent{}, s.changed, false
}

func (s *callbackSink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// eventually polls cond until it holds or waitTimeout passes.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not met within %s", waitTimeout)
		}
	}
}

// wait blocks until a matching callback arrives.
func (s *callbackSink) wait(t *testing.T, conn providers.Connector, provider string, match func(providers.CallbackEvent) bool) (callback, providers.CallbackEvent) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		cb, ev, changed, ok := s.find(conn, provider, match)
		if ok {
			return cb, ev
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no matching %s callback within %s", provider, waitTimeout)
		}
	}
}

// env is a sandbox PSP, a callback sink and the sandbox registry.
type env struct {
	sandbox  *sandbox.Server
	sink     *callbackSink
	url      string
	client   *http.Client
	registry *providers.Registry
	secrets  map[string]string // provider → callback secret
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sink := newCallbackSink()
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)
	sb := sandbox.New(sandboxOptions(sinkSrv.URL))
	t.Cleanup(sb.Close)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)

	client := &http.Client{Timeout: 5 * time.Second}
	cfgs := providers.SandboxConfigs(srv.URL)
	reg, err := providers.NewRegistry(cfgs, client)
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	secrets := map[string]string{}
	for _, c := range cfgs {
		secrets[c.Name] = c.CallbackSecret
	}
	return &env{sandbox: sb, sink: sink, url: srv.URL, client: client, registry: reg, secrets: secrets}
}

func (e *env) connector(t *testing.T, name string) providers.Connector {
	t.Helper()
	c, ok := e.registry.Get(name)
	if !ok {
		t.Fatalf("no connector %q", name)
	}
	return c
}

// flow drives one connector through its refund or payout operations.
type flow struct {
	provider string
	submit   func(ctx context.Context, c providers.Connector, key string, amount int64) (providers.Result, error)
	status   func(ctx context.Context, c providers.Connector, ref, key string) (providers.Result, error)
	// echoesRefundID: the provider's callbacks carry the Backflow refund id
	// in a field its API defines (a payout's reference); otherwise they name
	// the refund by the provider's own id only.
	echoesRefundID bool
	// declinesAsErrors: a decline is an error answer (cardpay: 001 answers
	// only processed refunds), not a refund with status declined.
	declinesAsErrors bool
}

func refundFlow(provider string) flow {
	return flow{
		provider:         provider,
		declinesAsErrors: provider == providers.TypeCardpay,
		submit: func(ctx context.Context, c providers.Connector, key string, amount int64) (providers.Result, error) {
			return c.Refund(ctx, providers.RefundRequest{
				IdempotencyKey:   key,
				RefundID:         key,
				PaymentReference: "pay_4711",
				Amount:           amount,
				Currency:         "EUR",
				Reason:           "customer returned the goods",
				ReasonCode:       "RETURN",
				Description:      "Refund for order 42",
				Reference:        "order-42",
				Metadata:         map[string]string{"order": "42"},
				LineItems:        []providers.LineItem{{ID: "sku-1", Quantity: 1, Amount: amount}},
			})
		},
		status: func(ctx context.Context, c providers.Connector, ref, key string) (providers.Result, error) {
			return c.RefundStatus(ctx, providers.Lookup{ProviderReference: ref, RefundID: key})
		},
	}
}

func payoutFlow(provider string, dest refund.PayoutDestination) flow {
	return flow{
		provider:       provider,
		echoesRefundID: true,
		submit: func(ctx context.Context, c providers.Connector, key string, amount int64) (providers.Result, error) {
			return c.Payout(ctx, providers.PayoutRequest{
				IdempotencyKey:   key,
				RefundID:         key,
				PaymentReference: "pay_4711",
				Amount:           amount,
				Currency:         "UGX",
				Description:      "Refund for order 42",
				Destination:      dest,
			})
		},
		status: func(ctx context.Context, c providers.Connector, ref, key string) (providers.Result, error) {
			return c.PayoutStatus(ctx, providers.Lookup{ProviderReference: ref, RefundID: key})
		},
	}
}

var flows = []flow{
	refundFlow("cardpay"),
	refundFlow("paydesk"),
	refundFlow("orchestra"),
	payoutFlow("momo", refund.PayoutDestination{Type: "mobile_money", MobileNumber: "+256 772 123456", Network: "MTN"}),
	payoutFlow("banktransfer", refund.PayoutDestination{
		Type: "bank_account", AccountHolder: "Ada Lovelace", IBAN: "DE89 3704 0044 0532 0130 00", Country: "DE",
	}),
}

// providerError returns err's *providers.Error or fails.
func providerError(t *testing.T, err error) *providers.Error {
	t.Helper()
	var pe *providers.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *providers.Error", err, err)
	}
	return pe
}

func wantResult(t *testing.T, what string, res providers.Result, err error, status providers.Status) providers.Result {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.Status != status || res.ProviderReference == "" {
		t.Fatalf("%s = %+v, want status %s and a provider reference", what, res, status)
	}
	return res
}

// wantCallback waits for the callback about the refund res (Backflow id key)
// and checks that it says status, with a failure code unless it succeeded,
// and names the refund as the provider's API does.
func (e *env) wantCallback(t *testing.T, f flow, c providers.Connector, key string, res providers.Result, status providers.Status) callback {
	t.Helper()
	cb, ev := e.sink.wait(t, c, f.provider, about(key, res.ProviderReference))
	if ev.Result.Status != status || ev.Result.ProviderReference != res.ProviderReference ||
		(status != providers.StatusSucceeded) != (ev.Result.FailureCode != "") {
		t.Fatalf("callback %+v, want %s for %s", ev, status, res.ProviderReference)
	}
	wantID := "" // named by the provider reference only
	if f.echoesRefundID {
		wantID = key
	}
	if ev.RefundID != wantID {
		t.Errorf("callback names refund %q, want %q", ev.RefundID, wantID)
	}
	return cb
}

// wantNoCallback checks that the refund res (Backflow id key) sent no
// callback: an asynchronous refund sent now completes and calls back, and by
// then a callback about res would have arrived too.
func (e *env) wantNoCallback(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string, res providers.Result) {
	t.Helper()
	later := key + "-later"
	lr, err := f.submit(ctx, c, later, 1004)
	lr = wantResult(t, "later submit", lr, err, providers.StatusProcessing)
	e.sink.wait(t, c, f.provider, about(later, lr.ProviderReference))
	if _, _, _, ok := e.sink.find(c, f.provider, about(key, res.ProviderReference)); ok {
		t.Errorf("refund %s sent a callback", key)
	}
}

func wantCounts(t *testing.T, sb *sandbox.Server, key string, count, requests int) {
	t.Helper()
	if got := sb.Count(key); got != count {
		t.Errorf("sandbox Count(%s) = %d, want %d", key, got, count)
	}
	if got := sb.Requests(key); got != requests {
		t.Errorf("sandbox Requests(%s) = %d, want %d", key, got, requests)
	}
}
