package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/refund"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// scrape reads url in the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: HTTP %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse scrape: %v", err)
	}
	return fams
}

// sample returns the value of the series of name with exactly labels: a
// counter's or gauge's value, a histogram's sample count.
func sample(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// total sums every series of name (histograms: their sample counts).
func total(fams map[string]*dto.MetricFamily, name string) float64 {
	var sum float64
	for _, m := range fams[name].GetMetric() {
		sum += m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
	}
	return sum
}

func serve(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func mustSample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := sample(fams, name, labels)
	if !ok || got != want {
		t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
	}
}

func TestTemporalHandler(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	h := m.Temporal().WithTags(map[string]string{"namespace": "default"})
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { h.Counter("temporal_request").Inc(2) })
	}
	wg.Wait()
	// Another tag set under the same name, as the SDK does.
	h.WithTags(map[string]string{"operation": "StartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.Gauge("temporal_num_pollers").Update(3)
	h.Gauge("temporal_num_pollers").Update(5)
	h.Timer("temporal_request_latency").Record(250 * time.Millisecond)
	h.WithTags(map[string]string{"namespace": "other", "bad-key": "x"}).Counter("weird.name").Inc(1)

	fams := scrape(t, serve(t, m))
	mustSample(t, fams, "temporal_request_total", map[string]string{"namespace": "default"}, 20)
	mustSample(t, fams, "temporal_request_total", map[string]string{"namespace": "default", "operation": "StartWorkflowExecution"}, 1)
	mustSample(t, fams, "temporal_num_pollers", map[string]string{"namespace": "default"}, 5)
	mustSample(t, fams, "temporal_request_latency_seconds", map[string]string{"namespace": "default"}, 1)
	if sum := fams["temporal_request_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleSum(); sum != 0.25 {
		t.Fatalf("timer sum = %v, want 0.25 s", sum)
	}
	mustSample(t, fams, "weird_name_total", map[string]string{"namespace": "other", "bad_key": "x"}, 1)
	if fams["temporal_request_total"].GetType() != dto.MetricType_COUNTER || fams["temporal_num_pollers"].GetType() != dto.MetricType_GAUGE ||
		fams["temporal_request_latency_seconds"].GetType() != dto.MetricType_HISTOGRAM {
		t.Fatal("wrong metric types")
	}
}

type fakeSource struct {
	reserved map[string]int64
	stuck    map[string]int64
	err      error
}

func (f *fakeSource) ReservedByCurrency(ctx context.Context) (map[string]int64, error) {
	return f.reserved, f.err
}

func (f *fakeSource) StuckRefundsByReason(ctx context.Context) (map[string]int64, error) {
	return f.stuck, f.err
}

func TestStoreCollector(t *testing.T) {
	t.Parallel()
	src := &fakeSource{reserved: map[string]int64{"EUR": 1500, "JPY": 300}, stuck: map[string]int64{"provider.auth": 2}}
	m := metrics.New()
	m.WatchStore(src, time.Second, nil)
	url := serve(t, m)

	fams := scrape(t, url)
	mustSample(t, fams, metrics.ReservedAmount, map[string]string{"currency": "EUR"}, 1500)
	mustSample(t, fams, metrics.ReservedAmount, map[string]string{"currency": "JPY"}, 300)
	mustSample(t, fams, metrics.StuckRefunds, map[string]string{"reason": "provider.auth"}, 2)
	mustSample(t, fams, metrics.StuckRefunds, map[string]string{"reason": "provider.sla"}, 0)
	mustSample(t, fams, metrics.PostgresScrapeUp, nil, 1)

	// Postgres down: the scrape still answers, says so, and drops the gauges.
	src.err = errors.New("connection refused")
	fams = scrape(t, url)
	mustSample(t, fams, metrics.PostgresScrapeUp, nil, 0)
	if _, ok := fams[metrics.ReservedAmount]; ok {
		t.Fatal("reserved amounts reported without Postgres")
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Fatal("a failing collector hid the other metrics")
	}

	// Nothing reserved any more: known currencies report 0 rather than vanish.
	src.err, src.reserved, src.stuck = nil, map[string]int64{}, nil
	fams = scrape(t, url)
	mustSample(t, fams, metrics.ReservedAmount, map[string]string{"currency": "EUR"}, 0)
	mustSample(t, fams, metrics.StuckRefunds, map[string]string{"reason": "provider.auth"}, 0)
}

func TestRefundFinished(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	created := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	completed := created.Add(2 * time.Second)
	m.RefundFinished(refund.Refund{Status: refund.StatusSucceeded, Provider: "cardpay", Method: refund.MethodProviderRefund,
		CreatedAt: created, CompletedAt: &completed})
	m.RefundFinished(refund.Refund{Status: refund.StatusDeclined, Provider: "cardpay", Method: refund.MethodProviderRefund,
		CreatedAt: created, CompletedAt: &completed})
	fams := scrape(t, serve(t, m))
	labels := map[string]string{"status": string(refund.StatusSucceeded), "provider": "cardpay", "method": string(refund.MethodProviderRefund)}
	mustSample(t, fams, metrics.RefundsCompleted, labels, 1)
	mustSample(t, fams, metrics.RefundDuration, labels, 1)
	if total(fams, metrics.RefundsCompleted) != 2 {
		t.Fatalf("completed total = %v", total(fams, metrics.RefundsCompleted))
	}
	for _, mm := range fams[metrics.RefundDuration].GetMetric() {
		if s := mm.GetHistogram().GetSampleSum(); s != 2 {
			t.Fatalf("duration sum = %v, want 2 s", s)
		}
	}
}

func TestEchoMiddleware(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	e := echo.New()
	e.Use(m.EchoMiddleware)
	e.GET("/v1/refunds/:id", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{}) })
	e.GET("/v1/fail", func(c echo.Context) error { return echo.NewHTTPError(http.StatusConflict, "no") })
	e.POST("/v1/refunds", func(c echo.Context) error {
		return c.JSON(http.StatusAccepted, map[string]string{"provider": "momo", "method": string(refund.MethodPayoutRefund)})
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	do := func(method, path string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	do("GET", "/v1/refunds/0190a1b2-0000-7000-8000-000000000001")
	do("GET", "/v1/refunds/0190a1b2-0000-7000-8000-000000000002")
	do("GET", "/v1/fail")
	do("GET", "/nowhere/at/all")
	do("POST", "/v1/refunds")
	do("POST", "/v1/refunds")

	fams := scrape(t, serve(t, m))
	mustSample(t, fams, metrics.HTTPRequests, map[string]string{"method": "GET", "route": "/v1/refunds/:id", "code": "200"}, 2)
	mustSample(t, fams, metrics.HTTPRequests, map[string]string{"method": "GET", "route": "/v1/fail", "code": "409"}, 1)
	mustSample(t, fams, metrics.HTTPRequests, map[string]string{"method": "GET", "route": "unmatched", "code": "404"}, 1)
	mustSample(t, fams, metrics.HTTPRequests, map[string]string{"method": "POST", "route": "/v1/refunds", "code": "202"}, 2)
	mustSample(t, fams, metrics.HTTPRequestDuration, map[string]string{"method": "GET", "route": "/v1/refunds/:id"}, 2)
}
