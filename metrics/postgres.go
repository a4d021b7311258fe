package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/backflow/backflow/refund"
	"github.com/prometheus/client_golang/prometheus"
)

// StoreSource is what the Postgres gauges read; *store.Store implements it.
type StoreSource interface {
	ReservedByCurrency(ctx context.Context) (map[string]int64, error)
	StuckRefundsByReason(ctx context.Context) (map[string]int64, error)
}

// storeCollector reads its gauges from Postgres on each scrape, so every
// API and worker replica reports the same, current values (aggregate them
// with max, not sum).
type storeCollector struct {
	src      StoreSource
	timeout  time.Duration
	log      *slog.Logger
	reserved *prometheus.Desc
	stuck    *prometheus.Desc
	up       *prometheus.Desc

	mu   sync.Mutex
	seen map[string]bool // currencies reported once keep reporting, at 0 when nothing is reserved
}

// NewStoreCollector returns the collector of backflow_reserved_amount,
// backflow_stuck_refunds and backflow_postgres_scrape_up. A scrape that
// fails or exceeds timeout reports up 0 and leaves the other two out.
func NewStoreCollector(src StoreSource, timeout time.Duration, logger *slog.Logger) prometheus.Collector {
	if logger == nil {
		logger = slog.Default()
	}
	return &storeCollector{
		src: src, timeout: timeout, log: logger, seen: map[string]bool{},
		reserved: prometheus.NewDesc(ReservedAmount,
			"Amount reserved by refunds in progress (PENDING or PROCESSING), in minor units of the currency.",
			[]string{"currency"}, nil),
		stuck: prometheus.NewDesc(StuckRefunds, "Refunds in progress flagged stuck, by reason: provider.auth (the provider "+
			"refuses our credentials), provider.no_answer, provider.unknown_outcome, provider.sla.", []string{"reason"}, nil),
		up: prometheus.NewDesc(PostgresScrapeUp, "1 when the Postgres gauges were read on this scrape, 0 when Postgres failed or timed out.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.reserved
	ch <- c.stuck
	ch <- c.up
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	reserved, err := c.src.ReservedByCurrency(ctx)
	var stuck map[string]int64
	if err == nil {
		stuck, err = c.src.StuckRefundsByReason(ctx)
	}
	if err != nil {
		c.log.Warn("metrics: read gauges from postgres", "error", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, reason := range refund.StuckReasons {
		ch <- prometheus.MustNewConstMetric(c.stuck, prometheus.GaugeValue, float64(stuck[reason]), reason)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for currency := range reserved {
		c.seen[currency] = true
	}
	for currency := range c.seen {
		ch <- prometheus.MustNewConstMetric(c.reserved, prometheus.GaugeValue, float64(reserved[currency]), currency)
	}
}
