package server_test

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
)

// testProbesConformance: the public probes and the document itself.
func testProbesConformance(t *testing.T, c *conformance) {
	c.do(t, call{method: "GET", path: "/healthz", auth: "none", want: 200})
	c.do(t, call{method: "GET", path: "/readyz", auth: "none", want: 200})
	r := c.do(t, call{method: "GET", path: "/openapi.json", auth: "none", want: 200})
	if !bytes.Equal(r.Body, server.OpenAPI()) {
		t.Error("GET /openapi.json does not serve the embedded document")
	}
}

// testMetricsConformance: /metrics is served when the API runs with
// metrics, as `backflow api` does.
func testMetricsConformance(t *testing.T, c *conformance) {
	s := c.s
	refundID := c.newRefund(t, c.newCardTransaction(t), 2000)
	m := metrics.New()
	m.WatchStore(s.Store, metrics.StoreScrapeTimeout, s.Logger)
	svc := rig.NewService(s.Store, s.Temporal, s.TaskQueue, s.Providers, s.Logger, refunds.Hooks{Created: m.RefundCreated})
	api := httptest.NewServer(server.New(server.Deps{Service: svc, Logger: s.Logger, Metrics: m.Handler(),
		Middleware: []echo.MiddlewareFunc{m.EchoMiddleware}}).Handler())
	t.Cleanup(api.Close)
	c.do(t, call{base: api.URL, method: "GET", path: "/v1/refunds/" + refundID, want: 200})
	r := c.do(t, call{base: api.URL, method: "GET", path: "/metrics", auth: "none", want: 200})
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{metrics.HTTPRequests + `{code="200",method="GET",route="/v1/refunds/:id"} 1`, metrics.StuckRefunds + " "} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("the scrape lacks %q", want)
		}
	}
	// Prometheus may ask for the protobuf format.
	openapi3filter.RegisterBodyDecoder(protobufMetrics, openapi3filter.FileBodyDecoder)
	t.Cleanup(func() { openapi3filter.UnregisterBodyDecoder(protobufMetrics) })
	r = c.do(t, call{base: api.URL, method: "GET", path: "/metrics", auth: "none", want: 200,
		headers: []string{"Accept", protobufMetrics + ";proto=io.prometheus.client.MetricFamily;encoding=delimited"}})
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, protobufMetrics) {
		t.Errorf("content type %q", ct)
	}
}

// protobufMetrics is the media type of the Prometheus protobuf exposition format.
const protobufMetrics = "application/vnd.google.protobuf"
