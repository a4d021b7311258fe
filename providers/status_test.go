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
		{"orchestra declined", orchestraRefund{ID: "r", Status: "declined"}.result(), StatusDeclined, "provider.declined"},
		{"orchestra unknown status stays processing", orchestraRefund{ID: "r", Status: "queued"}.result(), StatusProcessing, ""},
		{"paydesk processing", paydeskRefund{ID: "r", PaymentID: "p", Status: "processing"}.result(), StatusProcessing, ""},
		{"stripe pending", stripeRefund{ID: "re", Status: "pending"}.result(), StatusProcessing, ""},
		{"stripe requires_action", stripeRefund{ID: "re", Status: "requires_action"}.result(), StatusProcessing, ""},
		{"stripe succeeded", stripeRefund{ID: "re", Status: "succeeded"}.result(), StatusSucceeded, ""},
		{"stripe failed", stripeRefund{ID: "re", Status: "failed", FailureReason: "expired_or_canceled_card"}.result(), StatusFailed, "expired_or_canceled_card"},
		{"stripe canceled", stripeRefund{ID: "re", Status: "canceled"}.result(), StatusFailed, "provider.canceled"},
		{"momo rejected without a code", momoPayout{ID: "m", Status: "rejected"}.result(), StatusDeclined, "provider.rejected"},
		{"bank completed", bankPayout{ID: "b", Status: "completed"}.result(), StatusSucceeded, ""},
		{"cardpay without refundStatus is processed", mustResult(cardpayRefund{RefundTransactionID: "r", Status: "refunded"}.result("cardpay")), StatusSucceeded, ""},
		{"cardpay unknown refundStatus stays processing", mustResult(cardpayRefund{RefundTransactionID: "r", RefundStatus: "queued"}.result("cardpay")), StatusProcessing, ""},
		{"paydesk reversed keeps its code", paydeskRefund{ID: "r", PaymentID: "p", Status: "reversed", FailureCode: "refund.reversed"}.result(), StatusReversed, "refund.reversed"},
	}
	for _, tt := range tests {
		if tt.got.Status != tt.want || tt.got.FailureCode != tt.wantCode {
			t.Errorf("%s: got %s/%q, want %s/%q", tt.name, tt.got.Status, tt.got.FailureCode, tt.want, tt.wantCode)
		}
	}
}

func mustResult(r Result, err error) Result {
	if err != nil {
		panic(err)
	}
	return r
}

// TestCardpayAnswerWithoutRefundID: a 2xx without refundTransactionId is no
// answer 001 defines; the outcome stays unknown.
func TestCardpayAnswerWithoutRefundID(t *testing.T) {
	t.Parallel()
	_, err := cardpayRefund{Status: "captured"}.result("cardpay")
	if KindOf(err) != KindRetryable {
		t.Fatalf("result() error %v, want retryable", err)
	}
}
