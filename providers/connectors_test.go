package providers_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/sandbox"
)

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
