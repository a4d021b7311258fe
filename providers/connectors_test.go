package providers_test

import (
	"bytes"
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

// TestOutcomeControls runs every sandbox outcome control through every connector.
func TestOutcomeControls(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	type testCase struct {
		name   string
		amount int64
		run    func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string)
	}
	cases := []testCase{
		{"00 success", 1000, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1000)
			res = wantResult(t, "submit", res, err, providers.StatusSucceeded)
			byRef, err := f.status(ctx, c, res.ProviderReference, "")
			wantResult(t, "status by reference", byRef, err, providers.StatusSucceeded)
			byKey, err := f.status(ctx, c, "", key)
			byKey = wantResult(t, "status by key", byKey, err, providers.StatusSucceeded)
			if byRef != res || byKey != res {
				t.Errorf("status by reference %+v / by key %+v differ from %+v", byRef, byKey, res)
			}
			wantCounts(t, e.sandbox, key, 1, 1)
		}},
		{"01 declined", 1001, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1001)
			if f.declinesAsErrors {
				if pe := providerError(t, err); pe.Kind != providers.KindDeclined || pe.Code == "" {
					t.Fatalf("submit error %v, want a decline with a code", err)
				}
			} else {
				res = wantResult(t, "submit", res, err, providers.StatusDeclined)
				st, err := f.status(ctx, c, res.ProviderReference, "")
				wantResult(t, "status by reference", st, err, providers.StatusDeclined)
			}
			st, err := f.status(ctx, c, "", key)
			st = wantResult(t, "status by key", st, err, providers.StatusDeclined)
			if st.FailureCode == "" {
				t.Errorf("declined without a failure code: %+v", st)
			}
			wantCounts(t, e.sandbox, key, 1, 1)
		}},
		{"02 transient 503", 1002, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			for attempt := 1; attempt <= 2; attempt++ {
				_, err := f.submit(ctx, c, key, 1002)
				pe := providerError(t, err)
				if pe.Kind != providers.KindRetryable || pe.HTTPStatus != http.StatusServiceUnavailable {
					t.Fatalf("attempt %d: error %v, want retryable 503", attempt, err)
				}
				if _, err := f.status(ctx, c, "", key); !errors.Is(err, providers.ErrNotFound) {
					t.Fatalf("attempt %d: status by key = %v, want ErrNotFound", attempt, err)
				}
			}
			res, err := f.submit(ctx, c, key, 1002)
			wantResult(t, "third attempt", res, err, providers.StatusSucceeded)
			wantCounts(t, e.sandbox, key, 1, 3)
		}},
		{"03 answer lost", 1003, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			_, err := f.submit(ctx, c, key, 1003)
			if pe := providerError(t, err); pe.Kind != providers.KindRetryable || pe.HTTPStatus != 0 {
				t.Fatalf("submit error %v, want a retryable connection error", err)
			}
			wantCounts(t, e.sandbox, key, 1, 1) // processed although unanswered
			found, err := f.status(ctx, c, "", key)
			found = wantResult(t, "status by key", found, err, providers.StatusSucceeded)
			retried, err := f.submit(ctx, c, key, 1003)
			retried = wantResult(t, "retry", retried, err, providers.StatusSucceeded)
			if retried.ProviderReference != found.ProviderReference {
				t.Errorf("retry made %s, status check found %s", retried.ProviderReference, found.ProviderReference)
			}
			wantCounts(t, e.sandbox, key, 1, 2)
		}},
		{"04 async success", 1004, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1004)
			res = wantResult(t, "submit", res, err, providers.StatusProcessing)
			cb := e.wantCallback(t, f, c, key, res, providers.StatusSucceeded)
			st, err := f.status(ctx, c, res.ProviderReference, "")
			wantResult(t, "status", st, err, providers.StatusSucceeded)
			checkCallbackRejections(t, c, cb, e.secrets[f.provider])
		}},
		{"05 async failure", 1005, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1005)
			res = wantResult(t, "submit", res, err, providers.StatusProcessing)
			e.wantCallback(t, f, c, key, res, providers.StatusFailed)
			st, err := f.status(ctx, c, "", key)
			wantResult(t, "status", st, err, providers.StatusFailed)
		}},
		{"06 never completes", 1006, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1006)
			res = wantResult(t, "submit", res, err, providers.StatusProcessing)
			e.wantNoCallback(t, ctx, f, c, key, res)
			st, err := f.status(ctx, c, res.ProviderReference, "")
			wantResult(t, "status", st, err, providers.StatusProcessing)
		}},
		{"07 rate limited", 1007, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			_, err := f.submit(ctx, c, key, 1007)
			pe := providerError(t, err)
			if pe.Kind != providers.KindRetryable || pe.HTTPStatus != http.StatusTooManyRequests || pe.RetryAfter != time.Second {
				t.Fatalf("submit error %+v, want retryable 429 with RetryAfter 1s", pe)
			}
			res, err := f.submit(ctx, c, key, 1007)
			wantResult(t, "retry", res, err, providers.StatusSucceeded)
			wantCounts(t, e.sandbox, key, 1, 2)
		}},
		{"08 reversed", 1008, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1008)
			res = wantResult(t, "submit", res, err, providers.StatusSucceeded)
			e.wantCallback(t, f, c, key, res, providers.StatusReversed)
			byRef, err := f.status(ctx, c, res.ProviderReference, "")
			wantResult(t, "status by reference", byRef, err, providers.StatusReversed)
			byKey, err := f.status(ctx, c, "", key)
			wantResult(t, "status by key", byKey, err, providers.StatusReversed)
			wantCounts(t, e.sandbox, key, 1, 1)
		}},
		{"09 auth outage on status checks", 1009, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			res, err := f.submit(ctx, c, key, 1009)
			res = wantResult(t, "submit", res, err, providers.StatusProcessing)
			for _, l := range []struct{ ref, key string }{{res.ProviderReference, ""}, {"", key}} {
				_, err := f.status(ctx, c, l.ref, l.key)
				if pe := providerError(t, err); pe.Kind != providers.KindAuth || pe.HTTPStatus != http.StatusUnauthorized {
					t.Fatalf("status %+v during the outage: %v, want 401 auth", l, err)
				}
			}
			eventually(t, func() bool {
				st, err := f.status(ctx, c, res.ProviderReference, "")
				return err == nil && st.Status == providers.StatusSucceeded
			})
			byKey, err := f.status(ctx, c, "", key)
			wantResult(t, "status by key after the outage", byKey, err, providers.StatusSucceeded)
			e.wantNoCallback(t, ctx, f, c, key, res)
		}},
		{"10 lost answer, then 409, look-up lags", 1010, func(t *testing.T, ctx context.Context, f flow, c providers.Connector, key string) {
			_, err := f.submit(ctx, c, key, 1010)
			if pe := providerError(t, err); pe.Kind != providers.KindRetryable || pe.HTTPStatus != 0 {
				t.Fatalf("submit error %v, want a retryable connection error", err)
			}
			if _, err := f.status(ctx, c, "", key); !errors.Is(err, providers.ErrNotFound) {
				t.Fatalf("status by key during the lag = %v, want ErrNotFound", err)
			}
			for attempt := 2; attempt <= 3; attempt++ {
				_, err := f.submit(ctx, c, key, 1010)
				if pe := providerError(t, err); pe.Kind != providers.KindUnknown || pe.HTTPStatus != http.StatusConflict {
					t.Fatalf("attempt %d: %v, want 409 unknown", attempt, err)
				}
			}
			var found providers.Result
			eventually(t, func() bool {
				found, err = f.status(ctx, c, "", key)
				return err == nil
			})
			found = wantResult(t, "status by key after the lag", found, err, providers.StatusSucceeded)
			byRef, err := f.status(ctx, c, found.ProviderReference, "")
			wantResult(t, "status by reference", byRef, err, providers.StatusSucceeded)
			wantCounts(t, e.sandbox, key, 1, 3)
		}},
	}
	for _, f := range flows {
		t.Run(f.provider, func(t *testing.T) {
			t.Parallel()
			c := e.connector(t, f.provider)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
					defer cancel()
					tc.run(t, ctx, f, c, f.provider+"-"+tc.name[:2])
				})
			}
		})
	}
}

// checkCallbackRejections replays an authentic callback altered in each way
// a forger or a replay could alter it.
func checkCallbackRejections(t *testing.T, c providers.Connector, cb callback, secret string) {
	t.Helper()
	resign := func(secret string, at time.Time, body []byte) http.Header {
		h := http.Header{}
		h.Set(providers.SandboxSignatureHeader, providers.SignCallback(secret, at, body))
		return h
	}
	tampered := bytes.Replace(cb.body, []byte(`"data"`), []byte(`"data" `), 1)
	if bytes.Equal(tampered, cb.body) {
		tampered = append(bytes.TrimSuffix(cb.body, []byte("\n")), ' ')
	}
	tests := []struct {
		name   string
		header http.Header
		body   []byte
		ok     bool
	}{
		{"authentic", cb.header, cb.body, true},
		{"re-signed now", resign(secret, time.Now(), cb.body), cb.body, true},
		{"tampered body", cb.header, tampered, false},
		{"wrong secret", resign(secret+"x", time.Now(), cb.body), cb.body, false},
		{"old timestamp", resign(secret, time.Now().Add(-10*time.Minute), cb.body), cb.body, false},
		{"no signature", http.Header{}, cb.body, false},
	}
	for _, tt := range tests {
		_, err := c.ParseCallback(tt.header, tt.body)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s callback rejected: %v", tt.name, err)
		case !tt.ok && !errors.Is(err, providers.ErrInvalidSignature):
			t.Errorf("%s callback: error %v, want ErrInvalidSignature", tt.name, err)
		}
	}
}

// TestProviderIdempotency sends one create many times at once: one object at
// the provider, one reference for every caller; the key reused for another
// amount is refused.
func TestProviderIdempotency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, f := range flows {
		t.Run(f.provider, func(t *testing.T) {
			t.Parallel()
			c := e.connector(t, f.provider)
			ctx := context.Background()
			key := f.provider + "-idem"
			const callers = 8
			refs := make([]string, callers)
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					res, err := f.submit(ctx, c, key, 2500)
					if err != nil {
						t.Errorf("caller %d: %v", i, err)
					}
					refs[i] = res.ProviderReference
				})
			}
			wg.Wait()
			for i, ref := range refs {
				if ref == "" || ref != refs[0] {
					t.Fatalf("caller %d got reference %q, caller 0 got %q", i, ref, refs[0])
				}
			}
			wantCounts(t, e.sandbox, key, 1, callers)

			_, err := f.submit(ctx, c, key, 2600)
			// A reused key is a rejection (422) or a conflict (409): never a success.
			if pe := providerError(t, err); pe.Kind != providers.KindInvalid && pe.Kind != providers.KindUnknown {
				t.Errorf("key reused for another amount: %v, want invalid or unknown", err)
			}
			wantCounts(t, e.sandbox, key, 1, callers+1)
		})
	}
}

// TestErrorMapping checks how provider refusals and transport failures are classified.
func TestErrorMapping(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := providers.RefundRequest{IdempotencyKey: "k", RefundID: "k", PaymentReference: "pay_1", Amount: 1000, Currency: "EUR"}
	with := func(mod func(*providers.RefundRequest)) providers.RefundRequest {
		r := base
		mod(&r)
		return r
	}
	withConfig := func(name string, mod func(*providers.Config)) providers.Connector {
		for _, cfg := range providers.SandboxConfigs(e.url) {
			if cfg.Name == name {
				mod(&cfg)
				reg, err := providers.NewRegistry([]providers.Config{cfg}, e.client)
				if err != nil {
					t.Fatalf("NewRegistry() = %v", err)
				}
				c, _ := reg.Get(name)
				return c
			}
		}
		t.Fatalf("no sandbox config %q", name)
		return nil
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		kind     providers.ErrorKind
		code     string
		status   int
		sentinel error
	}{
		{name: "paydesk payment.not-found", kind: providers.KindInvalid, code: "payment.not-found", status: 404,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.PaymentReference = "missing_pay" }))},
		{name: "paydesk amount.insufficient", kind: providers.KindDeclined, code: "amount.insufficient", status: 403,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.PaymentReference = "refunded_pay" }))},
		{name: "paydesk description too long", kind: providers.KindInvalid, code: "request.invalid", status: 422,
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.Description = strings.Repeat("x", 81) }))},
		{name: "paydesk wrong API key", kind: providers.KindAuth, code: "authentication.failed", status: 401,
			call: refundCall(withConfig("paydesk", func(c *providers.Config) { c.APIKey = "test_wrong" }), base)},
		{name: "orchestra token without transactions.write", kind: providers.KindAuth, code: "forbidden", status: 403,
			call: refundCall(withConfig("orchestra", func(c *providers.Config) { c.APIKey = providers.SandboxOrchestraReadOnlyToken }), base)},
		{name: "orchestra unknown token", kind: providers.KindAuth, code: "unauthorized", status: 401,
			call: refundCall(withConfig("orchestra", func(c *providers.Config) { c.APIKey = "nope" }), base)},
		{name: "orchestra not captured", kind: providers.KindInvalid, code: "bad_request", status: 400,
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.PaymentReference = "authorized_tx" }))},
		{name: "orchestra gift card without target id", kind: providers.KindInvalid, code: "bad_request", status: 400,
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.TargetType = "GIFT_CARD_REDEMPTION" }))},
		{name: "orchestra unknown target type", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "orchestra"), with(func(r *providers.RefundRequest) { r.TargetType = "WALLET" }))},
		{name: "cardpay gift-card target", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.TargetType, r.TargetID = "GIFT_CARD_REDEMPTION", "gc_1" }))},
		{name: "paydesk gift-card target", kind: providers.KindInvalid, code: "target_unsupported",
			call: refundCall(e.connector(t, "paydesk"), with(func(r *providers.RefundRequest) { r.TargetType, r.TargetID = "GIFT_CARD_REDEMPTION", "gc_1" }))},
		{name: "cardpay wrong password", kind: providers.KindAuth, code: "unauthorized", status: 401,
			call: refundCall(withConfig("cardpay", func(c *providers.Config) { c.Password = "wrong" }), base)},
		{name: "cardpay transaction not found", kind: providers.KindInvalid, code: "transaction_not_found", status: 404,
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.PaymentReference = "missing_tx" }))},
		{name: "cardpay zero amount", kind: providers.KindInvalid, code: "validation_error", status: 422,
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.Currency = "JPY"; r.Amount = 0 }))},
		{name: "cardpay 1.234 KWD is refused before sending", kind: providers.KindInvalid, code: "amount_precision",
			call: refundCall(e.connector(t, "cardpay"), with(func(r *providers.RefundRequest) { r.Currency = "KWD"; r.Amount = 1234 }))},
		{name: "momo without a mobile number", kind: providers.KindInvalid, code: "bad_destination",
			call: payoutCall(e.connector(t, "momo"), refund.PayoutDestination{Type: "mobile_money"})},
		{name: "bank invalid IBAN", kind: providers.KindInvalid, code: "validation_error", status: 422,
			call: payoutCall(e.connector(t, "banktransfer"), refund.PayoutDestination{AccountHolder: "A", IBAN: "DE00 3704 0044 0532 0130 00", Country: "DE"})},
		{name: "refund on a payout-only provider", kind: providers.KindInvalid, code: "unsupported", sentinel: providers.ErrUnsupported,
			call: refundCall(e.connector(t, "momo"), base)},
		{name: "payout on a refund-only provider", kind: providers.KindInvalid, code: "unsupported", sentinel: providers.ErrUnsupported,
			call: payoutCall(e.connector(t, "cardpay"), refund.PayoutDestination{MobileNumber: "256772123456"})},
		{name: "status of an unknown reference", kind: providers.KindRetryable, code: "not_found", status: 404, sentinel: providers.ErrNotFound,
			call: func(ctx context.Context) error {
				_, err := e.connector(t, "orchestra").RefundStatus(ctx, providers.Lookup{ProviderReference: "00000000-0000-0000-0000-000000000000"})
				return err
			}},
		{name: "status of an unknown key", kind: providers.KindRetryable, code: "not_found", sentinel: providers.ErrNotFound,
			call: func(ctx context.Context) error {
				_, err := e.connector(t, "banktransfer").PayoutStatus(ctx, providers.Lookup{RefundID: "never-sent"})
				return err
			}},
		{name: "connection refused", kind: providers.KindRetryable, code: "network",
			call: refundCall(withConfig("cardpay", func(c *providers.Config) { c.BaseURL = closed.URL }), base)},
		{name: "context canceled", kind: providers.KindRetryable, code: "network", sentinel: context.Canceled,
			call: func(context.Context) error {
				_, err := e.connector(t, "paydesk").Refund(canceled, base)
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.call(context.Background())
			pe := providerError(t, err)
			if pe.Kind != tt.kind || pe.Code != tt.code || pe.HTTPStatus != tt.status {
				t.Errorf("error %v: kind %s code %q status %d; want %s %q %d", err, pe.Kind, pe.Code, pe.HTTPStatus, tt.kind, tt.code, tt.status)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %v does not match %v", err, tt.sentinel)
			}
		})
	}
}

func refundCall(c providers.Connector, req providers.RefundRequest) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Refund(ctx, req)
		return err
	}
}

func payoutCall(c providers.Connector, dest refund.PayoutDestination) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.Payout(ctx, providers.PayoutRequest{IdempotencyKey: "p-" + dest.IBAN, RefundID: "r", Amount: 1000, Currency: "EUR", Destination: dest})
		return err
	}
}

// TestCallbackProviderNames checks that callbacks use the configured provider
// names and that each connector only accepts its own provider's secret.
func TestCallbackProviderNames(t *testing.T) {
	t.Parallel()
	sink := newCallbackSink()
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)
	opts := sandboxOptions(sinkSrv.URL + "/")
	opts.ProviderNames = map[string]string{"paydesk": "paydesk-eu"}
	sb := sandbox.New(opts)
	t.Cleanup(sb.Close)
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	reg, err := providers.NewRegistry(providers.SandboxConfigs(srv.URL), srv.Client())
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	paydesk, _ := reg.Get("paydesk")
	cardpay, _ := reg.Get("cardpay")
	res, err := refundFlow("paydesk").submit(context.Background(), paydesk, "renamed", 3004)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	cb, _ := sink.wait(t, paydesk, "paydesk-eu", about("renamed", res.ProviderReference))
	if _, err := cardpay.ParseCallback(cb.header, cb.body); !errors.Is(err, providers.ErrInvalidSignature) {
		t.Errorf("cardpay accepted a paydesk callback: %v", err)
	}
	// The sandbox counts a callback once the sink has answered it.
	eventually(t, func() bool { return sb.Stats().CallbacksSent == 1 })
	if s := sb.Stats(); s.Created != 1 || s.CreateRequests != 1 || s.Replayed != 0 || s.CallbacksFailed != 0 {
		t.Errorf("Stats() = %+v", s)
	}
}

// TestSandboxCloseStopsPendingOutcomes checks that Close cancels scheduled
// completions: the refund stays processing and no callback is sent.
func TestSandboxCloseStopsPendingOutcomes(t *testing.T) {
	t.Parallel()
	sink := newCallbackSink()
	sinkSrv := httptest.NewServer(sink)
	t.Cleanup(sinkSrv.Close)
	sb := sandbox.New(sandbox.Options{CallbackURL: sinkSrv.URL, AsyncDelay: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	srv := httptest.NewServer(sb)
	t.Cleanup(srv.Close)
	reg, err := providers.NewRegistry(providers.SandboxConfigs(srv.URL), srv.Client())
	if err != nil {
		t.Fatalf("NewRegistry() = %v", err)
	}
	momo, _ := reg.Get("momo")
	f := flows[3]
	res, err := f.submit(context.Background(), momo, "closing", 4004)
	res = wantResult(t, "submit", res, err, providers.StatusProcessing)

	done := make(chan struct{})
	go func() { sb.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	st, err := f.status(context.Background(), momo, res.ProviderReference, "")
	wantResult(t, "status after Close", st, err, providers.StatusProcessing)
	if n := sink.len(); n != 0 {
		t.Errorf("%d callbacks after Close", n)
	}
}
