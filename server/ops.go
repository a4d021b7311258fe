package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

const (
	opsQueryDeadline  = 3 * time.Second
	opsUpdateDeadline = 10 * time.Second
	opsAuditDeadline  = 5 * time.Second
	opsDefaultLimit   = 50
	opsMaxLimit       = 200
)

// opsRoutes registers the ops API (scope ops). Ops keys act across
// merchants; every mutating call is written to ops_audit before it runs and
// completed with its outcome, so refused and failed attempts are audited too.
func (s *Server) opsRoutes(g *echo.Group) {
	g.GET("/refunds", s.opsListRefunds)
	g.GET("/refunds/:id", s.opsShowRefund)
	g.POST("/refunds/:id/retry", s.opsRefundAction(store.AuditRetry, s.opsRetry), s.idempotent)
	g.POST("/refunds/:id/cancel", s.opsRefundAction(store.AuditCancel, s.opsCancel), s.idempotent)
	g.POST("/refunds/:id/approve", s.opsRefundAction(store.AuditApprove, s.opsDecide(workflows.UpdateApprove)), s.idempotent)
	g.POST("/refunds/:id/reject", s.opsRefundAction(store.AuditReject, s.opsDecide(workflows.UpdateReject)), s.idempotent)
	g.POST("/refunds/:id/resolve", s.opsRefundAction(store.AuditResolve, s.opsResolve), s.idempotent)
	g.POST("/events/:id/redeliver", s.opsRedeliver, s.idempotent)
	g.GET("/audit", s.opsListAudit)
}

// opsProblem is a problem with an ops-only code, whose status the caller picks.
func opsProblem(status int, code, detail string) *Problem {
	return &Problem{Type: problemTypeBase + code, Title: titles[status], Status: status, Detail: detail, Code: code}
}

func opsActor(p refund.Principal) string { return "ops:" + p.KeyID.String() }

func requestID(c echo.Context) string { return c.Response().Header().Get(echo.HeaderXRequestID) }

func (s *Server) opsListRefunds(c echo.Context) error {
	f := store.RefundFilter{Status: refund.Status(c.QueryParam("status")), Provider: c.QueryParam("provider"), Limit: opsDefaultLimit}
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"merchantId": &f.MerchantID, "cursor": &f.After}); err != nil {
		return err
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
	refunds, next, err := s.store.ListRefunds(c.Request().Context(), f)
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
	ctx := c.Request().Context()
	r, err := s.store.GetRefund(ctx, uuid.Nil, id)
	if errors.Is(err, refund.ErrNotFound) {
		return problem(refund.CodeRefundNotFound, "no refund "+id.String())
	}
	if err != nil {
		return err
	}
	d := ops.RefundDetail{Refund: ops.RefundOf(r)}
	if d.Ledger, err = s.store.ListLedger(ctx, id); err != nil {
		return fmt.Errorf("read ledger: %w", err)
	}
	if d.Events, err = s.store.EventsOfRefund(ctx, id); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	eventIDs := make([]uuid.UUID, 0, len(d.Events))
	for _, e := range d.Events {
		eventIDs = append(eventIDs, e.ID)
	}
	if d.WebhookAttempts, err = s.store.DeliveryAttempts(ctx, eventIDs); err != nil {
		return fmt.Errorf("read webhook attempts: %w", err)
	}
	if d.Audit, err = s.store.ListAudit(ctx, store.AuditFilter{RefundID: id}); err != nil {
		return fmt.Errorf("read audit: %w", err)
	}
	slices.Reverse(d.Audit) // oldest first, like the ledger, events and timeline
	if d.Ledger == nil {
		d.Ledger = []refund.LedgerEntry{}
	}
	d.Workflow = s.liveWorkflow(ctx, r)
	return c.JSON(http.StatusOK, d)
}

// liveWorkflow describes the refund's workflow and asks it for its status.
// A missing or silent workflow is reported in Note, never as an error: the
// database view stays available when Temporal is not.
func (s *Server) liveWorkflow(ctx context.Context, r refund.Refund) ops.Workflow {
	wf := ops.Workflow{ID: workflows.RefundWorkflowID(r.ID)}
	ctx, cancel := context.WithTimeout(ctx, opsQueryDeadline)
	defer cancel()
	desc, err := s.temporal.DescribeWorkflowExecution(ctx, wf.ID, "")
	var notFound *serviceerror.NotFound
	switch {
	case errors.As(err, &notFound):
		wf.Note = "workflow not found: it never started (the reconciler starts PENDING refunds without one) or its history is past the namespace's retention"
		return wf
	case err != nil:
		wf.Note = "temporal unavailable: " + err.Error()
		return wf
	}
	info := desc.GetWorkflowExecutionInfo()
	wf.RunID = info.GetExecution().GetRunId()
	wf.ExecutionStatus = info.GetStatus().String() // as Temporal UI and ExecutionStatus="Running" queries spell it
	if t := info.GetStartTime(); t != nil {
		st := t.AsTime().UTC()
		wf.StartTime = &st
	}
	if t := info.GetCloseTime(); t != nil {
		ct := t.AsTime().UTC()
		wf.CloseTime = &ct
	}
	wf.HistoryLength = info.GetHistoryLength()
	val, err := s.temporal.QueryWorkflow(ctx, wf.ID, "", workflows.QueryStatus)
	if err == nil {
		var st workflows.RefundState
		if err = val.Get(&st); err == nil {
			wf.Status = &st
			return wf
		}
	}
	var deadline *serviceerror.DeadlineExceeded
	if errors.As(err, &deadline) || errors.Is(err, context.DeadlineExceeded) {
		wf.Note = fmt.Sprintf("no worker answered the status query within %s: is a worker polling the task queue?", opsQueryDeadline)
	} else {
		wf.Note = "status query failed: " + err.Error()
	}
	return wf
}

// opsAction is the part of an ops action on a refund that differs per
// action; it returns a message for the operator.
type opsAction func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error)

// opsRefundAction wraps an action on a refund: it reads the refund, writes
// the audit entry, runs the action and records its outcome.
func (s *Server) opsRefundAction(action string, run opsAction) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := parseID(c.Param("id"), "id")
		if err != nil {
			return err
		}
		var req ops.ActionRequest
		if err := decodeOptional(c, &req); err != nil {
			return err
		}
		p := principal(c)
		ctx := c.Request().Context()
		wid := workflows.RefundWorkflowID(id)
		r, lookupErr := s.store.GetRefund(ctx, uuid.Nil, id)
		if lookupErr != nil && !errors.Is(lookupErr, refund.ErrNotFound) {
			return lookupErr
		}
		detail := map[string]any{"workflowId": wid, "requestId": requestID(c)}
		if req.Reason != "" {
			detail["reason"] = req.Reason
		}
		if lookupErr == nil {
			detail["merchantId"] = r.MerchantID
			detail["statusBefore"] = r.Status
		}
		auditID, err := s.store.BeginAudit(ctx, p.KeyID, action, id, detail)
		if err != nil {
			return err // no audit entry, no action
		}
		res := ops.ActionResult{Action: action, AuditID: auditID, RefundID: id, WorkflowID: wid}
		if lookupErr != nil {
			err = problem(refund.CodeRefundNotFound, "no refund "+id.String())
		} else {
			res.Message, err = run(ctx, r, opsActor(p), req)
		}
		// retry and resolve only ask the workflow to act: accepted, not done.
		status := http.StatusOK
		if action == store.AuditRetry || action == store.AuditResolve {
			status = http.StatusAccepted
		}
		attrs := []slog.Attr{slog.String("refundId", id.String()), slog.String("workflowId", wid)}
		if lookupErr == nil {
			attrs = append(attrs, slog.String("merchantId", r.MerchantID.String()))
		}
		s.finishAudit(c, auditID, action, status, err, attrs...)
		if err != nil {
			return err
		}
		if r, err = s.store.GetRefund(ctx, uuid.Nil, id); err != nil {
			return err
		}
		view := ops.RefundOf(r)
		res.Refund = &view
		return c.JSON(status, res)
	}
}

// finishAudit records the outcome of an audited action and logs it.
func (s *Server) finishAudit(c echo.Context, auditID uuid.UUID, action string, status int, actionErr error, attrs ...slog.Attr) {
	outcome := map[string]any{"outcome": "succeeded", "status": status}
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), opsAuditDeadline)
	defer cancel()
	attrs = append(attrs, slog.String("action", action), slog.String("auditId", auditID.String()),
		slog.String("actorKey", principal(c).KeyID.String()), slog.Any("outcome", outcome["outcome"]),
		slog.String("requestId", requestID(c)))
	if err := s.store.FinishAudit(ctx, auditID, outcome); err != nil {
		s.log.LogAttrs(ctx, slog.LevelError, "ops action ran but its audit outcome was not recorded",
			append(attrs, slog.Any("error", err))...)
	}
	if actionErr != nil {
		attrs = append(attrs, slog.String("error", actionErr.Error()))
	}
	s.log.LogAttrs(ctx, level, "ops action", attrs...)
}

// opsRetry signals the workflow to re-drive the refund now. A refund whose
// workflow closed without finishing it (terminated, failed, timed out) gets
// a new run, which looks the refund up at its provider before anything else.
func (s *Server) opsRetry(ctx context.Context, r refund.Refund, actor string, _ ops.ActionRequest) (string, error) {
	if r.Status.Final() {
		return "", opsProblem(http.StatusConflict, ops.CodeNotRetryable, fmt.Sprintf("refund is %s: it is final, there is nothing to retry", r.Status))
	}
	err := s.temporal.SignalWorkflow(ctx, workflows.RefundWorkflowID(r.ID), "", workflows.SignalRetry, actor)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return s.resumeWorkflow(ctx, r)
	}
	if err != nil {
		return "", fmt.Errorf("signal retry: %w", err)
	}
	if r.Status == refund.StatusPending {
		return "retry signal sent: it takes effect once the refund waits on its provider", nil
	}
	return "retry signal sent: the workflow re-checks the refund with its provider now", nil
}

// resumeWorkflow starts a new run for a refund whose workflow is not running.
func (s *Server) resumeWorkflow(ctx context.Context, r refund.Refund) (string, error) {
	_, err := s.temporal.ExecuteWorkflow(ctx, workflows.ResumeOptions(r, s.taskQueue), workflows.RefundWorkflowName,
		workflows.RefundInput{RefundID: r.ID})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	switch {
	case errors.As(err, &already):
		return "", opsProblem(http.StatusConflict, ops.CodeWorkflowUnavailable,
			"the refund's workflow is not running and its last run completed: see `backflow ops show` and the runbook")
	case err != nil:
		return "", fmt.Errorf("resume workflow: %w", err)
	}
	return "the refund's workflow had closed without finishing it: a new run started; it looks the refund up at its provider first", nil
}

// opsResolve records the outcome ops found at the provider for a refund
// whose outcome is unknown (update resolve): the workflow takes it as the
// provider's answer and settles or releases the refund. It refuses while a
// provider call is in flight, whose answer could say otherwise.
func (s *Server) opsResolve(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error) {
	var v validator
	st := refund.Status(req.Status)
	v.check(st == refund.StatusSucceeded || st == refund.StatusDeclined || st == refund.StatusFailed,
		"status", "must be SUCCEEDED, DECLINED or FAILED: the outcome found at the provider")
	v.check(strings.TrimSpace(req.Reason) != "", "reason", "required: say where the outcome was found")
	if err := v.err(); err != nil {
		return "", err
	}
	if r.Status != refund.StatusProcessing {
		return "", opsProblem(http.StatusConflict, ops.CodeNotResolvable, fmt.Sprintf(
			"refund is %s: only a refund sent to its provider and not yet final can be resolved (a PENDING one can be canceled)", r.Status))
	}
	ctx, cancel := context.WithTimeout(ctx, opsUpdateDeadline)
	defer cancel()
	handle, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.RefundWorkflowID(r.ID), UpdateName: workflows.UpdateResolve,
		Args:         []any{workflows.Resolution{Actor: actor, Status: providers.Status(req.Status), Reason: req.Reason}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = handle.Get(ctx, nil)
	}
	var notFound *serviceerror.NotFound
	var rejected *temporal.ApplicationError
	var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
	switch {
	case err == nil:
	case errors.As(err, &rejected):
		return "", opsProblem(http.StatusConflict, ops.CodeNotResolvable, rejected.Message())
	case errors.As(err, &notFound):
		return "", opsProblem(http.StatusConflict, ops.CodeWorkflowUnavailable,
			"the refund's workflow is not running: run `backflow ops retry` first to resume it, then resolve")
	case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
		return "", opsProblem(http.StatusServiceUnavailable, CodeUnavailable,
			"the refund's workflow did not answer in time (is a worker running?); retry the same call")
	default:
		return "", fmt.Errorf("resolve update: %w", err)
	}
	return fmt.Sprintf("resolution accepted: the workflow finalizes the refund as %s", req.Status), nil
}

// opsCancel cancels a refund not yet sent, as the merchant's cancel does.
func (s *Server) opsCancel(ctx context.Context, r refund.Refund, actor string, _ ops.ActionRequest) (string, error) {
	if _, err := s.CancelRefund(ctx, r, actor); err != nil {
		return "", err
	}
	return "refund canceled; its reservation is released", nil
}

// opsDecide answers a refund awaiting approval with the approve or reject update.
func (s *Server) opsDecide(update string) opsAction {
	return func(ctx context.Context, r refund.Refund, actor string, req ops.ActionRequest) (string, error) {
		if update == workflows.UpdateReject && strings.TrimSpace(req.Reason) == "" {
			return "", problem(refund.CodeValidation, "a reason is required to reject a refund",
				FieldError{Field: "reason", Message: "required"})
		}
		if r.Status != refund.StatusPending || !r.RequiresApproval {
			why := "it does not require approval"
			if r.RequiresApproval {
				why = "it was already decided"
			}
			return "", opsProblem(http.StatusConflict, ops.CodeNotAwaitingApproval,
				fmt.Sprintf("refund is %s and not awaiting approval: %s", r.Status, why))
		}
		ctx, cancel := context.WithTimeout(ctx, opsUpdateDeadline)
		defer cancel()
		handle, err := s.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
			WorkflowID: workflows.RefundWorkflowID(r.ID), UpdateName: update,
			Args: []any{workflows.Decision{Actor: actor, Reason: req.Reason}}, WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = handle.Get(ctx, nil)
		}
		var notFound *serviceerror.NotFound
		var rejected *temporal.ApplicationError
		var timeout *client.WorkflowUpdateServiceTimeoutOrCanceledError
		switch {
		case err == nil:
		case errors.As(err, &rejected):
			// The workflow's validator refused: not (or no longer) awaiting approval.
			return "", opsProblem(http.StatusConflict, ops.CodeNotAwaitingApproval, rejected.Message())
		case errors.As(err, &notFound):
			return "", opsProblem(http.StatusConflict, ops.CodeNotAwaitingApproval, "the refund's workflow is not running")
		case errors.As(err, &timeout), errors.Is(err, context.DeadlineExceeded):
			return "", opsProblem(http.StatusServiceUnavailable, CodeUnavailable,
				"the refund's workflow did not answer in time (is a worker running?); retry the same call")
		default:
			return "", fmt.Errorf("%s update: %w", update, err)
		}
		if update == workflows.UpdateReject {
			return "refund rejected: the workflow cancels it and releases its reservation", nil
		}
		return "refund approved: the workflow sends it to the provider", nil
	}
}

// opsRedeliver starts a new delivery of an event to its merchant's endpoints.
func (s *Server) opsRedeliver(c echo.Context) error {
	eventID, err := parseID(c.Param("id"), "id")
	if err != nil {
		return err
	}
	p := principal(c)
	ctx := c.Request().Context()
	ev, lookupErr := s.store.GetEvent(ctx, uuid.Nil, eventID)
	if lookupErr != nil && !errors.Is(lookupErr, refund.ErrNotFound) {
		return lookupErr
	}
	refundID, merchantID := ev.RefundID, ev.MerchantID
	detail := map[string]any{"eventId": eventID, "requestId": requestID(c)}
	if lookupErr == nil {
		detail["merchantId"] = merchantID
		detail["workflowId"] = workflows.RefundWorkflowID(refundID)
	}
	auditID, err := s.store.BeginAudit(ctx, p.KeyID, store.AuditRedeliver, refundID, detail)
	if err != nil {
		return err
	}
	if lookupErr != nil {
		err = opsProblem(http.StatusNotFound, refund.CodeEventNotFound, "no event "+eventID.String())
	} else {
		err = s.RedeliverEvent(ctx, uuid.Nil, eventID)
	}
	attrs := []slog.Attr{slog.String("eventId", eventID.String())}
	if lookupErr == nil {
		attrs = append(attrs, slog.String("refundId", refundID.String()),
			slog.String("workflowId", workflows.RefundWorkflowID(refundID)), slog.String("merchantId", merchantID.String()))
	}
	s.finishAudit(c, auditID, store.AuditRedeliver, http.StatusAccepted, err, attrs...)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, ops.ActionResult{Action: store.AuditRedeliver, AuditID: auditID, RefundID: refundID,
		EventID: &eventID, Message: "redelivery started to the merchant's subscribed endpoints"})
}

func (s *Server) opsListAudit(c echo.Context) error {
	var f store.AuditFilter
	var err error
	if err = queryIDs(c, map[string]*uuid.UUID{"refundId": &f.RefundID, "cursor": &f.Before}); err != nil {
		return err
	}
	if f.Limit, err = queryLimit(c, opsDefaultLimit, opsMaxLimit); err != nil {
		return err
	}
	// One more than asked tells whether there is a next page.
	f.Limit++
	entries, err := s.store.ListAudit(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := ops.AuditPage{Data: entries}
	if len(entries) == f.Limit {
		page.Data = entries[:f.Limit-1]
		page.NextCursor = page.Data[len(page.Data)-1].ID.String()
	}
	if page.Data == nil {
		page.Data = []store.AuditEntry{}
	}
	return c.JSON(http.StatusOK, page)
}
