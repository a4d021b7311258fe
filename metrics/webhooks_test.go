package metrics_test

import (
	"testing"
	"time"

	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/refund"
)

// TestWebhookMetrics: attempts by the delivery's status, the latency of
// delivered ones only, and disabled endpoints by cause.
func TestWebhookMetrics(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	m.WebhookAttempted(refund.DeliveryDelivered, 1500*time.Millisecond)
	m.WebhookAttempted(refund.DeliveryPending, time.Hour)
	m.WebhookAttempted(refund.DeliveryPending, time.Hour)
	m.WebhookEndpointDisabled("failing")
	fams := scrape(t, serve(t, m))
	mustSample(t, fams, metrics.WebhookAttempts, map[string]string{"status": refund.DeliveryPending}, 2)
	mustSample(t, fams, metrics.WebhookAttempts, map[string]string{"status": refund.DeliveryDelivered}, 1)
	mustSample(t, fams, metrics.WebhookEndpointsDisabled, map[string]string{"cause": "failing"}, 1)
	for _, mm := range fams[metrics.WebhookDeliveryLatency].GetMetric() {
		if h := mm.GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 1.5 {
			t.Fatalf("delivery latency: %d samples summing %v, want the delivered one (1.5 s)", h.GetSampleCount(), h.GetSampleSum())
		}
	}
}
