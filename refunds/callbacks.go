package refunds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// Errors of a provider callback the API answers with.
var (
	ErrUnknownProvider  = errors.New("unknown provider")
	ErrCallbackRejected = errors.New("callback signature or body rejected")
	ErrNoMatchingRefund = errors.New("no refund of this provider matches the callback")
)

// HandleCallback verifies a provider's signed callback and hands its answer
// to the refund's workflow. Duplicate and late callbacks are accepted (nil):
// the workflow finalizes a refund once, and a finished one ignores them —
// except a provider's report that a SUCCEEDED refund failed or was
// reversed, which reverses it. A callback only ever moves a refund of the
// provider it came through.
func (s *Service) HandleCallback(ctx context.Context, provider string, header http.Header, body []byte) error {
	conn, ok := s.providers.Get(provider)
	if !ok {
		return ErrUnknownProvider
	}
	ev, err := conn.ParseCallback(header, body)
	if errors.Is(err, providers.ErrIgnoredCallback) {
		return nil // signed, but about something else than a refund: acknowledged so the provider stops retrying
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCallbackRejected, err)
	}
	r, err := s.callbackRefund(ctx, provider, ev)
	if errors.Is(err, refund.ErrNotFound) {
		return ErrNoMatchingRefund
	}
	if err != nil {
		return err
	}
	if reverses(r, ev.Result) {
		return s.reverse(ctx, r, ev.Result)
	}
	if !r.Status.Final() {
		// Signal the refund's workflow; one that closed without finishing the
		// refund (terminated, failed) is resumed with the event in hand.
		err := s.temporal.SignalProviderEvent(ctx, r, ev.Result)
		if !errors.Is(err, refund.ErrAlreadyStarted) {
			return err
		}
		// Its last run completed: the refund became final meanwhile.
		if r, err = s.store.GetRefund(ctx, refund.AllMerchants, r.ID); err != nil {
			return err
		}
		if reverses(r, ev.Result) {
			return s.reverse(ctx, r, ev.Result)
		}
	}
	s.lateCallback(ctx, r, provider, ev.Result)
	return nil
}

// lateCallback records a callback about a refund already final. One that
// contradicts the refund's outcome (the provider paid a refund Backflow
// released) is a financial incident: it is logged as an error and counted.
func (s *Service) lateCallback(ctx context.Context, r refund.Refund, provider string, res providers.Result) {
	attrs := []any{"refundId", r.ID, "workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID,
		"provider", provider, "status", r.Status, "providerStatus", res.Status}
	if res.Status == providers.StatusSucceeded && r.Status != refund.StatusSucceeded {
		s.log.ErrorContext(ctx, "provider reports a refund succeeded that Backflow ended otherwise: see docs/runbook.md", attrs...)
		if s.hooks.Contradiction != nil {
			s.hooks.Contradiction(provider)
		}
		return
	}
	s.log.InfoContext(ctx, "late provider callback for a finished refund", attrs...)
}

// callbackRefund finds the refund a callback is about: by the Backflow id it
// carries, else by the provider's own reference. Either way it must be a
// refund of this provider, with that reference when both are known.
func (s *Service) callbackRefund(ctx context.Context, provider string, ev providers.CallbackEvent) (refund.Refund, error) {
	var r refund.Refund
	var err error
	if id, perr := uuid.Parse(ev.RefundID); perr == nil && id != uuid.Nil {
		r, err = s.store.GetRefund(ctx, refund.AllMerchants, id)
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

// reverse reverses a refund whose workflow has finished (refund.reversed
// is queued for its webhooks in the same transaction).
func (s *Service) reverse(ctx context.Context, r refund.Refund, res providers.Result) error {
	code := cmp.Or(res.FailureCode, "provider.reversed")
	msg := cmp.Or(res.FailureMessage, "the provider reported the refund "+strings.ToLower(string(res.Status))+" after it succeeded")
	r, ev, err := s.store.Reverse(ctx, r.ID, code, msg)
	if err != nil || ev == nil {
		return err
	}
	s.log.WarnContext(ctx, "provider reversed a succeeded refund", "refundId", r.ID,
		"workflowId", workflows.RefundWorkflowID(r.ID), "merchantId", r.MerchantID, "provider", r.Provider, "code", code)
	if s.hooks.Reversed != nil {
		s.hooks.Reversed(r)
	}
	return nil
}
