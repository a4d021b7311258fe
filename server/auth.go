package server

import (
	"errors"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/refund"
)

const principalKey = "principal"

// authenticate accepts `Authorization: Bearer <key>`, or HTTP Basic with
// the key as user name and an empty password (Stripe's convention) or the
// key id as user name and the key as password (001_*). Anything else is 401.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key, keyID, ok := credentials(c)
		if !ok {
			return unauthorized(c, "missing API key: send Authorization: Bearer <key>, or Basic auth with the key as user "+
				"name and an empty password, or the key id as user name and the key as password")
		}
		p, err := s.svc.Authenticate(c.Request().Context(), key, keyID)
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

// credentials reads the key (and, with Basic auth as key id and key, the
// key's id) from the Authorization header; ok is false when none was sent.
// A Basic pair of another shape yields an id no key has, so it is 401.
func credentials(c echo.Context) (key string, keyID uuid.UUID, ok bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	if token, found := strings.CutPrefix(h, "Bearer "); found {
		token = strings.TrimSpace(token)
		return token, uuid.Nil, token != ""
	}
	user, password, found := c.Request().BasicAuth()
	switch {
	case !found || user == "":
		return "", uuid.Nil, false
	case password == "":
		return user, uuid.Nil, true
	}
	id, err := uuid.Parse(user)
	if err != nil {
		id = uuid.Max // the user name is neither a key with no password nor a key id
	}
	return password, id, true
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
