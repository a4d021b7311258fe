package server

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

// webhookRoutes registers the webhook endpoint and event routes.
func (s *Server) webhookRoutes(g *echo.Group) {}

// RedeliverEvent starts a new delivery of an event to the merchant's endpoints.
func (s *Server) RedeliverEvent(ctx context.Context, merchantID, eventID uuid.UUID) error {
	return errors.New("webhooks are not available yet")
}
