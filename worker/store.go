package worker

import (
	"context"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/store"
)

// ActivityStore gives the activities the store, reading every merchant's
// rows: they act on refunds, events and endpoints by id.
func ActivityStore(s *store.Store) activities.Store { return activityStore{s} }

type activityStore struct{ *store.Store }

func (s activityStore) GetRefund(ctx context.Context, id uuid.UUID) (refund.Refund, error) {
	return s.Store.GetRefund(ctx, refund.AllMerchants, id)
}

func (s activityStore) GetEvent(ctx context.Context, id uuid.UUID) (refund.Event, error) {
	return s.Store.GetEvent(ctx, refund.AllMerchants, id)
}

func (s activityStore) GetWebhookEndpoint(ctx context.Context, id uuid.UUID) (refund.WebhookEndpoint, error) {
	return s.Store.GetWebhookEndpoint(ctx, refund.AllMerchants, id)
}
