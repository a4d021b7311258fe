package refunds_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/workflows"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fakeGateway is Temporal as the service sees it: it records what the
// service asked and answers with the errors a test sets.
type fakeGateway struct {
	mu       sync.Mutex
	calls    []string
	args     []any
	startErr error
	signal   error
	update   error
	resume   error
}

var _ refunds.Gateway = (*fakeGateway)(nil)

func (g *fakeGateway) record(call string, arg any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls, g.args = append(g.calls, call), append(g.args, arg)
}

func (g *fakeGateway) called(call string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (g *fakeGateway) StartRefund(_ context.Context, r refund.Refund) error {
	g.record("start", r.ID)
	return g.startErr
}

func (g *fakeGateway) ResumeRefund(_ context.Context, r refund.Refund) error {
	g.record("resume", r.ID)
	return g.resume
}

func (g *fakeGateway) EnsureWebhookDispatchers(context.Context) error {
	g.record("dispatchers", nil)
	return nil
}

func (g *fakeGateway) BrokenRuns(context.Context, time.Time, int) ([]uuid.UUID, error) {
	return nil, nil
}

func (g *fakeGateway) RunClosed(context.Context, uuid.UUID) (bool, error) { return false, nil }

func (g *fakeGateway) SignalProviderEvent(_ context.Context, _ refund.Refund, res providers.Result) error {
	g.record("signal", res)
	return g.signal
}

func (g *fakeGateway) SignalRetry(_ context.Context, id uuid.UUID, _ string) error {
	g.record("retry", id)
	return g.signal
}

func (g *fakeGateway) Update(_ context.Context, _ uuid.UUID, name string, arg any) error {
	g.record("update:"+name, arg)
	return g.update
}

func (g *fakeGateway) Describe(_ context.Context, id uuid.UUID) workflows.Execution {
	return workflows.Execution{ID: workflows.RefundWorkflowID(id), Note: "fake"}
}

func (g *fakeGateway) CheckHealth(context.Context) error { return nil }

// fixture is a service on the package's Postgres with a fake gateway and
// the sandbox connectors (never called: the fake answers for Temporal).
type fixture struct {
	svc     *refunds.Service
	gw      *fakeGateway
	created []refund.Refund
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	reg, err := providers.NewRegistry(providers.SandboxConfigs("http://127.0.0.1:9"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{gw: &fakeGateway{}}
	f.svc = refunds.New(testenv.Get(t).Store, reg, f.gw, slog.New(slog.DiscardHandler),
		refunds.Hooks{Created: func(r refund.Refund) { f.created = append(f.created, r) }})
	return f
}

// refund creates a PENDING refund of 1000 on a fresh cardpay payment.
func (f *fixture) refund(t *testing.T, key string) refund.Refund {
	t.Helper()
	p := testenv.NewPayment(t, testenv.Get(t).Store, "cardpay", 5000, nil)
	r, err := f.svc.Create(context.Background(), refund.NewRefund{MerchantID: p.Merchant.ID, TransactionID: p.Tx.ID,
		Amount: 1000, Currency: "EUR", TargetType: refund.TargetPaymentMethod, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var rule *refund.RuleError
	if !errors.As(err, &rule) || rule.Code != code {
		t.Fatalf("error %v, want the rule %s", err, code)
	}
}

func TestCreateStartsTheWorkflowOnce(t *testing.T) {
	f := newFixture(t)
	r := f.refund(t, "")
	if r.Status != refund.StatusPending || r.Method != refund.MethodProviderRefund || f.gw.called("start") != 1 || len(f.created) != 1 {
		t.Fatalf("refund %s %s, %d starts, %d created", r.Status, r.Method, f.gw.called("start"), len(f.created))
	}
}

// A retried create answers with the refund its key made and counts it once.
func TestCreateReplaysItsIdempotencyKey(t *testing.T) {
	f := newFixture(t)
	first := f.refund(t, "key-1")
	again, err := f.svc.Create(context.Background(), refund.NewRefund{MerchantID: first.MerchantID, TransactionID: first.TransactionID,
		Amount: 1000, Currency: "EUR", TargetType: refund.TargetPaymentMethod, IdempotencyKey: "key-1"})
	if err != nil || again.ID != first.ID {
		t.Fatalf("replay = %v %v, want refund %s", again.ID, err, first.ID)
	}
	if len(f.created) != 1 {
		t.Fatalf("created hook called %d times, want once", len(f.created))
	}
}

// Temporal down at create: the refund stands (the reconciler starts it).
func TestCreateOutlivesAFailedStart(t *testing.T) {
	f := newFixture(t)
	f.gw.startErr = refund.Unavailable("Temporal is unavailable; retry later", errors.New("connection refused"))
	r := f.refund(t, "")
	got, err := f.svc.Get(context.Background(), refund.OfMerchant(r.MerchantID), r.ID)
	if err != nil || got.Status != refund.StatusPending {
		t.Fatalf("refund after a failed start: %v %v", got.Status, err)
	}
}

func TestRouteRefusesWhatTheProviderCannotDo(t *testing.T) {
	f := newFixture(t)
	st := testenv.Get(t).Store
	ctx := context.Background()
	gift := testenv.NewPayment(t, st, "cardpay", 5000, func(in *refund.NewTransaction) {
		in.GiftCardRedemptions = []refund.GiftCardRedemption{{ID: "gc-1", Amount: 1000}}
	})
	_, err := f.svc.Create(ctx, refund.NewRefund{MerchantID: gift.Merchant.ID, TransactionID: gift.Tx.ID, Amount: 100,
		TargetType: refund.TargetGiftCard, TargetID: "gc-1"})
	wantCode(t, err, refund.CodeTargetUnsupported)
	momo := testenv.NewPayment(t, st, "momo", 5000, nil)
	_, err = f.svc.Create(ctx, refund.NewRefund{MerchantID: momo.Merchant.ID, TransactionID: momo.Tx.ID, Amount: 100,
		TargetType: refund.TargetPaymentMethod})
	wantCode(t, err, refund.CodeMethodUnavailable)
	if f.gw.called("start") != 0 {
		t.Fatal("a refused refund started a workflow")
	}
}

// Another merchant's refund, and a read that forgot its scope, see nothing.
func TestMerchantScope(t *testing.T) {
	f := newFixture(t)
	r := f.refund(t, "")
	ctx := context.Background()
	_, err := f.svc.Get(ctx, refund.OfMerchant(uuid.New()), r.ID)
	wantCode(t, err, refund.CodeRefundNotFound)
	if _, err := f.svc.Get(ctx, refund.Scope{}, r.ID); !errors.Is(err, refund.ErrNoScope) {
		t.Fatalf("zero scope: %v, want ErrNoScope", err)
	}
	if _, err := f.svc.Cancel(ctx, refund.OfMerchant(uuid.New()), r.ID, "merchant:x"); err == nil {
		t.Fatal("another merchant canceled the refund")
	}
}

func TestCancel(t *testing.T) {
	ctx := context.Background()
	t.Run("through the workflow", func(t *testing.T) {
		f := newFixture(t)
		r := f.refund(t, "")
		_, err := f.svc.Cancel(ctx, refund.OfMerchant(r.MerchantID), r.ID, "merchant:k")
		// The fake workflow did not cancel the row: the service says so.
		wantCode(t, err, refund.CodeNotCancelable)
		if f.gw.called("update:"+workflows.UpdateCancel) != 1 {
			t.Fatalf("calls %v", f.gw.calls)
		}
	})
	t.Run("without a running workflow", func(t *testing.T) {
		f := newFixture(t)
		f.gw.update = refund.ErrWorkflowNotRunning
		r := f.refund(t, "")
		got, err := f.svc.Cancel(ctx, refund.OfMerchant(r.MerchantID), r.ID, "merchant:k")
		if err != nil || got.Status != refund.StatusCanceled {
			t.Fatalf("cancel = %s %v, want CANCELED in the database", got.Status, err)
		}
	})
	t.Run("refused by the workflow", func(t *testing.T) {
		f := newFixture(t)
		f.gw.update = &refunds.UpdateRejected{Reason: "already sent"}
		r := f.refund(t, "")
		_, err := f.svc.Cancel(ctx, refund.OfMerchant(r.MerchantID), r.ID, "merchant:k")
		wantCode(t, err, refund.CodeNotCancelable)
	})
	t.Run("workflow unreachable", func(t *testing.T) {
		f := newFixture(t)
		f.gw.update = errors.New("boom")
		r := f.refund(t, "")
		_, err := f.svc.Cancel(ctx, refund.OfMerchant(r.MerchantID), r.ID, "merchant:k")
		got, _ := f.svc.Get(ctx, refund.AllMerchants, r.ID)
		if !errors.Is(err, refund.ErrUnavailable) || got.Status != refund.StatusPending {
			t.Fatalf("cancel = %v, refund %s: want unavailable and still PENDING", err, got.Status)
		}
	})
}

func TestApproveAndReject(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.refund(t, "")
	_, err := f.svc.Approve(ctx, r, "ops:k", "")
	wantCode(t, err, refund.CodeNotAwaitingApproval) // below the merchant's threshold
	r.RequiresApproval = true
	f.gw.update = &refunds.UpdateRejected{Reason: "decided already"}
	_, err = f.svc.Approve(ctx, r, "ops:k", "")
	wantCode(t, err, refund.CodeNotAwaitingApproval)
	f.gw.update = refund.ErrWorkflowNotRunning
	_, err = f.svc.Reject(ctx, r, "ops:k", "fraud")
	wantCode(t, err, refund.CodeNotAwaitingApproval)
	_, err = f.svc.Reject(ctx, r, "ops:k", "  ")
	wantCode(t, err, refund.CodeValidation)
	f.gw.update = nil
	if _, err := f.svc.Approve(ctx, r, "ops:k", "fine"); err != nil {
		t.Fatal(err)
	}
	if d, ok := f.gw.args[len(f.gw.args)-1].(workflows.Decision); !ok || d.Actor != "ops:k" || d.Reason != "fine" {
		t.Fatalf("approve sent %#v", f.gw.args[len(f.gw.args)-1])
	}
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.refund(t, "")
	_, err := f.svc.Resolve(ctx, r, "ops:k", refund.StatusCanceled, "")
	var invalid *refund.ValidationError
	if !errors.As(err, &invalid) || len(invalid.Fields) != 2 {
		t.Fatalf("resolve without status and reason = %v, want both fields refused", err)
	}
	_, err = f.svc.Resolve(ctx, r, "ops:k", refund.StatusSucceeded, "seen on the dashboard")
	wantCode(t, err, refund.CodeNotResolvable) // PENDING: cancel it instead
	r.Status = refund.StatusProcessing
	f.gw.update = refund.ErrWorkflowNotRunning
	_, err = f.svc.Resolve(ctx, r, "ops:k", refund.StatusSucceeded, "seen on the dashboard")
	wantCode(t, err, refund.CodeWorkflowUnavailable)
	f.gw.update = &refunds.UpdateRejected{Reason: "a provider call is in flight"}
	_, err = f.svc.Resolve(ctx, r, "ops:k", refund.StatusSucceeded, "seen on the dashboard")
	wantCode(t, err, refund.CodeNotResolvable)
	f.gw.update = nil
	if _, err := f.svc.Resolve(ctx, r, "ops:k", refund.StatusFailed, "seen on the dashboard"); err != nil {
		t.Fatal(err)
	}
	if res, ok := f.gw.args[len(f.gw.args)-1].(workflows.Resolution); !ok || res.Status != providers.StatusFailed {
		t.Fatalf("resolve sent %#v", f.gw.args[len(f.gw.args)-1])
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	r := f.refund(t, "")
	if _, err := f.svc.Retry(ctx, r, "ops:k"); err != nil || f.gw.called("retry") != 1 {
		t.Fatalf("retry = %v, calls %v", err, f.gw.calls)
	}
	f.gw.signal = refund.ErrWorkflowNotRunning
	if _, err := f.svc.Retry(ctx, r, "ops:k"); err != nil || f.gw.called("resume") != 1 {
		t.Fatalf("retry of a closed workflow = %v, calls %v: want a resume", err, f.gw.calls)
	}
	f.gw.resume = refund.ErrAlreadyStarted
	_, err := f.svc.Retry(ctx, r, "ops:k")
	wantCode(t, err, refund.CodeWorkflowUnavailable)
	r.Status = refund.StatusSucceeded
	_, err = f.svc.Retry(ctx, r, "ops:k")
	wantCode(t, err, refund.CodeNotRetryable)
}

func TestCallbackOfAnUnknownProvider(t *testing.T) {
	f := newFixture(t)
	err := f.svc.HandleCallback(context.Background(), "nope", nil, []byte("{}"))
	if !errors.Is(err, refunds.ErrUnknownProvider) {
		t.Fatalf("callback = %v", err)
	}
}
