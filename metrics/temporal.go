package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// temporalTimerBuckets cover the SDK's latencies: gRPC requests and task
// execution (milliseconds) to schedule-to-start and long polls (a minute).
var temporalTimerBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// temporalHandler implements client.MetricsHandler over a Prometheus
// collector. SDK counters are exported with a _total suffix, timers as
// histograms in seconds with a _seconds suffix, gauges as they are named
// (temporal_request → temporal_request_total, temporal_activity_execution_latency
// → temporal_activity_execution_latency_seconds).
type temporalHandler struct {
	c    *temporalCollector
	tags map[string]string
}

var _ client.MetricsHandler = temporalHandler{}

// WithTags returns a handler whose metrics carry tags on top of h's.
func (h temporalHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	return temporalHandler{c: h.c, tags: merged}
}

// Counter returns the counter name with h's tags.
func (h temporalHandler) Counter(name string) client.MetricsCounter {
	c := h.c.series(kindCounter, name, h.tags).(prometheus.Counter)
	return counterFunc(func(d int64) {
		if d > 0 {
			c.Add(float64(d))
		}
	})
}

// Gauge returns the gauge name with h's tags.
func (h temporalHandler) Gauge(name string) client.MetricsGauge {
	g := h.c.series(kindGauge, name, h.tags).(prometheus.Gauge)
	return gaugeFunc(g.Set)
}

// Timer returns the timer name with h's tags, recorded as a histogram in seconds.
func (h temporalHandler) Timer(name string) client.MetricsTimer {
	o := h.c.series(kindTimer, name, h.tags).(prometheus.Histogram)
	return timerFunc(func(d time.Duration) { o.Observe(d.Seconds()) })
}

type counterFunc func(int64)

func (f counterFunc) Inc(d int64) { f(d) }

type gaugeFunc func(float64)

func (f gaugeFunc) Update(v float64) { f(v) }

type timerFunc func(time.Duration)

func (f timerFunc) Record(d time.Duration) { f(d) }

type metricKind int

const (
	kindCounter metricKind = iota
	kindGauge
	kindTimer
)

// temporalCollector holds every series the SDK asked for. The SDK uses
// different tag sets under one metric name (a workflow's metrics carry
// workflow_type, a poller's do not), which a fixed-label *Vec cannot hold,
// so each series is its own metric with constant labels and the collector
// is unchecked (Describe sends nothing).
type temporalCollector struct {
	mu  sync.RWMutex
	all map[string]prometheus.Collector
}

func newTemporalCollector() *temporalCollector {
	return &temporalCollector{all: map[string]prometheus.Collector{}}
}

// Describe sends nothing: the collector is unchecked, its series appear as the SDK creates them.
func (c *temporalCollector) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series.
func (c *temporalCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, m := range c.all {
		m.Collect(ch)
	}
}

// series returns the metric of kind, name and tags, creating it on first use.
func (c *temporalCollector) series(kind metricKind, name string, tags map[string]string) prometheus.Collector {
	name = promName(name)
	switch kind {
	case kindCounter:
		if !strings.HasSuffix(name, "_total") {
			name += "_total"
		}
	case kindTimer:
		if !strings.HasSuffix(name, "_seconds") {
			name += "_seconds"
		}
	}
	labels := make(prometheus.Labels, len(tags))
	for k, v := range tags {
		labels[promName(k)] = v
	}
	key := seriesKey(name, labels)
	c.mu.RLock()
	m, ok := c.all[key]
	c.mu.RUnlock()
	if ok {
		return m
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.all[key]; ok {
		return m
	}
	help := "Temporal SDK metric " + name + "."
	switch kind {
	case kindCounter:
		m = prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels})
	case kindGauge:
		m = prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels})
	default:
		m = prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: labels, Buckets: temporalTimerBuckets})
	}
	c.all[key] = m
	return m
}

func seriesKey(name string, labels prometheus.Labels) string {
	var b strings.Builder
	b.WriteString(name)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteByte(0xff)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(labels[k])
	}
	return b.String()
}

// promName turns an SDK metric or tag name into a valid Prometheus name.
func promName(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9' && i > 0:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "_"
	}
	return b.String()
}
