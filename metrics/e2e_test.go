package metrics_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/worker"
	"github.com/backflow/backflow/workflows"
)

// TestMetricsEndToEnd wires metrics as cmd/backflow does — a Temporal
// client with the Prometheus handler, the worker's Observe hook, the
// Postgres gauges, the instrumented API — and scrapes /metrics before and
// after real refunds.
func TestMetricsEndToEnd(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	m := metrics.New()
	tc, err := client.Dial(client.Options{HostPort: os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS"), MetricsHandler: m.Temporal(),
		Logger: sdklog.NewStructuredLogger(s.Logger)})
	if err != nil {
		t.Fatalf("dial temporal: %v", err)
	}
	t.Cleanup(tc.Close)
	s.Activities.Observe = m.RefundFinished
	w := worker.New(tc, s.TaskQueue, s.Activities, sdkworker.Options{})
	if err := w.Start(); err != nil {
		t.Fatalf("start worker: %v", err)
	}
	t.Cleanup(w.Stop)
	m.WatchStore(s.Store, metrics.StoreScrapeTimeout, s.Logger)
	svc := refunds.New(s.Store, s.Providers, refunds.TemporalGateway{Client: tc, TaskQueue: s.TaskQueue}, s.Logger,
		refunds.Hooks{Created: m.RefundCreated})
	api := httptest.NewServer(server.New(server.Deps{Service: svc, Logger: s.Logger, Metrics: m.Handler(),
		Middleware: []echo.MiddlewareFunc{m.EchoMiddleware}}).Handler())
	t.Cleanup(api.Close)
	metricsURL := api.URL + "/metrics"

	provider := map[string]string{"provider": "cardpay", "method": string(refund.MethodProviderRefund)}
	succeeded := map[string]string{"status": string(refund.StatusSucceeded), "provider": "cardpay", "method": string(refund.MethodProviderRefund)}
	createdRoute := map[string]string{"method": "POST", "route": "/v1/refunds", "code": "202"}
	before := scrape(t, metricsURL)
	created0, _ := sample(before, metrics.RefundsCreated, provider)
	completed0, _ := sample(before, metrics.RefundsCompleted, succeeded)
	latency0, _ := sample(before, metrics.RefundDuration, succeeded)
	requests0, _ := sample(before, metrics.HTTPRequests, createdRoute)
	reserved0, _ := sample(before, metrics.ReservedAmount, map[string]string{"currency": "EUR"})

	id := createRefund(t, s, api.URL, 2500)
	s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded)
	// The refund is counted when it is finalized, the workflow a moment
	// later when its last task completes: wait for both.
	after := scrapeUntil(t, metricsURL, "the completed refund and workflow are counted", func(f map[string]*dto.MetricFamily) bool {
		v, _ := sample(f, metrics.RefundsCompleted, succeeded)
		return v == completed0+1 && total(f, "temporal_workflow_completed_total") > 0
	})
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{metrics.RefundsCreated, provider, created0 + 1},
		{metrics.RefundDuration, succeeded, latency0 + 1},
		{metrics.HTTPRequests, createdRoute, requests0 + 1},
		{metrics.PostgresScrapeUp, nil, 1},
	} {
		mustSample(t, after, c.name, c.labels, c.want)
	}
	// The Temporal SDK's own metrics come through the same registry.
	for _, name := range []string{"temporal_request_total", "temporal_workflow_completed_total",
		"temporal_activity_execution_latency_seconds", "temporal_workflow_task_execution_latency_seconds"} {
		if total(after, name) == 0 {
			t.Errorf("SDK metric %s missing or zero", name)
		}
	}

	// A refund the provider never answers holds its reservation and is
	// flagged stuck past its SLA: both gauges read Postgres on scrape.
	stuckID := createRefund(t, s, api.URL, 1006)
	t.Cleanup(func() {
		_ = s.Temporal.TerminateWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(stuckID)), "", "test cleanup")
	})
	scrapeUntil(t, metricsURL, "the stuck refund is counted", func(f map[string]*dto.MetricFamily) bool {
		stuck, _ := sample(f, metrics.StuckRefunds, map[string]string{"reason": "provider.sla"})
		reserved, _ := sample(f, metrics.ReservedAmount, map[string]string{"currency": "EUR"})
		return stuck == 1 && reserved == reserved0+1006
	})
}

// createRefund registers a 10000 EUR cardpay transaction and refunds amount
// of it through the API at apiURL.
func createRefund(t *testing.T, s *rig.Stack, apiURL string, amount int64) string {
	t.Helper()
	sessionID, _ := s.Transaction(t, map[string]any{"amount": 10000})
	body, _ := json.Marshal(map[string]any{"sessionId": sessionID, "refundValue": map[string]any{"amount": amount, "currency": "EUR"}})
	req, _ := http.NewRequest("POST", apiURL+"/v1/refunds", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.MerchantKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var created refund.Object
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("create refund: %d %v", resp.StatusCode, err)
	}
	return created.TransactionID.String()
}

// scrapeUntil scrapes until cond holds, failing after a deadline.
func scrapeUntil(t *testing.T, url, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f := scrape(t, url)
		if cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not seen on /metrics after 30s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
