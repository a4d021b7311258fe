package server

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"go.temporal.io/api/serviceerror"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// providerCallback verifies a provider's signed callback and signals the
// refund's workflow. Duplicate and late callbacks are acknowledged: the
// workflow finalizes a refund once, and a finished one ignores them — except
// a provider's report that a SUCCEEDED refund failed or was reversed, which
// reverses it. A callback only ever moves a refund of the provider it came
// through.
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
	r, err := s.callbackRefund(ctx, name, ev)
	if errors.Is(err, refund.ErrNotFound) {
		return problem(CodeNotFound, "no refund of provider "+name+" matches this callback")
	}
	if err != nil {
		return err
	}
	if reverses(r, ev.Result) {
		return s.reverseOnCallback(c, r, ev.Result)
	}
	if !r.Status.Final() {
		// Signal the refund's workflow; one that closed without finishing the
		// refund (terminated, failed) is resumed with the event in hand.
		_, err = s.temporal.SignalWithStartWorkflow(ctx, workflows.RefundWorkflowID(r.ID), workflows.SignalProviderEvent,
			workflows.ProviderEvent{Result: ev.Result}, workflows.SignalResumeOptions(r, s.taskQueue), workflows.RefundWorkflowName,
			workflows.RefundInput{RefundID: r.ID})
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if !errors.As(err, &already) {
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, map[string]bool{"received": true})
		}
		// Its last run completed: the refund became final meanwhile.
		if r, err = s.store.GetRefund(ctx, r.MerchantID, r.ID); err != nil {
			return err
		}
		if reverses(r, ev.Result) {
			return s.reverseOnCallback(c, r, ev.Result)
		}
	}
	s.lateCallback(c, r, name, ev.Result)
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}

// lateCallback records a callback about a refund already final. One that
// contradicts the refund's outcome (the provider paid a refund Backflow
// released) is a financial incident: it is logged as an error and counted.
func (s *Server) lateCallback(c echo.Context, r refund.Refund, provider string, res providers.Result) {
	ctx := c.Request().Context()
	attrs := []any{"refundId", r.ID, "workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID,
		"provider", provider, "status", r.Status, "providerStatus", res.Status}
	if res.Status == providers.StatusSucceeded && r.Status != refund.StatusSucceeded {
		s.log.ErrorContext(ctx, "provider reports a refund succeeded that Backflow ended otherwise: see docs/runbook.md", attrs...)
		if s.onContradiction != nil {
			s.onContradiction(provider)
		}
		return
	}
	s.log.InfoContext(ctx, "late provider callback for a finished refund", attrs...)
}

// callbackRefund finds the refund a callback is about: by the Backflow id it
// carries, else by the provider's own reference. Either way it must be a
// refund of this provider, with that reference when both are known.
func (s *Server) callbackRefund(ctx context.Context, provider string, ev providers.CallbackEvent) (refund.Refund, error) {
	var r refund.Refund
	var err error
	if id, perr := uuid.Parse(ev.RefundID); perr == nil && id != uuid.Nil {
		r, err = s.store.GetRefund(ctx, uuid.Nil, id)
	} else {
		r, err = s.store.FindRefundByProviderReference(ctx, provider, ev.Result.ProviderReference)
	}
	if err != nil {
		return r, err
	}
	ref := ev.Result.ProviderReference
	if r.Provider != provider || (r.ProviderReference != "" && ref != "" && r.ProviderReference != ref) {
		s.log.WarnContext(ctx, "provider callback about a refund of another provider or reference: refused",
			"refundId", r.ID, "merchantId", r.MerchantID, "provider", provider, "refundProvider", r.Provider)
		return r, refund.ErrNotFound
	}
	return r, nil
}

// reverses reports whether a provider's answer reverses a succeeded refund.
func reverses(r refund.Refund, res providers.Result) bool {
	return r.Status == refund.StatusSucceeded && res.Status.Final() && res.Status != providers.StatusSucceeded
}

// reverseOnCallback reverses a refund whose workflow has finished, then
// starts the deliveries of refund.reversed (the reconciler starts them if
// this process dies first).
func (s *Server) reverseOnCallback(c echo.Context, r refund.Refund, res providers.Result) error {
	ctx := c.Request().Context()
	code := cmp.Or(res.FailureCode, "provider.reversed")
	msg := cmp.Or(res.FailureMessage, "the provider reported the refund "+strings.ToLower(string(res.Status))+" after it succeeded")
	r, ev, _, err := s.store.Reverse(ctx, r.ID, code, msg, false)
	if err != nil {
		return err
	}
	if ev != nil {
		s.log.WarnContext(ctx, "provider reversed a succeeded refund", "refundId", r.ID,
			"workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID, "provider", r.Provider, "code", code)
		if s.onReversed != nil {
			s.onReversed(r)
		}
		s.dispatch(ctx, *ev)
	}
	return c.JSON(http.StatusOK, map[string]bool{"received": true})
}

// dispatch starts the deliveries of an event written outside a workflow and
// marks it dispatched. A failure is logged: the reconciler dispatches events
// still undispatched after a minute, with the same workflow ids.
func (s *Server) dispatch(ctx context.Context, ev refund.Event) {
	ds, err := s.store.EventDeliveries(ctx, ev)
	for _, d := range ds {
		if err != nil {
			break
		}
		id := workflows.WebhookWorkflowID(d.EventID, d.EndpointID)
		_, err = s.temporal.ExecuteWorkflow(ctx, workflows.WebhookStartOptions(id, s.taskQueue, d), workflows.WebhookWorkflowName, d)
		var already *serviceerror.WorkflowExecutionAlreadyStarted
		if errors.As(err, &already) {
			err = nil
		}
	}
	if err == nil {
		err = s.store.MarkEventsDispatched(ctx, []uuid.UUID{ev.ID})
	}
	if err != nil {
		s.log.ErrorContext(ctx, "dispatch event; the reconciler will retry", "eventId", ev.ID, "refundId", ev.RefundID,
			"merchantId", ev.MerchantID, "error", err)
	}
}
