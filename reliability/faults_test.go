package reliability_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
)

// TestProviderFaultsAtVolume sends refunds on all five sandbox providers
// through a proxy that injects 5xx, 429 with Retry-After, timeouts (held
// past the connectors' timeout, then processed) and lost answers (processed,
// answer cut), on top of the sandbox's own outcomes (declines, transient
// 5xx, lost first answer, asynchronous success and failure, invalid
// payment). Every provider callback is duplicated at once and replayed
// after the refunds finished. Each refund must end exactly as its outcome
// says, whatever the faults, with one refund at the provider.
func TestProviderFaultsAtVolume(t *testing.T) {
	sc := begin(t, "7. Provider faults at volume")
	ctx := context.Background()
	const timeout = 1500 * time.Millisecond
	var fp *rig.FaultProxy
	echo := rig.NewCallbackEcho()
	// Creates: each refund's first requests follow one of these sequences, in turn.
	const f5, f4, ft, fl = rig.Fault5xx, rig.Fault429, rig.FaultTimeout, rig.FaultLost
	creates := rig.CycleFaults([][]rig.Fault{{}, {f5}, {f5, f5}, {f4}, {ft}, {fl}, {fl, f5}, {f4, ft}, {}})
	// Status look-ups: random 5xx, 429 and lost answers on their first two tries.
	lookups := rig.RandomFaults(uint64(time.Now().UnixNano()), rig.FaultMix{MaxAttempts: 2,
		Rates: map[rig.Fault]float64{f5: 0.2, f4: 0.05, fl: 0.1}})
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{ProviderTimeout: timeout,
		ProviderProxy: func(next http.Handler) http.Handler {
			fp = rig.NewFaultProxy(next, rig.Plans(creates, lookups), timeout+time.Second)
			return fp
		},
		APIProxy: echo.Wrap}})
	echo.SetAPIURL(r.APIURL)
	m := newMerchant(t, r)
	c := r.Client(m)

	// The sandbox's outcome controls, by amount % 100, and what each must end as.
	outcomes := []struct {
		suffix int64
		want   refund.Status
	}{
		{0, refund.StatusSucceeded}, {1, refund.StatusDeclined}, {2, refund.StatusSucceeded}, {3, refund.StatusSucceeded},
		{4, refund.StatusSucceeded}, {5, refund.StatusFailed}, {7, refund.StatusSucceeded}, {50, refund.StatusSucceeded},
	}
	type job struct {
		provider int
		amount   int64
		want     refund.Status
		missing  bool // the payment does not exist at the provider: an invalid request
	}
	var jobs []job
	for i := range 90 {
		o := outcomes[i%len(outcomes)]
		jobs = append(jobs, job{provider: i % len(rig.Providers), amount: 1000 + 100*int64(i/len(outcomes)) + o.suffix, want: o.want})
	}
	for i := range 5 { // refund APIs only: payouts do not look the payment up
		jobs = append(jobs, job{provider: i % 3, amount: 2000, want: refund.StatusFailed, missing: true})
	}
	// One big transaction per provider (and one per missing payment).
	txs := map[int]rig.Transaction{}
	for p := range rig.Providers {
		fields := map[string]any{"amount": 50_000_000}
		for k, v := range rig.Providers[p].Fields {
			fields[k] = v
		}
		txs[p] = must[rig.Transaction](t)(c.CreateTransaction(ctx, fields))
	}
	ids := make([]string, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			tx := txs[j.provider]
			if j.missing {
				fields := map[string]any{"providerReference": "missing-" + uuid.NewString()[:8]}
				for k, v := range rig.Providers[j.provider].Fields {
					fields[k] = v
				}
				var err error
				if tx, err = c.CreateTransaction(ctx, fields); err != nil {
					t.Error(err)
					return
				}
			}
			id, err := c.Refund(ctx, tx, j.amount)
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sc.refunds = len(jobs)
	// A missing payment's rejection that follows a faulted attempt leaves the
	// outcome unknown (SPEC §12): the refund waits, stuck, until on-call
	// asks the provider and resolves it.
	resolved := 0
	err := rig.Poll(ctx, 120*time.Second, "every refund final", func(ctx context.Context) (bool, error) {
		n, err := r.ResolveUnknown(ctx, m.ID)
		resolved += n
		if err != nil {
			return false, err
		}
		live, err := rig.Live(ctx, r.Store, m.ID)
		return live == 0, err
	})
	if err != nil {
		t.Fatal(err)
	}
	fp.Wait() // held requests have reached the provider
	got := map[refund.Status]int{}
	for i, j := range jobs {
		o := must[refund.Object](t)(c.GetRefund(ctx, ids[i]))
		got[o.Status]++
		if o.Status != j.want {
			t.Errorf("refund %s of %d on %s (missing payment %t) ended %s, want %s (failure %+v)",
				ids[i], j.amount, rig.Providers[j.provider].Name, j.missing, o.Status, j.want, o.Failure)
		}
	}
	late, err := echo.Replay(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dup, _ := echo.Counts()
	inj := fp.Injected()
	for _, f := range []rig.Fault{rig.Fault5xx, rig.Fault429, rig.FaultTimeout, rig.FaultLost} {
		if inj[f] == 0 {
			t.Errorf("no %s fault was injected: %v", f, inj)
		}
	}
	if dup == 0 {
		t.Error("no provider callback was duplicated")
	}
	sc.inject("proxy faults on create (cycling none/5xx/5xx×2/429/timeout/lost/lost+5xx/429+timeout) and status requests: %s; sandbox outcomes declined/transient 5xx/lost first answer/429/async success/async failure; 5 invalid payments; %d callbacks duplicated, %d replayed late",
		fp.Describe(), dup, late)
	sc.verified("each refund ended as its outcome says (%s); %d missing payments rejected after a faulted attempt waited stuck (unknown outcome) until resolved by ops",
		statusList(got), resolved)
	// The late callbacks changed nothing.
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}
