package server

import (
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
)

const principalKey = "principal"

// authenticate accepts `Authorization: Bearer <key>` or HTTP Basic with the
// key as user name.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := bearerOrBasic(c)
		if key == "" {
			return unauthorized(c, "missing API key: send Authorization: Bearer <key> or Basic auth with the key as user name")
		}
		p, err := s.svc.Authenticate(c.Request().Context(), key, uuid.Nil)
		if errors.Is(err, refund.ErrNotFound) {
			return unauthorized(c, "invalid API key")
		}
		if err != nil {
			return err
		}
		c.Set(principalKey, p)
		return next(c)
	}
}

func unauthorized(c echo.Context, detail string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="backflow", Basic realm="backflow"`)
	return problem(CodeUnauthorized, detail)
}

func bearerOrBasic(c echo.Context) string {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if token, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(token)
	}
	if user, _, ok := c.Request().BasicAuth(); ok {
		return user
	}
	return ""
}

// require rejects callers whose key lacks scope. Ops keys only reach ops routes.
func require(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if !principal(c).HasScope(scope) {
				return problem(CodeForbidden, "API key lacks the "+scope+" scope")
			}
			return next(c)
		}
	}
}

func principal(c echo.Context) refund.Principal {
	p, _ := c.Get(principalKey).(refund.Principal)
	return p
}
