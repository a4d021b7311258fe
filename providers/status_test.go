package providers

import "testing"

// TestStatusMapping covers provider statuses the sandbox controls do not produce.
func TestStatusMapping(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		got      Result
		want     Status
		wantCode string
	}{
		{"orchestra voided", orchestraRefund{ID: "r", Status: "voided"}.result(), StatusCanceled, "provider.voided"},
		{"orchestra declined", orchestraRefund{ID: "r", Status: "declined"}.result(), StatusDeclined, "declined"},
		{"orchestra unknown status stays processing", orchestraRefund{ID: "r", Status: "queued"}.result(), StatusProcessing, ""},
		{"paydesk processing", paydeskRefund{ID: "r", PaymentID: "p", Status: "processing"}.result(), StatusProcessing, ""},
		{"stripe pending", stripeRefund{ID: "re", Status: "pending"}.result(), StatusProcessing, ""},
		{"stripe requires_action", stripeRefund{ID: "re", Status: "requires_action"}.result(), StatusProcessing, ""},
		{"stripe succeeded", stripeRefund{ID: "re", Status: "succeeded"}.result(), StatusSucceeded, ""},
		{"stripe failed", stripeRefund{ID: "re", Status: "failed", FailureReason: "expired_or_canceled_card"}.result(), StatusFailed, "expired_or_canceled_card"},
		{"stripe canceled", stripeRefund{ID: "re", Status: "canceled"}.result(), StatusFailed, "canceled"},
		{"momo rejected", momoPayout{ID: "m", Status: "rejected"}.result(), StatusDeclined, ""},
		{"bank completed", bankPayout{ID: "b", Status: "completed"}.result(), StatusSucceeded, ""},
	}
	for _, tt := range tests {
		if tt.got.Status != tt.want || tt.got.FailureCode != tt.wantCode {
			t.Errorf("%s: got %s/%q, want %s/%q", tt.name, tt.got.Status, tt.got.FailureCode, tt.want, tt.wantCode)
		}
	}
}
