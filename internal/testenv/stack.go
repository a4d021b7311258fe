package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/providers/sandbox"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/worker"
)

// Stack is a whole Backflow over real HTTP: the API, a worker on the
// package's task queue and the sandbox PSP, with a fresh merchant.
type Stack struct {
	*Env
	APIURL      string
	Sandbox     *sandbox.Server
	SandboxURL  string
	Providers   *providers.Registry
	Activities  *activities.Activities
	MerchantID  uuid.UUID
	MerchantKey string
	OpsKey      string
	worker      sdkworker.Worker
}

// FastPolicy keeps test refunds quick: short polls, few attempts, short SLA.
func FastPolicy() activities.Policy {
	return activities.Policy{
		StuckAfter:            3 * time.Second,
		PollInitial:           300 * time.Millisecond,
		PollMax:               time.Second,
		SubmitAttempts:        4,
		SubmitInitialInterval: 200 * time.Millisecond,
		StuckRetryEvery:       2 * time.Second,
	}
}

// StackOptions tune StartStack.
type StackOptions struct {
	Policy            *activities.Policy
	ApprovalThreshold *int64
	NoWorker          bool
	AsyncDelay        time.Duration
	// ProviderProxy, when set, wraps the sandbox to inject faults between
	// the connectors and the provider.
	ProviderProxy func(http.Handler) http.Handler
	// ExtraProviders are configured next to the sandbox providers (e.g. stripe on stripe-mock).
	ExtraProviders []providers.Config
	// CallbackTap, when set, sees every provider callback before the API does.
	CallbackTap func(r *http.Request, body []byte)
}

// StartStack starts the API, the sandbox and a worker, all torn down with t.
func StartStack(t testing.TB, opts StackOptions) *Stack {
	t.Helper()
	env := Get(t)
	ctx := context.Background()
	apiSrv := httptest.NewUnstartedServer(nil)
	apiURL := "http://" + apiSrv.Listener.Addr().String()
	delay := opts.AsyncDelay
	if delay == 0 {
		delay = 500 * time.Millisecond
	}
	psp := sandbox.New(sandbox.Options{CallbackURL: apiURL, AsyncDelay: delay, Logger: env.Logger})
	var pspHandler http.Handler = psp
	if opts.ProviderProxy != nil {
		pspHandler = opts.ProviderProxy(psp)
	}
	pspSrv := httptest.NewServer(pspHandler)
	reg, err := providers.NewRegistry(append(providers.SandboxConfigs(pspSrv.URL), opts.ExtraProviders...), &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("provider registry: %v", err)
	}
	api := server.New(server.Deps{Store: env.Store, Temporal: env.Temporal, Providers: reg,
		TaskQueue: env.TaskQueue, Logger: env.Logger}).Handler()
	if opts.CallbackTap != nil {
		api = tapCallbacks(api, opts.CallbackTap)
	}
	apiSrv.Config.Handler = api
	apiSrv.Start()

	m, err := env.Store.CreateMerchant(ctx, "merchant-"+uuid.NewString()[:8], opts.ApprovalThreshold)
	if err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	mkey, err := env.Store.CreateAPIKey(ctx, m.ID, "test", store.MerchantScopes)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	okey, err := env.Store.CreateAPIKey(ctx, uuid.Nil, "ops", []string{store.ScopeOps})
	if err != nil {
		t.Fatalf("create ops key: %v", err)
	}
	policy := FastPolicy()
	if opts.Policy != nil {
		policy = *opts.Policy
	}
	s := &Stack{Env: env, APIURL: apiURL, Sandbox: psp, SandboxURL: pspSrv.URL, Providers: reg,
		Activities: &activities.Activities{Store: env.Store, Providers: reg, Policy: policy},
		MerchantID: m.ID, MerchantKey: mkey, OpsKey: okey}
	if !opts.NoWorker {
		s.StartWorker(t)
	}
	t.Cleanup(func() {
		s.StopWorker()
		apiSrv.Close()
		psp.Close()
		pspSrv.Close()
	})
	return s
}

// StartWorker starts (or restarts) the stack's worker.
func (s *Stack) StartWorker(t testing.TB) {
	t.Helper()
	s.worker = worker.New(s.Temporal, s.TaskQueue, s.Activities, sdkworker.Options{})
	if err := s.worker.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
}

// StopWorker stops the worker, as a deploy or crash would.
func (s *Stack) StopWorker() {
	if s.worker != nil {
		s.worker.Stop()
		s.worker = nil
	}
}

// Response is a decoded API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request with the merchant key; body may be a string, []byte or any JSON value.
func (s *Stack) Do(t testing.TB, method, path string, body any, headers ...string) Response {
	t.Helper()
	return s.DoWithKey(t, s.MerchantKey, method, path, body, headers...)
}

// DoWithKey sends a request with key ("" for none); headers are name, value pairs.
func (s *Stack) DoWithKey(t testing.TB, key, method, path string, body any, headers ...string) Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, s.APIURL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: out}
}

// Transaction registers a session and a captured transaction on provider
// through the API and returns (sessionID, transactionID).
func (s *Stack) Transaction(t testing.TB, fields map[string]any) (string, string) {
	t.Helper()
	var sess struct{ SessionID string }
	r := s.Do(t, "POST", "/v1/sessions", map[string]any{})
	if r.Status != http.StatusCreated {
		t.Fatalf("create session: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &sess)
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000,
		"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}
	for k, v := range fields {
		body[k] = v
	}
	r = s.Do(t, "POST", "/v1/transactions", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("create transaction: %d %s", r.Status, r.Body)
	}
	var tx struct{ TransactionID string }
	r.JSON(t, &tx)
	return sess.SessionID, tx.TransactionID
}

// WaitRefund polls GET /v1/refunds/{id} until its status is one of want.
func (s *Stack) WaitRefund(t testing.TB, id string, timeout time.Duration, want ...string) store.RefundObject {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last store.RefundObject
	for time.Now().Before(deadline) {
		r := s.Do(t, "GET", "/v1/refunds/"+id, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("get refund: %d %s", r.Status, r.Body)
		}
		r.JSON(t, &last)
		for _, w := range want {
			if last.Status == w {
				return last
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("refund %s is %s after %s, want %v", id, last.Status, timeout, want)
	return last
}

// Must fails the test unless r has status want.
func Must(t testing.TB, r Response, want int) Response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	return r
}

// NewMerchantKey creates another merchant on the stack and returns a key with scopes (all merchant scopes when none).
func (s *Stack) NewMerchantKey(t testing.TB, threshold *int64, scopes ...string) (uuid.UUID, string) {
	t.Helper()
	ctx := context.Background()
	m, err := s.Store.CreateMerchant(ctx, "merchant-"+uuid.NewString()[:8], threshold)
	if err != nil {
		t.Fatalf("create merchant: %v", err)
	}
	if len(scopes) == 0 {
		scopes = store.MerchantScopes
	}
	key, err := s.Store.CreateAPIKey(ctx, m.ID, "test", scopes)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return m.ID, key
}

func tapCallbacks(next http.Handler, tap func(*http.Request, []byte)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/provider-callbacks/") {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			tap(r, body)
		}
		next.ServeHTTP(w, r)
	})
}
