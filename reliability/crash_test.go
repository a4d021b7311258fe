package reliability_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/workflows"
)

// backdate makes refunds look older than the reconciler's grace (the time
// the API has to start the workflow itself).
func backdate(t *testing.T, ids []string) {
	t.Helper()
	_, err := testenv.Get(t).Pool.Exec(context.Background(),
		`UPDATE refunds SET created_at = created_at - interval '5 minutes' WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		t.Fatal(err)
	}
}

func workflowExists(t *testing.T, tc client.Client, id string) bool {
	t.Helper()
	_, err := tc.DescribeWorkflowExecution(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestAPIKilledBetweenCommitAndStart: the refund and its reservation are
// committed but the workflow never started, (a) written by the store with
// no start at all, (b) by a real API process whose Temporal is refused
// (the start fails after the commit, the API still answers 202), and (c)
// by a real API process SIGKILLed while its start hangs. The invariant
// checker sees the orphans; one reconciler pass starts each exactly once;
// every refund completes with one provider refund and no reservation left.
func TestAPIKilledBetweenCommitAndStart(t *testing.T) {
	sc := begin(t, "3. API killed between DB write and workflow start")
	ctx := context.Background()
	env := testenv.Get(t)
	r := startRig(t, rigOptions{})
	m := newMerchant(t, r)
	c := r.Client(m)
	tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, map[string]any{"amount": 1_000_000}))
	var orphans []string

	// (a) Committed by the store, never started.
	for i := range 4 {
		ref, err := r.Store.CreateRefund(ctx, refund.NewRefund{MerchantID: m.ID, TransactionID: uuid.MustParse(tx.ID), Amount: int64(1000 + 10*i),
			IdempotencyKey: "store-" + uuid.NewString(), Route: func(refund.Transaction, string) (refund.Method, error) { return refund.MethodProviderRefund, nil }})
		if err != nil {
			t.Fatal(err)
		}
		orphans = append(orphans, ref.ID.String())
	}

	// (b) and (c): a real API process, reaching Temporal through a proxy we cut.
	proxy := startTCPProxy(t, sharedTemporalAddress())
	logFile := filepath.Join(t.TempDir(), "api.log")
	startAPI := func() (*process, *rig.Client) {
		port := rig.FreePort(t)
		cfgs, _ := json.Marshal(providers.SandboxConfigs(r.SandboxURL))
		logf, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logf.Close() })
		p := startProcess(t, logf, testenv.BackflowBinary(t), []string{"DATABASE_URL=" + env.DBURL, "TEMPORAL_ADDRESS=" + proxy.addr(),
			"BACKFLOW_TASK_QUEUE=" + r.TaskQueue, "BACKFLOW_HTTP_ADDR=127.0.0.1:" + strconv.Itoa(port),
			"BACKFLOW_PROVIDERS=" + string(cfgs), "BACKFLOW_LOG_LEVEL=ERROR", "BACKFLOW_DB_MAX_CONNS=10"}, "api")
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		waitHTTP(t, base+"/healthz", 30*time.Second)
		return p, rig.NewClient(base, m.Key)
	}
	api, ac := startAPI()

	type sent struct {
		key    string
		amount int64
		resp   rig.Response
		err    error
	}
	send := func(n int, base int64) []sent {
		out := make([]sent, n)
		var wg sync.WaitGroup
		for i := range out {
			out[i] = sent{key: "api-" + uuid.NewString(), amount: base + 10*int64(i)}
			wg.Add(1)
			go func() {
				defer wg.Done()
				out[i].resp, out[i].err = ac.CreateRefund(ctx, rig.RefundBody(tx, out[i].amount), out[i].key)
			}()
		}
		wg.Wait()
		return out
	}

	// (b) Temporal refuses every connection: the start fails after the commit.
	proxy.setMode("refuse")
	refused := send(5, 2000)
	for _, s := range refused {
		if s.err != nil || s.resp.Status != http.StatusAccepted {
			t.Fatalf("with Temporal refused the API answered %v %d %s, want 202 (the refund is committed)", s.err, s.resp.Status, s.resp.Body)
		}
		var o refund.Object
		if err := s.resp.Decode(&o); err != nil {
			t.Fatal(err)
		}
		if workflowExists(t, env.Temporal, o.TransactionID.String()) {
			t.Fatalf("refund %s has a workflow although Temporal was unreachable", o.TransactionID)
		}
		orphans = append(orphans, o.TransactionID.String())
	}
	if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), "the reconciler will retry") {
		t.Errorf("the API did not log the failed start clearly; its log:\n%s", log)
	}

	// (c) Temporal holds every connection: the start hangs; the API is SIGKILLed once the refunds are committed.
	proxy.setMode("hold")
	var killed []sent
	done := make(chan struct{})
	go func() { killed = send(5, 3000); close(done) }()
	// The senders' keys are only known inside send: wait for 5 more committed refunds instead.
	err := rig.Poll(ctx, 30*time.Second, "5 refunds committed behind a hanging start", func(ctx context.Context) (bool, error) {
		rs, err := rig.Refunds(ctx, r.Store, m.ID)
		return len(rs) >= len(orphans)+5, err
	})
	if err != nil {
		t.Fatal(err)
	}
	api.kill()
	<-done
	for _, s := range killed {
		if s.err == nil {
			t.Fatalf("request %s was answered %d although the API was killed mid-start", s.key, s.resp.Status)
		}
		got, err := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, s.key)
		if err != nil {
			t.Fatalf("refund of key %s not committed: %v", s.key, err)
		}
		orphans = append(orphans, got.ID.String())
	}
	sc.inject("4 refunds committed by the store with no start; 5 through an API process whose Temporal refused connections (start failed after commit); 5 through an API process SIGKILLed while its start hung")
	sc.refunds = len(orphans)

	// The checker sees every orphan once it is older than its grace.
	backdate(t, orphans)
	before, err := invariants.Check(ctx, r.Store.Pool(), fullCheck(r, nil, m))
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, v := range before.Violations {
		if v.Rule == invariants.RuleWorkflow && strings.Contains(v.Detail, "does not exist") {
			missing++
		}
	}
	if missing != len(orphans) {
		t.Fatalf("before reconciling, the checker found %d refunds without a workflow, want %d: %v", missing, len(orphans), before.Violations)
	}

	// A client retrying with the same key after a restart never gets a second refund.
	proxy.setMode("pass")
	_, ac = startAPI()
	for _, s := range append(refused, killed...) {
		resp := must[rig.Response](t)(ac.CreateRefund(ctx, rig.RefundBody(tx, s.amount), s.key))
		switch resp.Status {
		case http.StatusAccepted:
			var o refund.Object
			_ = resp.Decode(&o)
			if want, _ := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, s.key); o.TransactionID != want.ID {
				t.Fatalf("retry of %s answered refund %s, the key's refund is %s", s.key, o.TransactionID, want.ID)
			}
		case http.StatusConflict: // the killed request's key is still locked (stale after a minute)
			if p, _ := resp.Problem(); p.Code != server.CodeIdempotencyInFlight {
				t.Fatalf("retry of %s: %d %s", s.key, resp.Status, resp.Body)
			}
		default:
			t.Fatalf("retry of %s: %d %s", s.key, resp.Status, resp.Body)
		}
	}
	if rs := must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID)); len(rs) != len(orphans) {
		t.Fatalf("%d refunds after the retries, want %d", len(rs), len(orphans))
	}

	rep := rig.Reconcile(t, r)
	if rep.WorkflowsStarted < len(orphans) {
		t.Fatalf("the reconciler started %d workflows, want %d", rep.WorkflowsStarted, len(orphans))
	}
	if err := rig.WaitSettled(ctx, r.Store, 60*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	if again := rig.Reconcile(t, r); again.WorkflowsStarted != 0 {
		t.Fatalf("a second reconciler pass started %d workflows", again.WorkflowsStarted)
	}
	rs := must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID))
	if by := rig.CountByStatus(rs); by[refund.StatusSucceeded] != len(orphans) {
		t.Fatalf("after reconciling: %v, want %d SUCCEEDED", by, len(orphans))
	}
	sc.verified("the checker flagged all %d orphans before repair; client retries made no second refund; one reconciler pass started %d workflows, a second none",
		len(orphans), rep.WorkflowsStarted)
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}

// holdProxy holds the first create request of every idempotency key, after
// (processed) or before the provider handled it, until release; then the
// connection dies, as it would with a dead worker.
type holdProxy struct {
	next    http.Handler
	mu      sync.Mutex
	seen    map[string]bool
	held    int
	heldCh  chan struct{}
	release chan struct{}
	onHold  func(n int) bool // whether the n-th held request is processed first
	procN   int
}

func (h *holdProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Idempotency-Key")
	h.mu.Lock()
	first := r.Method == http.MethodPost && key != "" && !h.seen[key]
	if first {
		h.seen[key] = true
		h.held++
	}
	n := h.held
	h.mu.Unlock()
	if !first {
		h.next.ServeHTTP(w, r)
		return
	}
	if h.onHold(n) {
		h.next.ServeHTTP(discard{}, r)
		h.mu.Lock()
		h.procN++
		h.mu.Unlock()
	}
	h.heldCh <- struct{}{}
	<-h.release
	panic(http.ErrAbortHandler)
}

// discard drops an answer, as a dead client would.
type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

// TestWorkerKilledUnderLoad SIGKILLs a worker process while 16 provider
// calls are in flight on four providers, half of them already processed by
// the provider, half not; a new worker finishes every refund with exactly
// one refund at the provider each.
func TestWorkerKilledUnderLoad(t *testing.T) {
	sc := begin(t, "4. Worker SIGKILLed during provider calls, under load")
	ctx := context.Background()
	env := testenv.Get(t)
	const n = 16
	hp := &holdProxy{seen: map[string]bool{}, heldCh: make(chan struct{}, n), release: make(chan struct{}),
		onHold: func(i int) bool { return i%2 == 0 }}
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{NoWorker: true,
		ProviderProxy: func(next http.Handler) http.Handler { hp.next = next; return hp }}})
	t.Cleanup(func() {
		sched := r.Temporal.ScheduleClient().GetHandle(context.Background(), workflows.ReconcileScheduleID(r.TaskQueue))
		_ = sched.Delete(context.Background())
	})
	cfgs, _ := json.Marshal(providers.SandboxConfigs(r.SandboxURL))
	proc := startProcess(t, nil, testenv.BackflowBinary(t), []string{"DATABASE_URL=" + env.DBURL, "TEMPORAL_ADDRESS=" + sharedTemporalAddress(),
		"BACKFLOW_TASK_QUEUE=" + r.TaskQueue, "BACKFLOW_PROVIDERS=" + string(cfgs), "BACKFLOW_WORKER_HTTP_ADDR=127.0.0.1:0",
		"BACKFLOW_LOG_LEVEL=ERROR", "BACKFLOW_RECONCILE_EVERY=1h", "BACKFLOW_PROVIDER_TIMEOUT=30s"}, "worker")

	m := newMerchant(t, r)
	c := r.Client(m)
	var ids []string
	for i := range n {
		p := rig.Providers[i%4] // cardpay, paydesk, orchestra, momo
		tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, p.Fields))
		amount := int64(1000 + 100*i)
		if i%3 == 0 {
			amount += 4 // asynchronous outcome: the answer comes by callback
		}
		ids = append(ids, must[string](t)(c.Refund(ctx, tx, amount)))
	}
	for i := range n {
		select {
		case <-hp.heldCh:
		case <-time.After(60 * time.Second):
			t.Fatalf("only %d of %d provider calls reached the provider", i, n)
		}
	}
	proc.kill()
	close(hp.release)
	hp.mu.Lock()
	processed := hp.procN
	hp.mu.Unlock()
	sc.inject("worker process SIGKILLed with %d provider calls in flight on 4 providers (%d already processed by the provider, %d not; a third with asynchronous outcomes)",
		n, processed, n-processed)
	sc.refunds = n

	if err := r.StartWorker(); err != nil {
		t.Fatal(err)
	}
	if err := rig.WaitSettled(ctx, r.Store, 90*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		got := must[refund.Object](t)(c.GetRefund(ctx, id))
		if got.Status != refund.StatusSucceeded {
			t.Errorf("refund %s is %s after the crash", id, got.Status)
		}
		if k := r.Sandbox.Count(id); k != 1 {
			t.Errorf("refund %s: the provider holds %d refunds", id, k)
		}
	}
	sc.verified("all %d SUCCEEDED with exactly one refund at the provider each", n)
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}
