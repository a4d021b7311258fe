package rig

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/workflows"
)

// Stack is a whole Backflow over real HTTP (a Rig on the
// package's database and task queue) with a fresh merchant and ops key.
type Stack struct {
	*Rig
	Pool        *pgxpool.Pool
	DBURL       string
	MerchantID  uuid.UUID
	MerchantKey string
	OpsKey      string
}

// StackPolicy is FastPolicy with a 3 s SLA, for tests of stuck refunds.
func StackPolicy() activities.Policy {
	p := FastPolicy()
	p.StuckAfter = 3 * time.Second
	return p
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
	// WebhookURLs is the webhook URL policy (zero: TestURLPolicy(nil)).
	WebhookURLs webhooks.URLPolicy
	// RateLimit and HTTPLimits are the API's (nil, zero: production defaults).
	RateLimit  *server.RateLimit
	HTTPLimits server.Limits
}

// StartStack starts the API, the sandbox and a worker, all torn down with t.
func StartStack(t testing.TB, opts StackOptions) *Stack {
	t.Helper()
	env := testenv.Get(t)
	// A queue per stack: a schedule or worker process a test left behind never runs another test's refunds.
	ro := RigOptions{Store: env.Store, Temporal: env.Temporal, TaskQueue: env.TaskQueue + "-" + uuid.NewString()[:8], Logger: env.Logger,
		Policy: StackPolicy(), ProviderTimeout: 5 * time.Second, AsyncDelay: opts.AsyncDelay, ProviderProxy: opts.ProviderProxy,
		NoWorker: opts.NoWorker, ExtraProviders: opts.ExtraProviders, WebhookURLs: opts.WebhookURLs, RateLimit: opts.RateLimit,
		HTTPLimits: opts.HTTPLimits}
	if opts.Policy != nil {
		ro.Policy = *opts.Policy
	}
	if opts.CallbackTap != nil {
		ro.APIProxy = func(next http.Handler) http.Handler { return tapCallbacks(next, opts.CallbackTap) }
	}
	r, err := StartRig(ro)
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	t.Cleanup(r.Close)
	s := &Stack{Rig: r, Pool: env.Pool, DBURL: env.DBURL}
	s.MerchantID, s.MerchantKey = s.NewMerchantKey(t, opts.ApprovalThreshold)
	if s.OpsKey, err = env.Store.CreateAPIKey(context.Background(), uuid.Nil, "ops", []string{refund.ScopeOps}); err != nil {
		t.Fatalf("create ops key: %v", err)
	}
	return s
}

// StartWorker starts (or restarts) the stack's worker.
func (s *Stack) StartWorker(t testing.TB) {
	t.Helper()
	if err := s.Rig.StartWorker(); err != nil {
		t.Fatal(err)
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
	r, err := NewClient(s.APIURL, key).Do(context.Background(), method, path, body, headers...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
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
func (s *Stack) WaitRefund(t testing.TB, id string, timeout time.Duration, want ...refund.Status) refund.Object {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last refund.Object
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

// FreePort returns a TCP port nobody listens on at the moment.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
		scopes = refund.MerchantScopes
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

// AssertProblem fails t unless r is a problem+json answer with status and code.
func AssertProblem(t testing.TB, r Response, status int, code string) server.Problem {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, want application/problem+json", ct)
	}
	var p server.Problem
	r.JSON(t, &p)
	if p.Code != code {
		t.Fatalf("code %q, want %q: %s", p.Code, code, r.Body)
	}
	return p
}

// Reconcile runs one reconciler pass on the rig's task queue, as its
// Temporal Schedule would.
func Reconcile(t testing.TB, r *Rig) activities.ReconcileReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := r.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: r.TaskQueue}, workflows.ReconcileWorkflowName)
	if err != nil {
		t.Fatal(err)
	}
	var rep activities.ReconcileReport
	if err := run.Get(ctx, &rep); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	return rep
}
