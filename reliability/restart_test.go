package reliability_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
)

// TestTemporalRestartedWithRefundsInFlight kills this test's own Temporal
// (the dev server on a WAL file database, or temporal-server on Postgres when
// the run uses it) while refunds are being submitted, retried and awaiting
// asynchronous outcomes, keeps it down while provider callbacks fail, and
// starts it again on the same data and ports.
func TestTemporalRestartedWithRefundsInFlight(t *testing.T) {
	sc := begin(t, "5. "+ownTemporal()+" restarted with refunds in flight")
	ctx := context.Background()
	ts := startTemporalServer(t)
	tc := ts.dial(t)
	var callbacks atomic.Int64 // provider callbacks that reached the API
	countCallbacks := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.HasPrefix(req.URL.Path, "/v1/provider-callbacks/") {
				callbacks.Add(1)
			}
			next.ServeHTTP(w, req)
		})
	}
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{Temporal: tc, AsyncDelay: 3 * time.Second, APIProxy: countCallbacks}})
	m := newMerchant(t, r)
	c := r.Client(m)

	// Outcomes by amount % 100: immediate, async success (callback after 3s), transient 5xx, 429, answer lost, async failure.
	suffixes := []int64{0, 4, 2, 7, 3, 5, 4, 10}
	const n = 24
	var ids []string
	want := map[string]refund.Status{}
	for i := range n {
		p := rig.Providers[i%len(rig.Providers)]
		tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, p.Fields))
		s := suffixes[i%len(suffixes)]
		id := must[string](t)(c.Refund(ctx, tx, 1000+100*int64(i)+s))
		ids = append(ids, id)
		want[id] = refund.StatusSucceeded
		if s == 5 {
			want[id] = refund.StatusFailed
		}
	}
	sc.refunds = n
	// Kill it while the first refunds are still moving.
	live := must[int](t)(rig.Live(ctx, r.Store, m.ID))
	ts.kill()
	down := time.Now()
	// While it is down the API says so, and callbacks of the asynchronous outcomes fail (the sandbox gives up after 5 tries).
	resp := must[rig.Response](t)(rig.NewClient(r.APIURL, "").Do(ctx, "GET", "/readyz", nil))
	if resp.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Temporal down: %d %s", resp.Status, resp.Body)
	}
	seen := callbacks.Load()
	err := rig.Poll(ctx, 30*time.Second, "a provider callback arriving while Temporal is down", func(context.Context) (bool, error) {
		return callbacks.Load() > seen, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.start(t)
	outage := time.Since(down)
	sc.inject("SIGKILL of the %s with %d of %d refunds still live; down %s (%d provider callbacks arrived meanwhile); restarted on the same %s",
		ownTemporal(), live, n, outage.Round(100*time.Millisecond), callbacks.Load()-seen, ts.data())

	if err := rig.WaitSettled(ctx, r.Store, 90*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got := must[refund.Object](t)(c.GetRefund(ctx, id))
		if got.Status != want[id] {
			t.Errorf("refund %s (%d) is %s, want %s", id, got.RefundValue.Amount, got.Status, want[id])
		}
	}
	st := r.Sandbox.Stats()
	failed := 0
	for _, w := range want {
		if w == refund.StatusFailed {
			failed++
		}
	}
	sc.verified("every refund reached its expected outcome (%d asynchronous failures FAILED, the rest SUCCEEDED); %d callbacks acknowledged, %d given up by the provider",
		failed, st.CallbacksSent, st.CallbacksFailed)
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, tc, m))
}

// TestPostgresRestartedUnderLoad crashes this test's own Postgres
// (pg_ctl -m immediate) while clients create and read refunds: the API
// answers 503 service.unavailable (never 500) while it is down, recovers by
// itself, every accepted refund completes, and the invariants hold.
func TestPostgresRestartedUnderLoad(t *testing.T) {
	sc := begin(t, "6. Postgres restarted under load")
	ctx := context.Background()
	pg := startPostgres(t)
	pool, _ := pg.database(t, "bf_reliability_pgrestart")
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{Store: store.New(pool)}})
	m := newMerchant(t, r)
	c := r.Client(m)
	var txs []rig.Transaction
	for _, p := range rig.Providers {
		fields := map[string]any{"amount": 50_000_000}
		for k, v := range p.Fields {
			fields[k] = v
		}
		txs = append(txs, must[rig.Transaction](t)(c.CreateTransaction(ctx, fields)))
	}

	type outcome struct {
		mu          sync.Mutex
		accepted    map[string]string // idempotency key → refund id
		unresolved  map[string]bool   // keys whose request never got a final answer
		codes       map[string]int    // "503 service.unavailable", ...
		unavailable []string          // sample 503 details
		bad         []string          // any 500 or malformed error
	}
	o := &outcome{accepted: map[string]string{}, unresolved: map[string]bool{}, codes: map[string]int{}}
	record := func(what string, resp rig.Response) {
		o.mu.Lock()
		defer o.mu.Unlock()
		p, isProblem := resp.Problem()
		label := fmt.Sprintf("%d", resp.Status)
		if isProblem {
			label += " " + p.Code
		}
		o.codes[label]++
		switch {
		case resp.Status >= 500 && (!isProblem || resp.Status != http.StatusServiceUnavailable || p.Code != server.CodeUnavailable || p.Detail == ""):
			o.bad = append(o.bad, fmt.Sprintf("%s: %d %s", what, resp.Status, resp.Body))
		case resp.Status == http.StatusServiceUnavailable && len(o.unavailable) < 3:
			o.unavailable = append(o.unavailable, p.Detail)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := seq.Add(1)
				tx := txs[int(i)%len(txs)]
				amount := 1000 + 100*i
				if i%5 == 0 {
					amount += 4 // asynchronous outcome
				}
				key := fmt.Sprintf("pg-%d-%s", w, uuid.NewString())
				body := rig.RefundBody(tx, amount)
				// Retry the same key on 503 and 409 (as a client should), a few times.
				for try := 0; ; try++ {
					resp, err := c.CreateRefund(ctx, body, key)
					if err != nil {
						t.Errorf("create refund: %v", err)
						return
					}
					record("POST /v1/refunds", resp)
					if resp.Status == http.StatusAccepted {
						var ro refund.Object
						_ = resp.Decode(&ro)
						o.mu.Lock()
						o.accepted[key] = ro.TransactionID.String()
						delete(o.unresolved, key)
						o.mu.Unlock()
						break
					}
					if (resp.Status != http.StatusServiceUnavailable && resp.Status != http.StatusConflict) || try == 20 || stop.Load() {
						o.mu.Lock()
						o.unresolved[key] = true
						o.mu.Unlock()
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				// Read back something: a refund when we have one.
				o.mu.Lock()
				id := o.accepted[key]
				o.mu.Unlock()
				if id != "" {
					resp, err := c.Do(ctx, "GET", "/v1/refunds/"+id, nil)
					if err == nil {
						record("GET /v1/refunds/{id}", resp)
					}
				}
			}
		}()
	}
	accepted := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.accepted)
	}
	if err := rig.Poll(ctx, 30*time.Second, "load before the crash", func(context.Context) (bool, error) { return accepted() >= 20, nil }); err != nil {
		t.Fatal(err)
	}
	before := accepted()
	pg.crash(t)
	down := time.Now()
	// While it is down: 503 on writes, reads and readiness.
	anon := rig.NewClient(r.APIURL, m.Key)
	err := rig.Poll(ctx, 20*time.Second, "503 from the API while Postgres is down", func(ctx context.Context) (bool, error) {
		resp, err := anon.Do(ctx, "GET", "/v1/refunds?limit=1", nil)
		if err != nil {
			return false, err
		}
		record("GET /v1/refunds", resp)
		return resp.Status == http.StatusServiceUnavailable, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp := must[rig.Response](t)(anon.Do(ctx, "GET", "/readyz", nil)); resp.Status != http.StatusServiceUnavailable {
		t.Errorf("/readyz with Postgres down: %d", resp.Status)
	}
	time.Sleep(2 * time.Second) // the outage itself: load keeps hitting the API
	pg.start(t)
	outage := time.Since(down)
	// It recovers by itself: no restart of the API or the worker.
	if err := rig.Poll(ctx, 30*time.Second, "refunds accepted again after the restart", func(context.Context) (bool, error) {
		return accepted() >= before+20, nil
	}); err != nil {
		t.Fatal(err)
	}
	stop.Store(true)
	wg.Wait()

	o.mu.Lock()
	defer o.mu.Unlock()
	for _, b := range o.bad {
		t.Errorf("bad answer while Postgres was down: %s", b)
	}
	if o.codes["503 "+server.CodeUnavailable] == 0 {
		t.Errorf("no 503 %s seen during the outage: %v", server.CodeUnavailable, o.codes)
	}
	sc.inject("pg_ctl stop -m immediate under 6 concurrent clients (create + read), down %s, restarted", outage.Round(100*time.Millisecond))
	if err := rig.WaitSettled(ctx, r.Store, 90*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	// Nothing lost: every accepted refund exists and is final; an unresolved key made at most one refund.
	for key, id := range o.accepted {
		got, err := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, key)
		if err != nil || got.ID.String() != id {
			t.Errorf("accepted refund %s (key %s) lost: %v", id, key, err)
		}
	}
	unresolvedWithRefund := 0
	for key := range o.unresolved {
		if _, err := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, key); err == nil {
			unresolvedWithRefund++
		}
	}
	all := must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID))
	sc.refunds = len(all)
	sc.verified("answers: %s; no 500; every one of %d accepted refunds kept and final; %d keys unresolved when the load stopped (%d of them committed); 503 detail: %q",
		histogram(o.codes), len(o.accepted), len(o.unresolved), unresolvedWithRefund, first(o.unavailable))
	sc.invariants(ctx, pool, invariants.Options{Merchants: []uuid.UUID{m.ID}, Provider: r.Sandbox, Temporal: r.Temporal, WorkflowGrace: 2 * time.Second})
}

// histogram renders counts as "48 × 200, 79 × 503 service.unavailable".
func histogram(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d × %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
