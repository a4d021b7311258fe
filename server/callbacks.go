package server

import (
	"errors"
	"io"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

// providerCallback verifies a provider's signed callback and signals the
// refund's workflow. Duplicate and late callbacks are acknowledged: the
// workflow finalizes a refund once, and a finished one ignores them.
func (s *Server) providerCallback(c echo.Context) error {
	name := c.Param("provider")
	conn, ok := s.providers.Get(name)
	if !ok {
		return problem(CodeNotFound, "unknown provider "+name)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxRequestBodyBytes))
	if err != nil {
		return problem(CodeMalformed, "request body too large or unreadable")
	}
	ev, err := conn.ParseCallback(c.Request().Header, body)
	if errors.Is(err, providers.ErrIgnoredCallback) {
		// Signed, but about something else than a refund: acknowledge so the provider stops retrying.
		return c.JSON(http.StatusOK, map[string]bool{"received": true})
	}
	if err != nil {
		return problem(CodeUnauthorized, "callback signature or body rejected: "+err.Error())
	}
	ctx := c.Request().Context()
	refundID, _ := uuid.Parse(ev.RefundID)
	if refundID == uuid.Nil {
		r, err := s.store.FindRefundByProviderReference(ctx, name, ev.Result.ProviderReference)
		if errors.Is(err, store.ErrNotFound) {
			return problem(CodeNotFound, "no refund with that provider reference")
		}
		if err != nil {
			return err
		}
		refundID = r.ID
	}
	err = s.temporal.SignalWorkflow(ctx, workflows.RefundWorkflowID(refundID), "", workflows.SignalProviderEvent,
		workflows.ProviderEvent{Result: ev.Result})
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		s.log.InfoContext(ctx, "late provider callback for a finished refund", "refundId", refundID,
			"workflowId", workflows.RefundWorkflowID(refundID), "provider", name)
	} else if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}
