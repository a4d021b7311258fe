package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/backflow/backflow/refund"
)

// Names of the webhook delivery metrics (docs/webhooks.md).
const (
	WebhookAttempts          = "backflow_webhook_attempts_total"
	WebhookDeliveryLatency   = "backflow_webhook_delivery_seconds"
	WebhookEndpointsDisabled = "backflow_webhook_endpoints_disabled_total"
)

// webhookLatencyBuckets span an instant delivery to one after a day of retries.
var webhookLatencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 24 * 3600}

type webhookMetrics struct {
	attempts *prometheus.CounterVec
	latency  prometheus.Histogram
	disabled *prometheus.CounterVec
}

func newWebhookMetrics(reg prometheus.Registerer) webhookMetrics {
	w := webhookMetrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: WebhookAttempts, Help: "Webhook delivery attempts by the delivery's status after them: DELIVERED, PENDING (to be retried), FAILED (gave up), SKIPPED (410, URL refused).",
		}, []string{"status"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: WebhookDeliveryLatency, Help: "From an event's creation to its delivery (2xx) to an endpoint.",
			Buckets: webhookLatencyBuckets,
		}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: WebhookEndpointsDisabled, Help: "Webhook endpoints Backflow disabled, by cause: gone (410), failing (every attempt failed for BACKFLOW_WEBHOOK_DISABLE_AFTER) or url_not_allowed (the URL breaks the webhook URL policy).",
		}, []string{"cause"}),
	}
	reg.MustRegister(w.attempts, w.latency, w.disabled)
	return w
}

// WebhookAttempted counts one webhook attempt of a dispatcher by the
// delivery's status after it, and the delivery latency when delivered
// (activities.Activities.ObserveDelivery).
func (m *Metrics) WebhookAttempted(status string, sinceEvent time.Duration) {
	m.webhooks.attempts.WithLabelValues(status).Inc()
	if status == refund.DeliveryDelivered {
		m.webhooks.latency.Observe(sinceEvent.Seconds())
	}
}

// WebhookEndpointDisabled counts an endpoint Backflow disabled, by cause
// (activities.Activities.EndpointDisabled).
func (m *Metrics) WebhookEndpointDisabled(cause string) {
	m.webhooks.disabled.WithLabelValues(cause).Inc()
}
