package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
)

// EchoMiddleware records request metrics labelled by route template
// (/v1/refunds/:id), never by raw paths, so the series stay bounded.
func (m *Metrics) EchoMiddleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err) // render now, so the status below is the one sent
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.observeRequest(c.Request().Method, route, c.Response().Status, time.Since(start))
		return nil
	}
}

func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	method = knownMethod(method)
	m.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
	m.httpDuration.WithLabelValues(method, route).Observe(d.Seconds())
}

// knownMethod bounds the method label to the standard methods.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
