package reliability_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/workflows"
)

// countingReceiver is a loopback endpoint answering 200 after delay and
// counting the distinct events it got.
type countingReceiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[uuid.UUID]bool
}

func newCountingReceiver(t *testing.T, delay time.Duration) *countingReceiver {
	c := &countingReceiver{got: map[uuid.UUID]bool{}}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev webhooks.Event
		if json.Unmarshal(body, &ev) != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		time.Sleep(delay)
		c.mu.Lock()
		c.got[ev.ID] = true
		c.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *countingReceiver) has(ids []uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if !c.got[id] {
			return false
		}
	}
	return true
}

// refundLatencies creates n refunds for m concurrently and returns each
// one's time from created to completed (Postgres clock) and its workflow
// history length.
func refundLatencies(t *testing.T, r *rig.Rig, m rig.Merchant, n int) ([]time.Duration, []int) {
	t.Helper()
	ctx := context.Background()
	c := r.Client(m)
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			tx, err := c.CreateTransaction(ctx, nil)
			if err == nil {
				ids[i], err = c.Refund(ctx, tx, 1000)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := rig.WaitSettled(ctx, r.Store, time.Minute, m.ID); err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	var events []int
	for _, id := range ids {
		var d time.Duration
		if err := r.Store.Pool().QueryRow(ctx, `SELECT completed_at - created_at FROM refunds WHERE id = $1 AND status = 'SUCCEEDED'`, id).Scan(&d); err != nil {
			t.Fatalf("refund %s: %v", id, err)
		}
		lat = append(lat, d)
		wf := workflows.RefundWorkflowID(uuid.MustParse(id))
		if err := rig.Poll(ctx, 10*time.Second, "workflow closed", func(ctx context.Context) (bool, error) {
			desc, err := r.Temporal.DescribeWorkflowExecution(ctx, wf, "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetCloseTime() != nil, err
		}); err != nil {
			t.Fatal(err)
		}
		desc, err := r.Temporal.DescribeWorkflowExecution(ctx, wf, "")
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, int(desc.GetWorkflowExecutionInfo().GetHistoryLength()))
	}
	slices.Sort(lat)
	return lat, events
}

// TestMerchantWithManyEndpointsHalfDeadOrSlow: one merchant gets 20
// webhook endpoints, 5 refusing connections, 5 answering slowly, 10 fast
// (all on loopback), between two identical rounds of its refunds beside
// another merchant's. Its refunds cost their workflows what anyone's cost;
// the other merchant's refunds finish as in the round before (reported, not
// asserted: a timing); every delivery to a live endpoint, slow ones
// included, is made; the dead endpoints are held back as a whole;
// invariants hold.
func TestMerchantWithManyEndpointsHalfDeadOrSlow(t *testing.T) {
	sc := begin(t, "17. A merchant with 20 webhook endpoints, half dead or slow")
	ctx := context.Background()
	policy := activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: time.Second,
		GiveUpAfter: 10 * time.Minute, AttemptTimeout: 2 * time.Second}
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{WebhookPolicy: &policy}})
	quiet, noisy := newMerchant(t, r), newMerchant(t, r)
	quietHook := newCountingReceiver(t, 0)
	addEndpoints(t, r, quiet, quietHook.srv.URL)
	// One round: 20 refunds of the noisy merchant beside 10 of the quiet one.
	round := func() (quietLatency []time.Duration, quietEvents, noisyEvents []int) {
		var wg sync.WaitGroup
		wg.Go(func() { _, noisyEvents = refundLatencies(t, r, noisy, 20) })
		quietLatency, quietEvents = refundLatencies(t, r, quiet, 10)
		wg.Wait()
		return quietLatency, quietEvents, noisyEvents
	}
	before, _, _ := round()

	var fast, slow []*countingReceiver
	var urls []string
	for range 10 {
		fast = append(fast, newCountingReceiver(t, 0))
		urls = append(urls, fast[len(fast)-1].srv.URL)
	}
	for range 5 {
		slow = append(slow, newCountingReceiver(t, 700*time.Millisecond))
		urls = append(urls, slow[len(slow)-1].srv.URL)
	}
	var dead []string
	for range 5 {
		dead = append(dead, "http://"+net.JoinHostPort("127.0.0.1", strconv.Itoa(rig.FreePort(t)))+"/hooks")
	}
	eps := addEndpoints(t, r, noisy, append(urls, dead...)...)
	sc.inject("a merchant gets 20 endpoints (10 answering at once, 5 after 700 ms, 5 loopback ports refusing connections; 4 past the API's limit of 16, written to the store); twice 20 of its refunds beside 10 of another merchant's, before and after; retry 200ms doubling to 1s")
	withEndpoints := time.Now()
	during, quietEvents, noisyEvents := round()
	sc.refunds = 60
	if slices.Min(noisyEvents) != slices.Max(noisyEvents) || noisyEvents[0] != quietEvents[0] {
		t.Errorf("history events per refund: %v with 20 endpoints, %v with one", noisyEvents, quietEvents)
	}

	// Every event of the noisy merchant since it has its endpoints reaches every live endpoint.
	var ids []uuid.UUID
	for _, e := range listAllEvents(t, r.Client(noisy)) {
		if e.CreatedAt.After(withEndpoints) {
			ids = append(ids, e.ID)
		}
	}
	if len(ids) != 40 {
		t.Fatalf("%d events for the 20 refunds with endpoints", len(ids))
	}
	if err := rig.Poll(ctx, time.Minute, "every delivery to a live endpoint", func(context.Context) (bool, error) {
		for _, c := range append(slices.Clone(fast), slow...) {
			if !c.has(ids) {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	var deadAttempts int
	for _, ep := range eps[15:] {
		var n int
		if err := r.Store.Pool().QueryRow(ctx, `SELECT count(*) FROM webhook_attempts WHERE endpoint_id = $1`, ep).Scan(&n); err != nil {
			t.Fatal(err)
		}
		deadAttempts += n
	}
	if deadAttempts >= len(ids)*len(dead) {
		t.Errorf("%d attempts to the dead endpoints for %d pending deliveries: not held back", deadAttempts, len(ids)*len(dead))
	}
	sc.verified("history events per refund %d with 20 endpoints and with one; the other merchant's refunds created → SUCCEEDED p50 %s / max %s before the endpoints, %s / %s with them",
		noisyEvents[0], before[len(before)/2].Round(time.Millisecond), before[len(before)-1].Round(time.Millisecond),
		during[len(during)/2].Round(time.Millisecond), during[len(during)-1].Round(time.Millisecond))
	sc.verified("all %d deliveries to the 15 live endpoints made (5 of them slow); %d attempts to the 5 dead ones for %d pending deliveries",
		len(ids)*15, deadAttempts, len(ids)*len(dead))
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, quiet, noisy))
}

// addEndpoints gives m an endpoint per URL and returns their ids: through
// the API up to its limit, the rest straight into the store (a merchant
// whose limit ops raised).
func addEndpoints(t *testing.T, r *rig.Rig, m rig.Merchant, urls ...string) []uuid.UUID {
	t.Helper()
	ctx := context.Background()
	var ids []uuid.UUID
	for i, u := range urls {
		if i < refund.MaxWebhookEndpoints {
			var ep server.WebhookEndpointObject
			resp := must[rig.Response](t)(r.Client(m).Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": u}))
			if resp.Status != http.StatusCreated || resp.Decode(&ep) != nil {
				t.Fatalf("create endpoint: %d %s", resp.Status, resp.Body)
			}
			ids = append(ids, ep.ID)
			continue
		}
		id := uuid.Must(uuid.NewV7())
		if _, err := r.Store.Pool().Exec(ctx, `INSERT INTO webhook_endpoints (id, merchant_id, url, event_types, secret)
			VALUES ($1, $2, $3, $4, $5)`, id, m.ID, u, refund.EventTypes, fmt.Sprintf("whsec_%s", uuid.NewString())); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}
