package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

const (
	opsAuditDeadline = 5 * time.Second
	opsDefaultLimit  = 50
	opsMaxLimit      = 200
)

// opsRoutes registers the ops API (scope ops). Ops keys act across
// merchants; every mutating call is audited (see audited).
func (s *Server) opsRoutes(g *echo.Group) {
	g.GET("/refunds", s.opsListRefunds)
	g.GET("/refunds/:id", s.opsShowRefund)
	g.POST("/refunds/:id/retry", s.opsRefundAction(refund.AuditRetry, http.StatusAccepted,
		func(ctx context.Context, r refund.Refund, actor string, _ ops.ActionRequest) (string, error) {
			return s.svc.Retry(ctx, r, actor)
		}), s.idempotent)
	g.POST("/refunds/:id/cancel", s.opsRefundAction(refund.AuditCancel, http.StatusOK,
		func(ctx context.Context, r refund.Refund, actor string, _ ops.ActionRequest) (string, error) {
			_, err := s.svc.Cancel(ctx, refund.AllMerchants, r.ID, actor)
			return "refund canceled; its reservation is released", err
		}), s.idempotent)
	g.POST("/refunds/:id/approve", s.opsRefundAction(refund.AuditApprove, http.StatusOK,
		func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error) {
			return s.svc.Approve(ctx, r, actor, req.Reason)
		}), s.idempotent)
	g.POST("/refunds/:id/reject", s.opsRefundAction(refund.AuditReject, http.StatusOK,
		func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error) {
			return s.svc.Reject(ctx, r, actor, req.Reason)
		}), s.idempotent)
	g.POST("/refunds/:id/resolve", s.opsRefundAction(refund.AuditResolve, http.StatusAccepted,
		func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error) {
			return s.svc.Resolve(ctx, r, actor, req.Status, req.Reason)
		}), s.idempotent)
	g.POST("/events/:id/redeliver", s.opsRedeliver, s.idempotent)
	g.GET("/audit", s.opsListAudit)
	s.accessRoutes(g)
}

func opsActor(p refund.Principal) string { return "ops:" + p.KeyID.String() }

func requestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

func (s *Server) opsListRefunds(c echo.Context) error {
	f := refund.RefundFilter{Scope: refund.AllMerchants, Status: refund.Status(c.QueryParam("status")),
		Provider: c.QueryParam("provider"), Limit: opsDefaultLimit}
	var merchantID uuid.UUID
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"merchantId": &merchantID, "cursor": &f.After}); err != nil {
		return err
	}
	if merchantID != uuid.Nil {
		f.Scope = refund.OfMerchant(merchantID)
	}
	if raw := c.QueryParam("stuck"); raw != "" {
		stuck, err := strconv.ParseBool(raw)
		f.Stuck = &stuck
		if err != nil {
			return problem(CodeMalformed, "stuck must be true or false", FieldError{Field: "stuck", Message: "must be true or false"})
		}
	}
	if f.Status != "" && !f.Status.Valid() {
		return problem(CodeMalformed, "unknown status "+string(f.Status), FieldError{Field: "status", Message: "unknown status"})
	}
	if f.Limit, err = queryLimit(c, opsDefaultLimit, opsMaxLimit); err != nil {
		return err
	}
	refunds, next, err := s.svc.List(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := ops.RefundPage{Data: make([]ops.Refund, 0, len(refunds))}
	for _, r := range refunds {
		page.Data = append(page.Data, ops.RefundOf(r))
	}
	if next != uuid.Nil {
		page.NextCursor = next.String()
	}
	return c.JSON(http.StatusOK, page)
}

// opsShowRefund is one readable view of a refund: its row, ledger, events,
// webhook attempts, ops audit and the live status query of its workflow.
func (s *Server) opsShowRefund(c echo.Context) error {
	id, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	d, err := s.svc.Show(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ops.RefundDetail{Refund: ops.RefundOf(d.Refund), Ledger: d.Ledger, Events: d.Events,
		WebhookAttempts: d.WebhookAttempts, Workflow: d.Workflow, Audit: d.Audit})
}

// opsAction is an ops action on a refund; it returns a message for the operator.
type opsAction func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error)

// opsRefundAction reads the refund, runs an audited action on it and
// answers with the refund after it. status is the answer of a success:
// 202 for actions that only ask the workflow to act (accepted, not done).
func (s *Server) opsRefundAction(action string, status int, run opsAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c.Param("id"), "id")
		if err != nil {
			return err
		}
		var req ops.ActionRequest
		if err := decodeOptional(c, &req); err != nil {
			return err
		}
		ctx := c.Request().Context()
		r, lookupErr := s.svc.Get(ctx, refund.AllMerchants, id)
		if lookupErr != nil && !isRule(lookupErr, refund.CodeRefundNotFound) {
			return lookupErr
		}
		t := auditTarget{refundID: id, detail: map[string]any{"workflowId": workflows.RefundWorkflowID(id)},
			attrs: []slog.Attr{slog.String("refundId", id.String()), slog.String("workflowId", workflows.RefundWorkflowID(id))}}
		if req.Reason != "" {
			t.detail["reason"] = req.Reason
		}
		if lookupErr == nil {
			t.detail["merchantId"], t.detail["statusBefore"] = r.MerchantID, r.Status
			t.attrs = append(t.attrs, slog.String("merchantId", r.MerchantID.String()))
		}
		res := ops.ActionResult{Action: action, RefundID: id, WorkflowID: workflows.RefundWorkflowID(id)}
		res.AuditID, err = s.audited(c, action, status, &t, func(ctx context.Context) (err error) {
			if lookupErr != nil {
				return lookupErr
			}
			res.Message, err = run(ctx, r, opsActor(principal(c)), req)
			return err
		})
		if err != nil {
			return err
		}
		if r, err = s.svc.Get(ctx, refund.AllMerchants, id); err != nil {
			return err
		}
		view := ops.RefundOf(r)
		res.Refund = &view
		return c.JSON(status, res)
	}
}

// auditTarget is what an audited action acts on, for its entry and log
// line. The action may add to outcome (e.g. the id of what it created) and
// attrs; both are read once it ran.
type auditTarget struct {
	refundID uuid.UUID // uuid.Nil when unknown or not a refund
	detail   map[string]any
	attrs    []slog.Attr
	outcome  map[string]any
}

// audited writes the ops audit entry of an action before it runs (no entry,
// no action) and completes it with the outcome, so refused and failed
// attempts are audited too. status is the answer of a success.
func (s *Server) audited(c echo.Context, action string, status int, t *auditTarget, run func(context.Context) error) (uuid.UUID, error) {
	ctx := c.Request().Context()
	p := principal(c)
	t.detail["requestId"] = requestID(c)
	auditID, err := s.svc.BeginAudit(ctx, p.KeyID, action, t.refundID, t.detail)
	if err != nil {
		return uuid.Nil, err
	}
	actionErr := run(ctx)
	outcome := map[string]any{"outcome": "succeeded", "status": status}
	for k, v := range t.outcome {
		outcome[k] = v
	}
	level := slog.LevelInfo
	if actionErr != nil {
		p := toProblem(actionErr)
		outcome = map[string]any{"outcome": "failed", "status": p.Status, "code": p.Code, "error": p.Detail}
		if p.Status >= 500 {
			outcome["error"] = actionErr.Error()
			level = slog.LevelError
		}
	}
	// The action has happened: record its outcome even if the caller went away.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opsAuditDeadline)
	defer cancel()
	attrs := append(t.attrs, slog.String("action", action), slog.String("auditId", auditID.String()),
		slog.String("actorKey", p.KeyID.String()), slog.Any("outcome", outcome["outcome"]),
		slog.String("requestId", requestID(c)))
	if err := s.svc.FinishAudit(ctx, auditID, outcome); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "ops action ran but its audit outcome was not recorded",
			append(attrs, slog.Any("error", err))...)
	}
	if actionErr != nil {
		attrs = append(attrs, slog.String("error", actionErr.Error()))
	}
	s.log.LogAttrs(ctx, level, "ops action", attrs...)
	return auditID, actionErr
}

// opsRedeliver starts a new delivery of an event to its merchant's endpoints.
func (s *Server) opsRedeliver(c echo.Context) error {
	eventID, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	ev, lookupErr := s.svc.GetEvent(ctx, refund.AllMerchants, eventID)
	if lookupErr != nil && !isRule(lookupErr, refund.CodeEventNotFound) {
		return lookupErr
	}
	t := auditTarget{refundID: ev.RefundID, detail: map[string]any{"eventId": eventID},
		attrs: []slog.Attr{slog.String("eventId", eventID.String())}}
	if lookupErr == nil {
		t.detail["merchantId"], t.detail["workflowId"] = ev.MerchantID, workflows.RefundWorkflowID(ev.RefundID)
		t.attrs = append(t.attrs, slog.String("refundId", ev.RefundID.String()),
			slog.String("workflowId", workflows.RefundWorkflowID(ev.RefundID)), slog.String("merchantId", ev.MerchantID.String()))
	}
	auditID, err := s.audited(c, refund.AuditRedeliver, http.StatusAccepted, &t, func(ctx context.Context) error {
		if lookupErr != nil {
			return lookupErr
		}
		_, err := s.svc.Redeliver(ctx, refund.AllMerchants, eventID, uuid.Nil)
		return err
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, ops.ActionResult{Action: refund.AuditRedeliver, AuditID: auditID, RefundID: ev.RefundID,
		EventID: &eventID, Message: "redelivery started to the merchant's subscribed endpoints"})
}

func (s *Server) opsListAudit(c echo.Context) error {
	var f refund.AuditFilter
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"refundId": &f.RefundID, "cursor": &f.Before}); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(c, opsDefaultLimit, opsMaxLimit); err != nil {
		return err
	}
	// One more than asked tells whether there is a next page.
	f.Limit++
	entries, err := s.svc.ListAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := ops.AuditPage{Data: entries}
	if len(entries) == f.Limit {
		page.Data = entries[:f.Limit-1]
		page.NextCursor = page.Data[len(page.Data)-1].ID.String()
	}
	if page.Data == nil {
		page.Data = []refund.AuditEntry{}
	}
	return c.JSON(http.StatusOK, page)
}
