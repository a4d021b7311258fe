package activities_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/worker"
)

// fakeProvider is a connector whose answers a test scripts; it records the
// calls in order ("refund", "lookup") and the idempotency keys it was sent.
type fakeProvider struct {
	mu      sync.Mutex
	calls   []string
	keys    []string
	refund  func() (providers.Result, error)
	find    func(providers.Lookup) (providers.Result, error)
	lookups []providers.Lookup
}

func (f *fakeProvider) Name() string { return "fake" }
func (f *fakeProvider) Capabilities() providers.Capabilities {
	return providers.Capabilities{RefundAPI: true}
}
func (f *fakeProvider) Refund(_ context.Context, req providers.RefundRequest) (providers.Result, error) {
	f.mu.Lock()
	f.calls, f.keys = append(f.calls, "refund"), append(f.keys, req.IdempotencyKey)
	f.mu.Unlock()
	return f.refund()
}
func (f *fakeProvider) RefundStatus(_ context.Context, l providers.Lookup) (providers.Result, error) {
	f.mu.Lock()
	f.calls, f.lookups = append(f.calls, "lookup"), append(f.lookups, l)
	f.mu.Unlock()
	return f.find(l)
}
func (f *fakeProvider) Payout(context.Context, providers.PayoutRequest) (providers.Result, error) {
	return providers.Result{}, providers.ErrUnsupported
}
func (f *fakeProvider) PayoutStatus(context.Context, providers.Lookup) (providers.Result, error) {
	return providers.Result{}, providers.ErrUnsupported
}
func (f *fakeProvider) ParseCallback(http.Header, []byte) (providers.CallbackEvent, error) {
	return providers.CallbackEvent{}, providers.ErrIgnoredCallback
}

// pendingRefund writes a PENDING refund on the fake provider and returns
// the activities' plan for it.
func pendingRefund(t *testing.T, acts *activities.Activities) activities.RefundPlan {
	t.Helper()
	ctx := context.Background()
	st := testenv.Get(t).Store
	p := testenv.NewPayment(t, st, "fake", 5000, nil)
	r, err := st.CreateRefund(ctx, refund.NewRefund{MerchantID: p.Merchant.ID, TransactionID: p.Tx.ID, Amount: 1200,
		Route: testenv.ProviderRefunds})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := acts.BeginRefund(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// submit runs SubmitRefund as the worker would.
func submit(t *testing.T, acts *activities.Activities, req activities.SubmitRequest) (activities.SubmitResult, error) {
	t.Helper()
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(acts)
	val, err := env.ExecuteActivity(acts.SubmitRefund, req)
	var res activities.SubmitResult
	if err == nil {
		err = val.Get(&res)
	}
	return res, err
}

// errType is the Temporal error type of an activity error ("" for none).
func errType(err error) (string, bool) {
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) {
		return "", false
	}
	return appErr.Type(), appErr.NonRetryable()
}

// TestSubmitRefundOutcomeRules: a rejection ends a refund only on its first
// send; every later send looks the refund up first and never sends blind;
// 401/403 are never final; the idempotency key is the refund id.
func TestSubmitRefundOutcomeRules(t *testing.T) {
	invalid := providers.Invalid("amount_too_large", "the amount exceeds the charge")
	notFound := func(providers.Lookup) (providers.Result, error) { return providers.Result{}, providers.ErrNotFound }
	for _, tc := range []struct {
		name         string
		refund       func() (providers.Result, error)
		find         func(providers.Lookup) (providers.Result, error)
		knownRef     string
		wantSecond   string // error type of the second send ("": any that is not final)
		wantCalls    []string
		wantStatus   providers.Status
		retryable    bool
		firstIsFinal bool
	}{
		{name: "a rejection is final on the first send only", refund: func() (providers.Result, error) { return providers.Result{}, invalid },
			find: notFound, wantSecond: activities.ErrTypeOutcomeUnknown, retryable: true, firstIsFinal: true,
			wantCalls: []string{"refund", "lookup", "refund"}},
		{name: "a later send finds the refund instead of sending it", refund: func() (providers.Result, error) {
			return providers.Result{}, providers.Retryable("network", "timeout", nil)
		}, find: func(providers.Lookup) (providers.Result, error) {
			return providers.Result{Status: providers.StatusSucceeded, ProviderReference: "re_1"}, nil
		}, wantStatus: providers.StatusSucceeded, wantCalls: []string{"refund", "lookup"}},
		{name: "a known reference is never sent again, even when not found", refund: func() (providers.Result, error) {
			return providers.Result{}, providers.Retryable("network", "timeout", nil)
		}, find: notFound, knownRef: "re_known", wantSecond: "", retryable: true, wantCalls: []string{"refund", "lookup"}},
		{name: "credentials refused are never final", refund: func() (providers.Result, error) {
			return providers.Result{}, &providers.Error{Kind: providers.KindAuth, Code: "unauthorized", HTTPStatus: 401}
		}, find: notFound, wantSecond: activities.ErrTypeProviderAuth, wantCalls: []string{"refund", "lookup", "refund"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeProvider{refund: tc.refund, find: tc.find}
			acts := &activities.Activities{Store: worker.ActivityStore(testenv.Get(t).Store), Providers: providers.RegistryOf(fake)}
			plan := pendingRefund(t, acts)
			if plan.Submit.Refund.IdempotencyKey != plan.RefundID.String() {
				t.Fatalf("idempotency key %q, want the refund id %s", plan.Submit.Refund.IdempotencyKey, plan.RefundID)
			}
			_, err := submit(t, acts, plan.Submit)
			typ, nonRetryable := errType(err)
			if tc.firstIsFinal != (typ == activities.ErrTypeInvalid && nonRetryable) {
				t.Fatalf("first send: %v (type %q), want final %t", err, typ, tc.firstIsFinal)
			}
			if tc.name == "credentials refused are never final" && (typ != activities.ErrTypeProviderAuth || !nonRetryable) {
				t.Fatalf("first send refused 401: %v, want %s, non-retryable (stuck at once)", err, activities.ErrTypeProviderAuth)
			}
			req := plan.Submit
			req.ProviderReference = tc.knownRef
			res, err := submit(t, acts, req)
			typ, nonRetryable = errType(err)
			switch {
			case tc.wantStatus != "":
				if err != nil || res.Status != tc.wantStatus {
					t.Fatalf("second send: %+v, %v, want %s", res, err, tc.wantStatus)
				}
			case err == nil:
				t.Fatalf("second send: %+v, want an error", res)
			case (tc.wantSecond != "" && typ != tc.wantSecond) || (tc.retryable && nonRetryable):
				t.Fatalf("second send: %v (type %q, non-retryable %t), want type %q retryable %t", err, typ, nonRetryable, tc.wantSecond, tc.retryable)
			}
			if typ == activities.ErrTypeInvalid || typ == activities.ErrTypeDeclined {
				t.Fatalf("second send ended the refund: %v", err)
			}
			if got := fake.calls; len(got) != len(tc.wantCalls) || !equal(got, tc.wantCalls) {
				t.Fatalf("calls %v, want %v", got, tc.wantCalls)
			}
			for _, k := range fake.keys {
				if k != plan.RefundID.String() {
					t.Fatalf("sent with key %q, want the refund id", k)
				}
			}
			for _, l := range fake.lookups {
				if l.RefundID != plan.RefundID.String() || l.ProviderReference != tc.knownRef {
					t.Fatalf("looked up %+v, want the refund id and reference %q", l, tc.knownRef)
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}
