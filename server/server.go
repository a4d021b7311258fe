// Package server is Backflow's HTTP API: it parses, authorizes, calls the
// refunds service and renders. No business rule lives here.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
)

// Deps are the server's dependencies.
type Deps struct {
	Service *refunds.Service
	Logger  *slog.Logger
	// Metrics, when set, is served on /metrics.
	Metrics http.Handler
	// Middleware runs first on every request (e.g. request metrics).
	Middleware []echo.MiddlewareFunc
	// RateLimit is each API key's token bucket; zero: no limit.
	RateLimit RateLimit
	// RateLimited, when set, is told about each request refused by the
	// rate limit, with its route template (metrics).
	RateLimited func(route string)
}

// Server is the Backflow API.
type Server struct {
	svc         *refunds.Service
	log         *slog.Logger
	echo        *echo.Echo
	limiter     *limiter // nil: no rate limit
	rateLimited func(route string)
}

// New builds the API with every route.
func New(d Deps) *Server {
	s := &Server{svc: d.Service, log: d.Logger, rateLimited: d.RateLimited}
	if d.RateLimit.PerSecond > 0 {
		s.limiter = newLimiter(d.RateLimit)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(d.Middleware...)
	e.Use(middleware.Recover(), middleware.RequestID(), s.accessLog, limitBody)
	s.echo = e

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.json", serveOpenAPI)
	if d.Metrics != nil {
		e.GET("/metrics", echo.WrapHandler(d.Metrics))
	}
	e.POST("/v1/provider-callbacks/:provider", s.providerCallback)

	v1 := e.Group("/v1", s.authenticate, s.rateLimit)
	v1.POST("/sessions", s.createSession, require(refund.ScopeTransactionsWrite), s.idempotent)
	v1.POST("/transactions", s.createTransaction, require(refund.ScopeTransactionsWrite), s.idempotent)
	v1.GET("/transactions/:id", s.getTransaction, require(refund.ScopeRefundsRead))
	v1.POST("/refunds", s.createRefund, require(refund.ScopeRefundsWrite), s.idempotent)
	v1.GET("/refunds", s.listRefunds, require(refund.ScopeRefundsRead))
	v1.GET("/refunds/:id", s.getRefund, require(refund.ScopeRefundsRead))
	v1.POST("/refunds/:id/cancel", s.cancelRefund, require(refund.ScopeRefundsWrite), s.idempotent)
	s.webhookRoutes(v1)
	s.opsRoutes(v1.Group("/ops", require(refund.ScopeOps)))
	return s
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		s.log.LogAttrs(c.Request().Context(), slog.LevelDebug, "request",
			slog.String("method", c.Request().Method), slog.String("path", c.Request().URL.Path),
			slog.Int("status", c.Response().Status), slog.Duration("latency", time.Since(start)),
			slog.String("requestId", c.Response().Header().Get(echo.HeaderXRequestID)))
		return nil
	}
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	checks, ok := s.svc.Ready(ctx)
	if !ok {
		return c.JSON(http.StatusServiceUnavailable, checks)
	}
	return c.JSON(http.StatusOK, checks)
}

// decode reads a JSON body strictly: unknown fields, wrong types and
// trailing data are 400, an oversized body 413.
func decode(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return problem(CodeMalformed, "invalid JSON: "+jsonErrorDetail(err))
	}
	if dec.More() {
		return problem(CodeMalformed, "invalid JSON: unexpected data after the object")
	}
	return nil
}

// decodeOptional decodes a JSON body strictly, like decode, leaving v
// untouched when the body is empty.
func decodeOptional(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	c.Request().Body = io.NopCloser(bytes.NewReader(body))
	return decode(c, v)
}

func jsonErrorDetail(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type.String())
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return msg
}

// queryIDs reads optional UUID query parameters into their destinations.
func queryIDs(c echo.Context, dst map[string]*uuid.UUID) error {
	for field, id := range dst {
		if raw := c.QueryParam(field); raw != "" {
			var err error
			if *id, err = parseID(raw, field); err != nil {
				return err
			}
		}
	}
	return nil
}

// queryLimit reads ?limit=, 1..max, def when absent.
func queryLimit(c echo.Context, def, max int) (int, error) {
	raw := c.QueryParam("limit")
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > max {
		return 0, problem(CodeMalformed, fmt.Sprintf("limit must be 1..%d", max), FieldError{Field: "limit", Message: "out of range"})
	}
	return n, nil
}

// parseID reads a UUID path or query parameter; a bad one is 400.
func parseID(raw, field string) (uuid.UUID, error) {
	id, err := uuid.Parse(raw)
	if err != nil {
		return uuid.Nil, problem(CodeMalformed, field+" is not a valid UUID", refund.FieldError{Field: field, Message: "must be a UUID"})
	}
	return id, nil
}

func writeJSON(c echo.Context, v any) error {
	enc := json.NewEncoder(c.Response())
	return enc.Encode(v)
}

// scopeOwner is who idempotency keys belong to: the merchant, or the ops key itself.
func scopeOwner(p refund.Principal) uuid.UUID {
	if p.MerchantID != uuid.Nil {
		return p.MerchantID
	}
	return p.KeyID
}

// scope is what the caller may read: its merchant's rows, every merchant's for ops.
func scope(c echo.Context) refund.Scope { return principal(c).ReadScope() }
