// Package metrics exposes Backflow's Prometheus metrics: business metrics
// about refunds, HTTP request metrics of the API, gauges read from Postgres
// on scrape, and the Temporal SDK's own metrics through a
// client.MetricsHandler backed by the same registry.
package metrics

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
)

// Names of Backflow's own metrics.
const (
	RefundsCreated      = "backflow_refunds_created_total"
	RefundsCompleted    = "backflow_refunds_completed_total"
	RefundsReversed     = "backflow_refunds_reversed_total"
	Contradictions      = "backflow_provider_contradictions_total"
	RefundDuration      = "backflow_refund_duration_seconds"
	ReservedAmount      = "backflow_reserved_amount"
	StuckRefunds        = "backflow_stuck_refunds"
	InvariantViolations = "backflow_invariant_violations"
	InvariantCheckTime  = "backflow_invariant_check_timestamp_seconds"
	PostgresScrapeUp    = "backflow_postgres_scrape_up"
	HTTPRequests        = "backflow_http_requests_total"
	HTTPRequestDuration = "backflow_http_request_duration_seconds"
	RateLimited         = "backflow_rate_limited_total"
)

// StoreScrapeTimeout is the usual bound of the Postgres queries behind the
// gauges of one scrape: well under Prometheus's default 10 s scrape timeout.
const StoreScrapeTimeout = 2 * time.Second

// refundDurationBuckets span an instant refund (well under a second) to a
// slow asynchronous one (hours) and a stuck one (a day).
var refundDurationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// Metrics is one process's registry and Backflow's metrics in it.
type Metrics struct {
	reg              *prometheus.Registry
	refundsCreated   *prometheus.CounterVec
	refundsCompleted *prometheus.CounterVec
	refundsReversed  *prometheus.CounterVec
	contradictions   *prometheus.CounterVec
	refundDuration   *prometheus.HistogramVec
	httpRequests     *prometheus.CounterVec
	httpDuration     *prometheus.HistogramVec
	rateLimited      *prometheus.CounterVec
	violations       *prometheus.GaugeVec
	checkedAt        prometheus.Gauge
	checkRegistered  bool // only processes that run the check export it
	temporal         *temporalCollector
	webhooks         webhookMetrics
}

// New returns a registry with the Go runtime and process collectors,
// Backflow's refund and HTTP metrics and the Temporal SDK collector.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		refundsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefundsCreated, Help: "Refunds accepted by the API (202), by provider and refund method.",
		}, []string{"provider", "method"}),
		refundsCompleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefundsCompleted, Help: "Refunds that reached a final status (SUCCEEDED, DECLINED, FAILED, CANCELED), by status, provider and method.",
		}, []string{"status", "provider", "method"}),
		refundsReversed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RefundsReversed, Help: "SUCCEEDED refunds the provider later reported failed or reversed (now REVERSED), by provider and method.",
		}, []string{"provider", "method"}),
		contradictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Contradictions, Help: "Provider callbacks saying a refund succeeded that Backflow had ended otherwise (a financial incident), by provider.",
		}, []string{"provider"}),
		refundDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: RefundDuration, Help: "End-to-end refund latency, from creation to its final status.",
			Buckets: refundDurationBuckets,
		}, []string{"status", "provider", "method"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: HTTPRequests, Help: "API requests by method, route template and status code.",
		}, []string{"method", "route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: HTTPRequestDuration, Help: "API request latency by method and route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RateLimited, Help: "API requests refused by the per-key rate limit (429 rate_limited), by route template.",
		}, []string{"route"}),
		violations: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: InvariantViolations, Help: "Money invariant violations found by the last scheduled check (backflow verify), by rule.",
		}, []string{"rule"}),
		checkedAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: InvariantCheckTime, Help: "Unix time of the last scheduled invariant check that ran to the end.",
		}),
		temporal: newTemporalCollector(),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.refundsCreated, m.refundsCompleted, m.refundsReversed, m.contradictions, m.refundDuration, m.httpRequests, m.httpDuration,
		m.rateLimited, m.temporal,
	)
	m.webhooks = newWebhookMetrics(m.reg)
	return m
}

// Registry is the process's registry, for extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format. A
// collector that fails (Postgres down) does not hide the other metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
	}))
}

// Temporal is the metrics handler to give the Temporal client
// (client.Options.MetricsHandler): the SDK's metrics land in this registry.
func (m *Metrics) Temporal() client.MetricsHandler { return temporalHandler{c: m.temporal} }

// RefundCreated counts a refund accepted by the API (refunds.Hooks.Created).
func (m *Metrics) RefundCreated(r refund.Refund) {
	m.refundsCreated.WithLabelValues(r.Provider, string(r.Method)).Inc()
}

// RefundFinished counts a refund that reached its final status and records
// its end-to-end latency. It fits activities.Activities.Observe, which is
// called once per finalized refund.
func (m *Metrics) RefundFinished(r refund.Refund) {
	if r.Status == refund.StatusReversed {
		// Counted once when it succeeded; its latency is that success's.
		m.refundsReversed.WithLabelValues(r.Provider, string(r.Method)).Inc()
		return
	}
	m.refundsCompleted.WithLabelValues(string(r.Status), r.Provider, string(r.Method)).Inc()
	end := time.Now()
	if r.CompletedAt != nil {
		end = *r.CompletedAt
	}
	if d := end.Sub(r.CreatedAt); d >= 0 {
		m.refundDuration.WithLabelValues(string(r.Status), r.Provider, string(r.Method)).Observe(d.Seconds())
	}
}

// RateLimited counts a request the per-key rate limit refused
// (server.Deps.RateLimited).
func (m *Metrics) RateLimited(route string) {
	m.rateLimited.WithLabelValues(route).Inc()
}

// Contradiction counts a provider callback that contradicts a refund's
// final outcome (refunds.Hooks.Contradiction).
func (m *Metrics) Contradiction(provider string) {
	m.contradictions.WithLabelValues(provider).Inc()
}

// InvariantCheck exports a scheduled invariant check: its violations by rule,
// and when it last ran. A check that could not run leaves both as they were,
// so an alert on the timestamp's age catches a checker that stopped.
func (m *Metrics) InvariantCheck(byRule map[string]int, err error) {
	if err != nil {
		return
	}
	if !m.checkRegistered {
		m.reg.MustRegister(m.violations, m.checkedAt)
		m.checkRegistered = true
	}
	for rule, n := range byRule {
		m.violations.WithLabelValues(rule).Set(float64(n))
	}
	m.checkedAt.SetToCurrentTime()
}

// WatchStore registers the gauges read from Postgres on each scrape
// (reserved amounts, stuck refunds), each scrape bounded by timeout.
func (m *Metrics) WatchStore(src StoreSource, timeout time.Duration, logger *slog.Logger) {
	m.reg.MustRegister(NewStoreCollector(src, timeout, logger))
}
