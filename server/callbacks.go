package server

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refunds"
)

// providerCallback hands a provider's signed callback to the service.
// Duplicate and late callbacks are acknowledged, so the provider stops
// retrying them.
func (s *Server) providerCallback(c echo.Context) error {
	name := c.Param("provider")
	body, err := readBody(c)
	if err != nil {
		return err
	}
	err = s.svc.HandleCallback(c.Request().Context(), name, c.Request().Header, body)
	switch {
	case errors.Is(err, refunds.ErrUnknownProvider):
		return problem(CodeNotFound, "unknown provider "+name)
	case errors.Is(err, refunds.ErrCallbackRejected):
		return problem(CodeUnauthorized, err.Error())
	case errors.Is(err, refunds.ErrNoMatchingRefund):
		return problem(CodeNotFound, "no refund of provider "+name+" matches this callback")
	case err != nil:
		return err
	}
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}
