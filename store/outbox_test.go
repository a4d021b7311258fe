package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
)

// A redelivery asked for while an attempt of the same delivery is in
// flight is not lost when that attempt's outcome is recorded: the delivery
// stays PENDING and is made again.
func TestRedeliveryOutlivesTheAttemptInFlight(t *testing.T) {
	st := testenv.Get(t).Store
	ctx := context.Background()
	p := testenv.NewPayment(t, st, "cardpay", 5000, nil)
	ep, err := st.CreateWebhookEndpoint(ctx, refund.NewWebhookEndpoint{MerchantID: p.Merchant.ID, URL: "https://merchant.example/hooks",
		EventTypes: refund.EventTypes, Secret: "whsec_test"})
	if err != nil {
		t.Fatal(err)
	}
	newRefund(t, p, 1000) // its refund.created event queues a delivery to ep
	claimed, err := st.ClaimDeliveries(ctx, 256, 4, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var d *refund.DueDelivery
	for i := range claimed {
		if claimed[i].Endpoint.ID == ep.ID {
			d = &claimed[i]
		}
	}
	if d == nil {
		t.Fatalf("the refund's delivery to the endpoint was not claimed (%d claimed)", len(claimed))
	}

	if err := st.RedeliverEvent(ctx, d.Event.ID, []uuid.UUID{ep.ID}); err != nil {
		t.Fatal(err)
	}
	status := 204
	_, err = st.FinishDeliveries(ctx, []refund.DeliveryOutcome{{
		Delivery: refund.Delivery{EventID: d.Event.ID, EndpointID: ep.ID}, WindowStartedAt: d.WindowStartedAt,
		Attempt: &refund.WebhookAttempt{EventID: d.Event.ID, EndpointID: ep.ID, StatusCode: &status, Succeeded: true},
		Status:  refund.DeliveryDelivered,
	}})
	if err != nil {
		t.Fatal(err)
	}
	statuses, err := st.EventDeliveryStatuses(ctx, d.Event.ID)
	if err != nil {
		t.Fatal(err)
	}
	if statuses[ep.ID] != refund.DeliveryPending {
		t.Fatalf("delivery is %s after the earlier attempt was recorded, want the redelivery still PENDING", statuses[ep.ID])
	}
}
