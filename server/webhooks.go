package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
)

// Limits of the webhook API.
const (
	maxWebhookURLLen     = 2048
	defaultSecretGrace   = 24 * time.Hour
	maxSecretGrace       = 7 * 24 * time.Hour
	webhookStatusOn      = "ENABLED"
	webhookStatusFailing = "FAILING"
	webhookStatusOff     = "DISABLED"
)

// webhookRoutes registers the webhook endpoint and event routes (scope webhooks:manage).
func (s *Server) webhookRoutes(g *echo.Group) {
	manage := require(refund.ScopeWebhooksManage)
	g.POST("/webhook-endpoints", s.createWebhookEndpoint, manage, s.idempotent)
	g.GET("/webhook-endpoints", s.listWebhookEndpoints, manage)
	g.GET("/webhook-endpoints/:id", s.getWebhookEndpoint, manage)
	g.DELETE("/webhook-endpoints/:id", s.deleteWebhookEndpoint, manage)
	g.POST("/webhook-endpoints/:id/rotate-secret", s.rotateWebhookSecret, manage, s.idempotent)
	g.GET("/events", s.listEvents, manage)
	g.GET("/events/:id", s.getEvent, manage)
	g.POST("/events/:id/redeliver", s.redeliverEvent, manage, s.idempotent)
}

// WebhookEndpointObject is a webhook endpoint as the API shows it. Secret is
// only set in the answers to create and rotate-secret: it is shown once.
type WebhookEndpointObject struct {
	ID                      uuid.UUID  `json:"id"`
	URL                     string     `json:"url"`
	EventTypes              []string   `json:"eventTypes"`
	Status                  string     `json:"status"`
	FailingSince            *time.Time `json:"failingSince,omitempty"`
	ConsecutiveFailures     int        `json:"consecutiveFailures,omitempty"`
	DisabledAt              *time.Time `json:"disabledAt,omitempty"`
	DisabledReason          string     `json:"disabledReason,omitempty"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt,omitempty"`
	CreatedAt               time.Time  `json:"createdAt"`
	Secret                  string     `json:"secret,omitempty"`
}

func endpointObject(e refund.WebhookEndpoint, withSecret bool) WebhookEndpointObject {
	o := WebhookEndpointObject{ID: e.ID, URL: e.URL, EventTypes: e.EventTypes, Status: webhookStatusOn,
		DisabledAt: utc(e.DisabledAt), DisabledReason: e.DisabledReason, CreatedAt: e.CreatedAt.UTC()}
	switch {
	case e.DisabledAt != nil:
		o.Status = webhookStatusOff
	case e.Failing():
		o.Status, o.FailingSince, o.ConsecutiveFailures = webhookStatusFailing, utc(e.FailingSince), e.Failures
	}
	if e.PreviousSecretExpiresAt != nil && time.Now().Before(*e.PreviousSecretExpiresAt) {
		o.PreviousSecretExpiresAt = utc(e.PreviousSecretExpiresAt)
	}
	if withSecret {
		o.Secret = e.Secret
	}
	return o
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

type createWebhookEndpointRequest struct {
	URL        *string  `json:"url"`
	EventTypes []string `json:"eventTypes"`
}

func (req createWebhookEndpointRequest) validate(merchantID uuid.UUID) (refund.NewWebhookEndpoint, error) {
	var v refund.Validator
	in := refund.NewWebhookEndpoint{MerchantID: merchantID, EventTypes: slices.Clone(refund.EventTypes)}
	if req.URL == nil {
		v.Check(false, "url", "is required")
	} else {
		in.URL = strings.TrimSpace(*req.URL)
		v.Check(validWebhookURL(in.URL), "url", "must be an absolute http or https URL of at most %d characters, without credentials or fragment", maxWebhookURLLen)
	}
	if req.EventTypes != nil {
		v.Check(len(req.EventTypes) > 0, "eventTypes", "must list at least one event type (omit it for all)")
		in.EventTypes = nil
		for i, t := range req.EventTypes {
			field := fmt.Sprintf("eventTypes[%d]", i)
			v.Check(slices.Contains(refund.EventTypes, t), field, "must be one of %s", strings.Join(refund.EventTypes, ", "))
			v.Check(!slices.Contains(in.EventTypes, t), field, "is listed twice")
			in.EventTypes = append(in.EventTypes, t)
		}
	}
	return in, v.Err()
}

func validWebhookURL(raw string) bool {
	if raw == "" || len(raw) > maxWebhookURLLen {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Hostname() != "" && u.User == nil &&
		u.Fragment == "" && !strings.ContainsAny(raw, " \t\r\n")
}

func (s *Server) createWebhookEndpoint(c echo.Context) error {
	var req createWebhookEndpointRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	in, err := req.validate(principal(c).MerchantID)
	if err != nil {
		return err
	}
	in.IdempotencyKey = c.Request().Header.Get("Idempotency-Key")
	e, err := s.svc.CreateEndpoint(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, endpointObject(e, true))
}

type webhookEndpointList struct {
	Data []WebhookEndpointObject `json:"data"`
}

func (s *Server) listWebhookEndpoints(c echo.Context) error {
	eps, err := s.svc.ListEndpoints(c.Request().Context(), principal(c).MerchantID)
	if err != nil {
		return err
	}
	out := webhookEndpointList{Data: make([]WebhookEndpointObject, 0, len(eps))}
	for _, e := range eps {
		out.Data = append(out.Data, endpointObject(e, false))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getWebhookEndpoint(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	e, err := s.svc.GetEndpoint(c.Request().Context(), scope(c), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, endpointObject(e, false))
}

func (s *Server) deleteWebhookEndpoint(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	if err := s.svc.DeleteEndpoint(c.Request().Context(), principal(c).MerchantID, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

type rotateSecretRequest struct {
	GracePeriodSeconds *int64 `json:"gracePeriodSeconds"`
}

func (s *Server) rotateWebhookSecret(c echo.Context) error {
	var req rotateSecretRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	grace := defaultSecretGrace
	if req.GracePeriodSeconds != nil {
		var v refund.Validator
		g := *req.GracePeriodSeconds
		v.Check(g >= 0 && g <= int64(maxSecretGrace/time.Second), "gracePeriodSeconds", "must be 0..%d", int64(maxSecretGrace/time.Second))
		if err := v.Err(); err != nil {
			return err
		}
		grace = time.Duration(g) * time.Second
	}
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	e, err := s.svc.RotateSecret(c.Request().Context(), principal(c).MerchantID, id, grace, c.Request().Header.Get("Idempotency-Key"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, endpointObject(e, true))
}

// EventObject is an event as the API shows it; Data is the refund object
// at the time of the event (or the endpoint disabled), as in the webhook
// body.
type EventObject struct {
	ID        uuid.UUID       `json:"id"`
	Type      string          `json:"type"`
	RefundID  *uuid.UUID      `json:"refundId,omitempty"`
	Sequence  int             `json:"sequence"`
	CreatedAt time.Time       `json:"createdAt"`
	Data      json.RawMessage `json:"data"`
}

// EventDetail is an event with its delivery attempts, oldest first.
type EventDetail struct {
	EventObject
	Attempts []WebhookAttemptObject `json:"attempts"`
}

// WebhookAttemptObject is one delivery attempt; StatusCode is null when no
// HTTP answer came back.
type WebhookAttemptObject struct {
	ID         uuid.UUID `json:"id"`
	EndpointID uuid.UUID `json:"endpointId"`
	Attempt    int       `json:"attempt"`
	StatusCode *int      `json:"statusCode"`
	LatencyMS  int       `json:"latencyMs"`
	Error      string    `json:"error,omitempty"`
	Succeeded  bool      `json:"succeeded"`
	CreatedAt  time.Time `json:"createdAt"`
}

func eventObject(e refund.Event) EventObject {
	o := EventObject{ID: e.ID, Type: e.Type, Sequence: e.Sequence, CreatedAt: e.CreatedAt.UTC(), Data: e.Payload}
	if e.RefundID != uuid.Nil {
		o.RefundID = &e.RefundID
	}
	return o
}

type eventPage struct {
	Data       []EventObject `json:"data"`
	NextCursor string        `json:"nextCursor,omitempty"`
}

func (s *Server) listEvents(c echo.Context) error {
	f := refund.EventFilter{Scope: scope(c), Type: c.QueryParam("type"), Limit: defaultListLimit}
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"refundId": &f.RefundID, "cursor": &f.After}); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(c, defaultListLimit, maxListLimit); err != nil {
		return err
	}
	if f.Type != "" && !slices.Contains(refund.EventTypes, f.Type) {
		return problem(CodeMalformed, "unknown event type "+f.Type, FieldError{Field: "type", Message: "must be one of " + strings.Join(refund.EventTypes, ", ")})
	}
	events, next, err := s.svc.ListEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := eventPage{Data: make([]EventObject, 0, len(events))}
	for _, e := range events {
		page.Data = append(page.Data, eventObject(e))
	}
	if next != uuid.Nil {
		page.NextCursor = next.String()
	}
	return c.JSON(http.StatusOK, page)
}

func (s *Server) getEvent(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	e, err := s.svc.GetEvent(ctx, scope(c), id)
	if err != nil {
		return err
	}
	attempts, err := s.svc.EventAttempts(ctx, e.ID)
	if err != nil {
		return err
	}
	out := EventDetail{EventObject: eventObject(e), Attempts: make([]WebhookAttemptObject, 0, len(attempts))}
	for _, a := range attempts {
		out.Attempts = append(out.Attempts, WebhookAttemptObject{ID: a.ID, EndpointID: a.EndpointID, Attempt: a.Attempt,
			StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error, Succeeded: a.Succeeded, CreatedAt: a.CreatedAt.UTC()})
	}
	return c.JSON(http.StatusOK, out)
}

type redeliverRequest struct {
	EndpointID *string `json:"endpointId"`
}

// RedeliveryResult answers POST /v1/events/{id}/redeliver.
type RedeliveryResult struct {
	EventID    uuid.UUID            `json:"eventId"`
	Deliveries []refunds.Redelivery `json:"deliveries"`
}

func (s *Server) redeliverEvent(c echo.Context) error {
	var req redeliverRequest
	if err := decodeOptional(c, &req); err != nil {
		return err
	}
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	endpointID, err := optionalID(req.EndpointID, "endpointId")
	if err != nil {
		return err
	}
	started, err := s.svc.Redeliver(c.Request().Context(), scope(c), id, endpointID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, RedeliveryResult{EventID: id, Deliveries: started})
}
