package rig

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// SoakOptions configure a soak run.
type SoakOptions struct {
	Pool     *pgxpool.Pool
	Rig      RigOptions // Store, Temporal, TaskQueue and Logger are required; faults and callbacks are added
	Duration time.Duration
	Clients  int // concurrent API clients; default 8
	// MaxLive holds the clients back while more refunds than this are
	// PENDING or PROCESSING, so the load suits the machine; default 60.
	MaxLive   int
	Merchants int    // default 3
	Seed      uint64 // default: time-based
	// Progress receives one line every ProgressEvery (default 10s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Drain bounds the wait for every refund to end after the load stops; default 2m.
	Drain time.Duration
}

// SoakResult is what a soak did and found.
type SoakResult struct {
	Requests       int64
	Accepted       int64
	ServerErrors   int64 // API answers >= 500 other than 503 service.unavailable
	Unexpected     []string
	WorkerRestarts int64
	Terminations   int64 // refund workflows terminated mid-refund (the reconciler resumes them)
	Resumed        int64 // refund workflows the reconciler resumed
	Registrations  int64 // concurrent registrations of one payment, each answered by one transaction
	Outages        int64 // provider outage windows
	Faults         string
	Callbacks      int // duplicated
	Late           int // replayed late
	Invariants     invariants.Report
	Elapsed        time.Duration
}

// OK reports whether the soak found nothing wrong.
func (r SoakResult) OK() bool {
	return r.Invariants.OK() && r.ServerErrors == 0 && len(r.Unexpected) == 0
}

type soak struct {
	o      SoakOptions
	rig    *Rig
	faults *FaultProxy
	echo   *CallbackEcho
	hooks  *flakyReceiver
	rng    *rand.Rand
	rngMu  sync.Mutex

	merchants []Merchant
	txMu      sync.Mutex
	txs       map[uuid.UUID][]Transaction // live transactions per merchant
	recent    []recentRefund

	outageOn                                            atomic.Bool
	live                                                atomic.Int64
	requests, accepted, serverErrors, restarts, outages atomic.Int64
	terminations, resumed, registrations                atomic.Int64
	unexpMu                                             sync.Mutex
	unexpected                                          []string
}

type recentRefund struct {
	m  Merchant
	id string
}

// Soak runs mixed load with random faults for o.Duration, drains, and
// checks the invariants. Faults: provider 5xx, 429, timeouts and lost
// answers on the first tries of each request, 409 on retried creates, 401 on
// status checks, whole-provider outages, duplicate and late callbacks, worker
// restarts, refund workflows terminated mid-refund (the reconciler resumes
// them) and a flaky webhook receiver. Load: refunds on every provider with
// every sandbox outcome but "never completes", over-refund races,
// idempotency-key races, one payment registered concurrently, cancels, reads.
func Soak(ctx context.Context, o SoakOptions) (SoakResult, error) {
	if o.Clients <= 0 {
		o.Clients = 8
	}
	if o.Merchants <= 0 {
		o.Merchants = 3
	}
	if o.MaxLive <= 0 {
		o.MaxLive = 60
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.Drain <= 0 {
		o.Drain = 2 * time.Minute
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	s := &soak{o: o, rng: rand.New(rand.NewPCG(o.Seed, o.Seed>>1|1)), txs: map[uuid.UUID][]Transaction{}, echo: NewCallbackEcho()}
	start := time.Now()
	ro := o.Rig
	ro.ProviderTimeout = 2 * time.Second
	ro.ProviderProxy = func(next http.Handler) http.Handler {
		creates := FaultMix{MaxAttempts: 2, Rates: map[Fault]float64{Fault5xx: 0.08, Fault429: 0.04, FaultTimeout: 0.02, FaultLost: 0.05}}
		checks := FaultMix{MaxAttempts: 2, Rates: map[Fault]float64{Fault5xx: 0.08, Fault429: 0.04, FaultLost: 0.05, Fault401: 0.05}}
		plan := Plans(retried409(RandomFaults(o.Seed, creates)), RandomFaults(o.Seed^1, checks))
		s.faults = NewFaultProxy(next, outagePlan(&s.outageOn, plan), 3*time.Second)
		return s.faults
	}
	ro.APIProxy = s.echo.Wrap
	if ro.WebhookPolicy == nil {
		ro.WebhookPolicy = &activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
			MaximumInterval: 2 * time.Second, GiveUpAfter: time.Hour, AttemptTimeout: 3 * time.Second}
	}
	rig, err := StartRig(ro)
	if err != nil {
		return SoakResult{}, err
	}
	defer rig.Close()
	s.rig = rig
	s.echo.SetAPIURL(rig.APIURL)
	s.hooks = newFlakyReceiver(o.Seed)
	defer s.hooks.srv.Close()
	for range o.Merchants {
		m, err := rig.NewMerchant(ctx, nil)
		if err != nil {
			return SoakResult{}, err
		}
		r, err := rig.Client(m).Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": s.hooks.srv.URL + "/hooks"})
		if err != nil || r.Status != http.StatusCreated {
			return SoakResult{}, fmt.Errorf("create webhook endpoint: %v %d %s", err, r.Status, r.Body)
		}
		s.merchants = append(s.merchants, m)
	}

	loadCtx, stopLoad := context.WithTimeout(ctx, o.Duration)
	defer stopLoad()
	var wg sync.WaitGroup
	for range o.Clients {
		wg.Add(1)
		go func() { defer wg.Done(); s.client(loadCtx) }()
	}
	wg.Add(4)
	go func() { defer wg.Done(); s.reconcile(loadCtx) }()
	go func() { defer wg.Done(); s.watchLive(loadCtx) }()
	go func() { defer wg.Done(); s.chaos(loadCtx) }()
	go func() { defer wg.Done(); s.progress(loadCtx, start) }()
	wg.Wait()
	if ctx.Err() != nil {
		return s.result(start), ctx.Err()
	}
	// Drain: faults stay on (bounded per request), outages end, the worker runs.
	s.outageOn.Store(false)
	if err := rig.StartWorker(); err != nil {
		return s.result(start), err
	}
	ids := make([]uuid.UUID, len(s.merchants))
	for i, m := range s.merchants {
		ids[i] = m.ID
	}
	fmt.Fprintf(o.Progress, "load stopped after %s; draining (up to %s)\n", time.Since(start).Round(time.Second), o.Drain)
	err = Poll(ctx, o.Drain, "every refund final", func(ctx context.Context) (bool, error) {
		s.reconcileOnce(ctx) // resumes what the last terminations closed
		n, err := Live(ctx, rig.Store, ids...)
		return n == 0, err
	})
	if err != nil {
		s.unexpectedf("drain: %v", err)
	}
	if _, err := s.echo.Replay(ctx); err != nil {
		s.unexpectedf("late callbacks: %v", err)
	}
	s.faults.Wait()
	// Webhooks drain too: wait until the checker finds every event delivered.
	check := invariants.Options{Merchants: ids, Provider: rig.Sandbox, Temporal: rig.Temporal, WorkflowGrace: 5 * time.Second,
		Webhooks: true, WebhookGrace: time.Second}
	var rep invariants.Report
	err = Poll(ctx, o.Drain, "webhooks delivered and invariants hold", func(ctx context.Context) (bool, error) {
		var err error
		rep, err = invariants.Check(ctx, o.Pool, check)
		return err == nil && rep.OK(), err
	})
	res := s.result(start)
	res.Invariants = rep
	if err != nil && rep.Refunds == 0 {
		return res, err
	}
	return res, nil
}

func (s *soak) result(start time.Time) SoakResult {
	dup, late := s.echo.Counts()
	s.unexpMu.Lock()
	defer s.unexpMu.Unlock()
	return SoakResult{Requests: s.requests.Load(), Accepted: s.accepted.Load(), ServerErrors: s.serverErrors.Load(),
		Unexpected: append([]string(nil), s.unexpected...), WorkerRestarts: s.restarts.Load(), Outages: s.outages.Load(),
		Terminations: s.terminations.Load(), Resumed: s.resumed.Load(), Registrations: s.registrations.Load(),
		Faults: s.faults.Describe(), Callbacks: dup, Late: late, Elapsed: time.Since(start)}
}

func (s *soak) unexpectedf(format string, args ...any) {
	s.unexpMu.Lock()
	defer s.unexpMu.Unlock()
	if len(s.unexpected) < 50 {
		s.unexpected = append(s.unexpected, fmt.Sprintf(format, args...))
	}
}

func (s *soak) intn(n int) int {
	s.rngMu.Lock()
	defer s.rngMu.Unlock()
	return s.rng.IntN(n)
}

// outageOn makes every provider request fail with 5xx while set.
func outagePlan(on *atomic.Bool, next FaultPlan) FaultPlan {
	return func(r *http.Request, attempt int) Fault {
		if on.Load() {
			return Fault5xx
		}
		return next(r, attempt)
	}
}

// retried409 answers 409 (duplicate request) to the second attempt of a
// create whose first attempt next chose to lose after processing: the
// provider has the refund, the retry is told it is a duplicate.
func retried409(next FaultPlan) FaultPlan {
	var mu sync.Mutex
	lost := map[string]bool{}
	return func(r *http.Request, attempt int) Fault {
		key := r.Header.Get("Idempotency-Key")
		f := next(r, attempt)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case attempt == 1 && f == FaultLost:
			lost[key] = true
		case attempt == 2 && lost[key]:
			return Fault409
		}
		return f
	}
}

// reconcile runs the reconciler's pass every few seconds, as its schedule
// does every minute in production.
func (s *soak) reconcile(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(3 * time.Second):
		}
		s.reconcileOnce(ctx)
	}
}

func (s *soak) reconcileOnce(ctx context.Context) {
	rep, err := s.rig.Activities.Reconcile(ctx)
	s.resumed.Add(int64(rep.WorkflowsResumed))
	if err != nil && ctx.Err() == nil {
		s.unexpectedf("reconcile: %v", err)
	}
}

// terminate terminates the workflow of a recent refund still in progress,
// as an operator's mistake would.
func (s *soak) terminate(ctx context.Context) {
	s.txMu.Lock()
	if len(s.recent) == 0 {
		s.txMu.Unlock()
		return
	}
	rr := s.recent[s.intn(len(s.recent))]
	s.txMu.Unlock()
	r, err := s.rig.Store.GetRefund(ctx, refund.OfMerchant(rr.m.ID), uuid.MustParse(rr.id))
	if err != nil || r.Status.Final() {
		return
	}
	if err := s.rig.Temporal.TerminateWorkflow(ctx, workflows.RefundWorkflowID(r.ID), "", "soak: terminated mid-refund"); err == nil {
		s.terminations.Add(1)
	}
}

// chaos restarts the worker, takes the providers down and terminates refund
// workflows, at random.
func (s *soak) chaos(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(5+s.intn(10)) * time.Second):
		}
		switch s.intn(3) {
		case 0: // a deploy: the worker goes away for a moment
			s.rig.StopWorker()
			time.Sleep(time.Duration(s.intn(2000)) * time.Millisecond)
			if err := s.rig.StartWorker(); err != nil {
				s.unexpectedf("restart worker: %v", err)
			}
			s.restarts.Add(1)
		case 1: // every provider answers 5xx for a few seconds
			s.outageOn.Store(true)
			s.outages.Add(1)
			time.Sleep(time.Duration(1+s.intn(4)) * time.Second)
			s.outageOn.Store(false)
		case 2:
			for range 1 + s.intn(3) {
				s.terminate(ctx)
			}
		}
	}
}

func (s *soak) progress(ctx context.Context, start time.Time) {
	t := time.NewTicker(s.o.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		live := s.live.Load()
		dup, _ := s.echo.Counts()
		fmt.Fprintf(s.o.Progress, "[%s/%s] requests %d, refunds accepted %d, live %d, faults %d, outages %d, worker restarts %d, workflows terminated %d (resumed %d), callbacks duplicated %d, API 5xx %d\n",
			time.Since(start).Round(time.Second), s.o.Duration, s.requests.Load(), s.accepted.Load(), live, s.faults.Total(),
			s.outages.Load(), s.restarts.Load(), s.terminations.Load(), s.resumed.Load(), dup, s.serverErrors.Load())
	}
}

func (s *soak) merchantIDs() []uuid.UUID {
	out := make([]uuid.UUID, len(s.merchants))
	for i, m := range s.merchants {
		out[i] = m.ID
	}
	return out
}

// do sends one request and classifies the answer; 5xx other than a
// transient 503 is a finding.
func (s *soak) do(ctx context.Context, c *Client, method, path string, body any, headers ...string) (Response, bool) {
	s.requests.Add(1)
	r, err := c.Do(ctx, method, path, body, headers...)
	if err != nil {
		if ctx.Err() == nil {
			s.unexpectedf("%s %s: %v", method, path, err)
		}
		return r, false
	}
	if r.Status >= 500 {
		if p, ok := r.Problem(); !ok || r.Status != http.StatusServiceUnavailable || p.Code != "service.unavailable" {
			s.serverErrors.Add(1)
			s.unexpectedf("%s %s: %d %s", method, path, r.Status, truncate(r.Body, 300))
		}
	}
	return r, true
}

// outcomes are the sandbox's controls the soak uses (never "06", which never completes).
var outcomes = []int64{0, 0, 0, 10, 1, 2, 3, 4, 5, 7}

// watchLive keeps s.live current for the clients' back-pressure.
func (s *soak) watchLive(ctx context.Context) {
	for ctx.Err() == nil {
		if n, err := Live(ctx, s.rig.Store, s.merchantIDs()...); err == nil {
			s.live.Store(int64(n))
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (s *soak) client(ctx context.Context) {
	for ctx.Err() == nil {
		if s.live.Load() > int64(s.o.MaxLive) {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		m := s.merchants[s.intn(len(s.merchants))]
		c := s.rig.Client(m)
		switch x := s.intn(100); {
		case x < 55:
			s.refund(ctx, c, m)
		case x < 65:
			s.overRefundRace(ctx, c, m)
		case x < 75:
			s.idempotencyRace(ctx, c, m)
		case x < 78:
			s.cancel(ctx, c)
		case x < 80:
			s.registrationRace(ctx, c)
		default:
			s.read(ctx, c)
		}
	}
}

// transaction returns a live transaction of m on a random provider, creating one when needed.
func (s *soak) transaction(ctx context.Context, c *Client, m Merchant) (Transaction, bool) {
	s.txMu.Lock()
	txs := s.txs[m.ID]
	if len(txs) >= 10 {
		tx := txs[s.intn(len(txs))]
		s.txMu.Unlock()
		return tx, true
	}
	s.txMu.Unlock()
	p := Providers[s.intn(len(Providers))]
	fields := map[string]any{"amount": 200_000 + s.intn(200_000)}
	for k, v := range p.Fields {
		fields[k] = v
	}
	s.requests.Add(2)
	tx, err := c.CreateTransaction(ctx, fields)
	if err != nil {
		if ctx.Err() == nil {
			s.unexpectedf("create transaction: %v", err)
		}
		return tx, false
	}
	s.txMu.Lock()
	s.txs[m.ID] = append(s.txs[m.ID], tx)
	s.txMu.Unlock()
	return tx, true
}

func (s *soak) retire(m Merchant, tx Transaction) {
	s.txMu.Lock()
	defer s.txMu.Unlock()
	txs := s.txs[m.ID]
	for i, t := range txs {
		if t.ID == tx.ID {
			s.txs[m.ID] = append(txs[:i], txs[i+1:]...)
			return
		}
	}
}

func (s *soak) refund(ctx context.Context, c *Client, m Merchant) {
	tx, ok := s.transaction(ctx, c, m)
	if !ok {
		return
	}
	amount := int64(100*(1+s.intn(30))) + outcomes[s.intn(len(outcomes))]
	r, ok := s.do(ctx, c, "POST", "/v1/refunds", RefundBody(tx, amount), "Idempotency-Key", uuid.NewString())
	if !ok {
		return
	}
	s.afterCreate(m, tx, r)
}

func (s *soak) afterCreate(m Merchant, tx Transaction, r Response) {
	switch r.Status {
	case http.StatusAccepted:
		s.accepted.Add(1)
		var o refund.Object
		if r.Decode(&o) == nil {
			s.txMu.Lock()
			s.recent = append(s.recent, recentRefund{m: m, id: o.TransactionID.String()})
			if len(s.recent) > 200 {
				s.recent = s.recent[len(s.recent)-200:]
			}
			s.txMu.Unlock()
		}
	case http.StatusConflict, http.StatusUnprocessableEntity:
		if p, _ := r.Problem(); p.Code == refund.CodeAmountInsufficient || p.Code == refund.CodeFullyRefunded {
			s.retire(m, tx)
		}
	}
}

// overRefundRace: 8 concurrent refunds of 300 on a fresh 1000 transaction: at most 3 fit.
func (s *soak) overRefundRace(ctx context.Context, c *Client, m Merchant) {
	p := Providers[s.intn(len(Providers))]
	fields := map[string]any{"amount": 1000}
	for k, v := range p.Fields {
		fields[k] = v
	}
	s.requests.Add(2)
	tx, err := c.CreateTransaction(ctx, fields)
	if err != nil {
		return
	}
	var n atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok := s.do(ctx, c, "POST", "/v1/refunds", RefundBody(tx, 300), "Idempotency-Key", uuid.NewString())
			if ok && r.Status == http.StatusAccepted {
				n.Add(1)
				s.afterCreate(m, tx, r)
			}
		}()
	}
	wg.Wait()
	if n.Load() > 3 {
		s.unexpectedf("over-refund race: %d × 300 accepted on a 1000 transaction", n.Load())
	}
}

// idempotencyRace: one key sent 4 times at once: one refund.
func (s *soak) idempotencyRace(ctx context.Context, c *Client, m Merchant) {
	tx, ok := s.transaction(ctx, c, m)
	if !ok {
		return
	}
	key := uuid.NewString()
	body := RefundBody(tx, int64(100*(1+s.intn(20))))
	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok := s.do(ctx, c, "POST", "/v1/refunds", body, "Idempotency-Key", key)
			if ok && r.Status == http.StatusAccepted {
				var o refund.Object
				if r.Decode(&o) == nil {
					mu.Lock()
					first := len(ids) == 0
					ids[o.TransactionID.String()] = true
					mu.Unlock()
					if first && r.Header.Get("Idempotent-Replayed") == "" {
						s.afterCreate(m, tx, r)
					}
				}
			}
		}()
	}
	wg.Wait()
	if len(ids) > 1 {
		s.unexpectedf("idempotency race: key %s answered with %d refunds", key, len(ids))
	}
}

// registrationRace: one payment registered 4 times at once: one transaction.
func (s *soak) registrationRace(ctx context.Context, c *Client) {
	var sess struct{ SessionID string }
	r, ok := s.do(ctx, c, "POST", "/v1/sessions", map[string]any{})
	if !ok || r.Status != http.StatusCreated || r.Decode(&sess) != nil {
		return
	}
	p := Providers[s.intn(len(Providers))]
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 5000, "currency": "EUR",
		"status": "CAPTURED", "providerReference": "pay_race_" + uuid.NewString()[:8]}
	for k, v := range p.Fields {
		body[k] = v
	}
	ids := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, ok := s.do(ctx, c, "POST", "/v1/transactions", body)
			var tx struct{ TransactionID string }
			if ok && (r.Status == http.StatusCreated || r.Status == http.StatusOK) && r.Decode(&tx) == nil {
				mu.Lock()
				ids[tx.TransactionID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(ids) > 1 {
		s.unexpectedf("one payment registered as %d transactions", len(ids))
	}
	s.registrations.Add(1)
}

func (s *soak) cancel(ctx context.Context, c *Client) {
	s.txMu.Lock()
	if len(s.recent) == 0 {
		s.txMu.Unlock()
		return
	}
	rr := s.recent[s.intn(len(s.recent))]
	s.txMu.Unlock()
	r, ok := s.do(ctx, s.rig.Client(rr.m), "POST", "/v1/refunds/"+rr.id+"/cancel", nil, "Idempotency-Key", uuid.NewString())
	if ok && r.Status != http.StatusOK && r.Status != http.StatusConflict && r.Status != http.StatusServiceUnavailable {
		s.unexpectedf("cancel %s: %d %s", rr.id, r.Status, truncate(r.Body, 200))
	}
}

func (s *soak) read(ctx context.Context, c *Client) {
	s.txMu.Lock()
	var rr *recentRefund
	if len(s.recent) > 0 {
		x := s.recent[s.intn(len(s.recent))]
		rr = &x
	}
	s.txMu.Unlock()
	if rr == nil {
		s.do(ctx, c, "GET", "/v1/refunds?limit=10", nil)
		return
	}
	r, ok := s.do(ctx, s.rig.Client(rr.m), "GET", "/v1/refunds/"+rr.id, nil)
	if ok && r.Status != http.StatusOK {
		s.unexpectedf("GET refund %s: %d %s", rr.id, r.Status, truncate(r.Body, 200))
	}
}

// flakyReceiver is a webhook receiver that answers 503 one time in five.
type flakyReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	rng *rand.Rand
}

func newFlakyReceiver(seed uint64) *flakyReceiver {
	f := &flakyReceiver{rng: rand.New(rand.NewPCG(seed^0xabcdef, seed))}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		f.mu.Lock()
		fail := f.rng.IntN(5) == 0
		f.mu.Unlock()
		if fail {
			http.Error(w, "flaky receiver", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	return f
}
