package refunds

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/webhooks"
)

// CreateEndpoint adds a webhook endpoint with a new signing secret; a retry
// with the same Idempotency-Key returns the endpoint it made. Its URL must
// pass the webhook URL policy (webhook.url_not_allowed).
func (s *Service) CreateEndpoint(ctx context.Context, in refund.NewWebhookEndpoint) (refund.WebhookEndpoint, error) {
	if err := s.checkURL(ctx, in.URL); err != nil {
		return refund.WebhookEndpoint{}, err
	}
	var err error
	if in.Secret, err = webhooks.NewSecret(); err != nil {
		return refund.WebhookEndpoint{}, err
	}
	return s.store.CreateWebhookEndpoint(ctx, in)
}

// ListEndpoints lists a merchant's live endpoints.
func (s *Service) ListEndpoints(ctx context.Context, merchantID uuid.UUID) ([]refund.WebhookEndpoint, error) {
	return s.store.ListWebhookEndpoints(ctx, merchantID)
}

// GetEndpoint reads a live endpoint the scope can see; a deleted one is
// not found.
func (s *Service) GetEndpoint(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.WebhookEndpoint, error) {
	e, err := s.store.GetWebhookEndpoint(ctx, scope, id)
	if errors.Is(err, refund.ErrNotFound) || (err == nil && e.DeletedAt != nil) {
		return e, notFound(refund.CodeWebhookEndpointNotFound, id)
	}
	return e, err
}

// DeleteEndpoint deletes a merchant's endpoint; deliveries to it stop.
func (s *Service) DeleteEndpoint(ctx context.Context, merchantID, id uuid.UUID) error {
	_, err := s.store.DeleteWebhookEndpoint(ctx, merchantID, id)
	if errors.Is(err, refund.ErrNotFound) {
		return notFound(refund.CodeWebhookEndpointNotFound, id)
	}
	return err
}

// RotateSecret gives an endpoint a new secret; the previous one keeps
// signing beside it for grace. A retry with the same Idempotency-Key
// returns the rotation it made.
func (s *Service) RotateSecret(ctx context.Context, merchantID, id uuid.UUID, grace time.Duration, idempotencyKey string) (refund.WebhookEndpoint, error) {
	secret, err := webhooks.NewSecret()
	if err != nil {
		return refund.WebhookEndpoint{}, err
	}
	e, err := s.store.RotateWebhookSecret(ctx, merchantID, id, secret, grace, idempotencyKey)
	if errors.Is(err, refund.ErrNotFound) {
		return e, notFound(refund.CodeWebhookEndpointNotFound, id)
	}
	return e, err
}

// ListEvents returns a page of events, newest first, and the next cursor.
func (s *Service) ListEvents(ctx context.Context, f refund.EventFilter) ([]refund.Event, uuid.UUID, error) {
	return s.store.ListEvents(ctx, f)
}

// GetEvent reads an event the scope can see.
func (s *Service) GetEvent(ctx context.Context, scope refund.Scope, id uuid.UUID) (refund.Event, error) {
	e, err := s.store.GetEvent(ctx, scope, id)
	if errors.Is(err, refund.ErrNotFound) {
		return e, notFound(refund.CodeEventNotFound, id)
	}
	return e, err
}

// EventAttempts lists an event's delivery attempts, oldest first.
func (s *Service) EventAttempts(ctx context.Context, eventID uuid.UUID) ([]refund.WebhookAttempt, error) {
	return s.store.ListWebhookAttempts(ctx, eventID)
}

// Redelivery is one delivery a redelivery queued.
type Redelivery struct {
	EndpointID uuid.UUID `json:"endpointId"`
	Status     string    `json:"status"` // PENDING: queued for an attempt now
}

// Redeliver queues an event again, with the same id and body, for each
// endpoint (all its merchant's active endpoints subscribed to its type, or
// only endpointID when set), whatever its earlier deliveries became; each
// gets a fresh retry window.
func (s *Service) Redeliver(ctx context.Context, scope refund.Scope, eventID, endpointID uuid.UUID) ([]Redelivery, error) {
	ev, err := s.GetEvent(ctx, scope, eventID)
	if err != nil {
		return nil, err
	}
	var ds []refund.Delivery
	if endpointID == uuid.Nil {
		if ds, err = s.store.EventDeliveries(ctx, ev); err != nil {
			return nil, err
		}
	} else {
		ep, err := s.GetEndpoint(ctx, refund.OfMerchant(ev.MerchantID), endpointID)
		if err != nil {
			return nil, err
		}
		if ep.DisabledAt != nil {
			return nil, refund.Rule(refund.CodeWebhookEndpointDisabled, "the endpoint is disabled: %s", ep.DisabledReason)
		}
		if !ep.Subscribed(ev.Type) {
			return nil, &refund.ValidationError{Fields: []refund.FieldError{{Field: "endpointId", Message: "not subscribed to " + ev.Type}}}
		}
		ds = []refund.Delivery{{EventID: ev.ID, EndpointID: ep.ID}}
	}
	out := make([]Redelivery, 0, len(ds))
	ids := make([]uuid.UUID, 0, len(ds))
	for _, d := range ds {
		ids = append(ids, d.EndpointID)
		out = append(out, Redelivery{EndpointID: d.EndpointID, Status: refund.DeliveryPending})
	}
	if len(ids) > 0 {
		if err := s.store.RedeliverEvent(ctx, ev.ID, ids); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkURL applies the webhook URL policy to an endpoint URL being created.
func (s *Service) checkURL(ctx context.Context, raw string) error {
	err := s.urls.CheckURL(ctx, raw)
	if na, ok := webhooks.IsNotAllowed(err); ok {
		return &refund.RuleError{Code: refund.CodeWebhookURLNotAllowed, Field: "url", Message: na.Reason}
	}
	switch {
	case errors.Is(err, webhooks.ErrHostNotFound):
		return &refund.RuleError{Code: refund.CodeWebhookURLNotAllowed, Field: "url", Message: "the host does not resolve"}
	case err != nil:
		return refund.Unavailable("could not resolve the endpoint's host; retry", err)
	}
	return nil
}
