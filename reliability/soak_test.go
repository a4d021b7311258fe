package reliability_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
)

// TestShortSoak runs the soak (make soak) for 20 seconds: mixed load on
// every provider with random provider faults, outages, worker restarts,
// duplicate and late callbacks and a flaky webhook receiver, then the
// invariant checker with webhook delivery included.
func TestShortSoak(t *testing.T) {
	sc := begin(t, "11. Mixed load with random faults (short soak)")
	env := testenv.Get(t)
	var progress strings.Builder
	res, err := rig.Soak(context.Background(), rig.SoakOptions{
		Pool:     env.Pool,
		Rig:      rig.RigOptions{Store: env.Store, Temporal: env.Temporal, TaskQueue: queueName(t), Logger: env.Logger},
		Duration: 20 * time.Second, Clients: 6, Merchants: 3, MaxLive: 30, Drain: 90 * time.Second,
		Progress: &progress, ProgressEvery: 5 * time.Second,
	})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Invariants.Violations {
		t.Errorf("invariant violated: %s", v)
	}
	for _, u := range res.Unexpected {
		t.Errorf("unexpected: %s", u)
	}
	if res.ServerErrors > 0 {
		t.Errorf("%d unexpected 5xx from the API", res.ServerErrors)
	}
	sc.refunds = res.Invariants.Refunds
	sc.inject("20 s of mixed load (%d requests: refunds on 5 providers with every sandbox outcome, over-refund and idempotency races, %d concurrent registrations of one payment, cancels, reads); provider faults %s; %d provider outages; %d worker restarts; %d refund workflows terminated mid-refund (%d resumed by the reconciler); %d callbacks duplicated, %d replayed late; webhook receiver failing 1 in 5",
		res.Requests, res.Registrations, res.Faults, res.Outages, res.WorkerRestarts, res.Terminations, res.Resumed, res.Callbacks, res.Late)
	sc.verified("no unexpected API answer; webhooks drained; invariants: %s", res.Invariants.Summary())
}
