package reliability_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/backflow/backflow/internal/invariants"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
)

// scenario records what one test injected and checked, and appends its row
// to the report file when BACKFLOW_RELIABILITY_REPORT is set.
type scenario struct {
	t        *testing.T
	name     string
	start    time.Time
	injected []string
	refunds  int
	checked  []string
}

func begin(t *testing.T, name string) *scenario {
	t.Helper()
	s := &scenario{t: t, name: name, start: time.Now()}
	t.Cleanup(func() {
		result := "pass"
		if t.Failed() {
			result = "FAIL"
		}
		d := time.Since(s.start)
		t.Logf("scenario %q: %d refunds, %s, %s in %s", name, s.refunds, strings.Join(s.checked, "; "), result, d.Round(100*time.Millisecond))
		path := os.Getenv(rig.ReportEnv)
		if path == "" {
			return
		}
		row := rig.Row{Scenario: name, Injected: strings.Join(s.injected, "; "), Refunds: s.refunds,
			Checked: strings.Join(s.checked, "; "), Result: result, Duration: d, At: time.Now().UTC()}
		if err := rig.AppendRow(path, row); err != nil {
			t.Errorf("report: %v", err)
		}
	})
	return s
}

func (s *scenario) inject(format string, args ...any) {
	s.injected = append(s.injected, fmt.Sprintf(format, args...))
}
func (s *scenario) verified(format string, args ...any) {
	s.checked = append(s.checked, fmt.Sprintf(format, args...))
}

// invariants runs the checker over the merchants and fails the test on any
// violation.
func (s *scenario) invariants(ctx context.Context, pool *pgxpool.Pool, o invariants.Options) invariants.Report {
	s.t.Helper()
	rep, err := invariants.Check(ctx, pool, o)
	if err != nil {
		s.t.Fatalf("invariant check: %v", err)
	}
	for _, v := range rep.Violations {
		s.t.Errorf("invariant violated: %s", v)
	}
	if s.refunds == 0 {
		s.refunds = rep.Refunds
	}
	s.verified("invariants: %d violations over %d refunds (%s)", len(rep.Violations), rep.Refunds, statusList(rep.ByStatus))
	return rep
}

func statusList[K ~string](m map[K]int) string {
	order := []K{"SUCCEEDED", "REVERSED", "DECLINED", "FAILED", "CANCELED", "PROCESSING", "PENDING"}
	var parts []string
	for _, st := range order {
		if m[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[st], st))
		}
	}
	return strings.Join(parts, ", ")
}

// rigOptions are what a test may set on its rig; the services default to
// the run's shared Postgres and Temporal.
type rigOptions struct {
	rig.RigOptions
	// Pool, when set, is the Postgres the rig uses (its own database).
	Pool *pgxpool.Pool
}

// startRig starts a rig on its own task queue, torn down with t.
func startRig(t *testing.T, o rigOptions) *rig.Rig {
	t.Helper()
	env := testenv.Get(t)
	ro := o.RigOptions
	if ro.Store == nil {
		ro.Store = env.Store
	}
	if ro.Temporal == nil {
		ro.Temporal = env.Temporal
	}
	if ro.TaskQueue == "" {
		ro.TaskQueue = queueName(t)
	}
	if ro.Logger == nil {
		ro.Logger = env.Logger
	}
	r, err := rig.StartRig(ro)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// queueName gives each test its own task queue.
func queueName(t *testing.T) string {
	return testenv.Get(t).TaskQueue + "-" + strings.ToLower(strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())) + "-" + uuid.NewString()[:4]
}

func newMerchant(t *testing.T, r *rig.Rig) rig.Merchant {
	t.Helper()
	m, err := r.NewMerchant(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// fullCheck is the full checker on the shared services for the merchants:
// balances, ledger, events, provider counts and workflows.
func fullCheck(r *rig.Rig, tc client.Client, merchants ...rig.Merchant) invariants.Options {
	ids := make([]uuid.UUID, len(merchants))
	for i, m := range merchants {
		ids[i] = m.ID
	}
	if tc == nil {
		tc = r.Temporal
	}
	return invariants.Options{Merchants: ids, Provider: r.Sandbox, Temporal: tc, WorkflowGrace: 2 * time.Second}
}
