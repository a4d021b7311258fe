package integration

import (
	"net/http"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// TestStripeRefundThroughWorkflow runs a refund on the stripe connector end
// to end against the official stripe-mock, which rejects any request that is
// not valid for Stripe's API.
func TestStripeRefundThroughWorkflow(t *testing.T) {
	url, cmd, err := testenv.StartStripeMock()
	if err != nil {
		t.Fatalf("stripe-mock: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := rig.StartStack(t, rig.StackOptions{ExtraProviders: []providers.Config{
		{Name: "stripe", Type: providers.TypeStripe, BaseURL: url, APIKey: "sk_test_backflow", CallbackSecret: "whsec_test"}}})
	_, txID := s.Transaction(t, map[string]any{"provider": "stripe", "currency": "USD", "providerReference": "pi_1BackflowTest"})
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID, "reasonCode": "DUPLICATE",
		"refundValue": map[string]any{"amount": 1500}, "metadata": map[string]string{"order": "A-1"}}), http.StatusAccepted)
	var o refund.Object
	r.JSON(t, &o)
	got := s.WaitRefund(t, o.TransactionID.String(), 20*time.Second, refund.StatusSucceeded, refund.StatusFailed, refund.StatusDeclined)
	if got.Status != refund.StatusSucceeded || got.ProviderReference == "" {
		t.Fatalf("stripe refund = %+v", got)
	}
	assertLedger(t, s, got.TransactionID.String(), true)
}
