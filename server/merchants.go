package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
)

// accessRoutes registers the ops API's merchants and keys (scope ops);
// every change is audited.
func (s *Server) accessRoutes(g *echo.Group) {
	g.POST("/merchants", s.opsCreateMerchant, s.idempotent)
	g.GET("/merchants", s.opsListMerchants)
	g.POST("/merchants/:merchantId/api-keys", s.opsCreateAPIKey, s.idempotent)
	g.GET("/merchants/:merchantId/api-keys", s.opsListAPIKeys)
	g.DELETE("/api-keys/:keyId", s.opsRevokeAPIKey)
}

func (s *Server) opsCreateMerchant(c echo.Context) error {
	var req ops.NewMerchantRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	in := refund.NewMerchant{Name: req.Name, ApprovalThreshold: req.ApprovalThreshold}
	t := auditTarget{detail: map[string]any{"name": req.Name, "approvalThreshold": req.ApprovalThreshold}, outcome: map[string]any{}}
	var m refund.Merchant
	_, err := s.audited(c, refund.AuditCreateMerchant, http.StatusCreated, &t, func(ctx context.Context) (err error) {
		if m, err = s.svc.CreateMerchant(ctx, in); err == nil {
			t.outcome["merchantId"] = m.ID
			t.attrs = append(t.attrs, slog.String("merchantId", m.ID.String()))
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, ops.MerchantOf(m))
}

func (s *Server) opsListMerchants(c echo.Context) error {
	var after uuid.UUID
	if err := queryIDs(c, map[string]*uuid.UUID{"cursor": &after}); err != nil {
		return err
	}
	limit, err := queryLimit(c, opsDefaultLimit, opsMaxLimit)
	if err != nil {
		return err
	}
	merchants, next, err := s.svc.ListMerchants(c.Request().Context(), after, limit)
	if err != nil {
		return err
	}
	page := ops.MerchantPage{Data: make([]ops.Merchant, 0, len(merchants))}
	for _, m := range merchants {
		page.Data = append(page.Data, ops.MerchantOf(m))
	}
	if next != uuid.Nil {
		page.NextCursor = next.String()
	}
	return c.JSON(http.StatusOK, page)
}

// opsCreateAPIKey answers with the key's secret, once. An idempotent replay
// answers the same key without it: the secret is never stored.
func (s *Server) opsCreateAPIKey(c echo.Context) error {
	merchantID, err := parseID(c.Param("merchantId"), "merchantId")
	if err != nil {
		return err
	}
	var req ops.NewAPIKeyRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	in := refund.NewAPIKey{MerchantID: merchantID, Name: req.Name, Scopes: req.Scopes}
	t := auditTarget{detail: map[string]any{"merchantId": merchantID, "name": req.Name, "scopes": req.Scopes},
		attrs: []slog.Attr{slog.String("merchantId", merchantID.String())}, outcome: map[string]any{}}
	var created ops.APIKey
	_, err = s.audited(c, refund.AuditCreateAPIKey, http.StatusCreated, &t, func(ctx context.Context) error {
		k, secret, err := s.svc.CreateAPIKey(ctx, in)
		if err == nil {
			created = ops.APIKeyOf(k)
			t.outcome["keyId"], t.outcome["prefix"], t.outcome["scopes"] = k.ID, k.Prefix, k.Scopes
			created.Key = secret
		}
		return err
	})
	if err != nil {
		return err
	}
	withoutSecret := created
	withoutSecret.Key = ""
	replay, err := json.Marshal(withoutSecret)
	if err != nil {
		return err
	}
	c.Set(replayBodyKey, replay)
	return c.JSON(http.StatusCreated, created)
}

func (s *Server) opsListAPIKeys(c echo.Context) error {
	merchantID, err := parseID(c.Param("merchantId"), "merchantId")
	if err != nil {
		return err
	}
	keys, err := s.svc.ListAPIKeys(c.Request().Context(), merchantID)
	if err != nil {
		return err
	}
	out := ops.APIKeyList{Data: make([]ops.APIKey, 0, len(keys))}
	for _, k := range keys {
		out.Data = append(out.Data, ops.APIKeyOf(k))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) opsRevokeAPIKey(c echo.Context) error {
	keyID, err := parseID(c.Param("keyId"), "keyId")
	if err != nil {
		return err
	}
	t := auditTarget{detail: map[string]any{"keyId": keyID}, attrs: []slog.Attr{slog.String("keyId", keyID.String())},
		outcome: map[string]any{}}
	_, err = s.audited(c, refund.AuditRevokeAPIKey, http.StatusNoContent, &t, func(ctx context.Context) error {
		k, err := s.svc.RevokeAPIKey(ctx, keyID)
		if err == nil && k.MerchantID != uuid.Nil {
			t.outcome["merchantId"] = k.MerchantID
		}
		return err
	})
	if err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
