package server

import "github.com/labstack/echo/v4"

// opsRoutes registers the ops API (scope ops).
func (s *Server) opsRoutes(g *echo.Group) {}
