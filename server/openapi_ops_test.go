package server_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// testOpsConformance: the ops API's list, show, refused actions,
// redelivery and audit.
func testOpsConformance(t *testing.T, c *conformance) {
	s := c.s
	hook := c.newDeliveredRefund(t)
	hookRefundID, createdEvent := hook.refundID, hook.created
	// Two succeeded refunds of the stack's merchant: its list below pages,
	// and the actions refused on the first one are its only audit entries.
	refundID := c.newSucceededRefund(t)
	c.newSucceededRefund(t)

	var page struct {
		Data       []ops.Refund `json:"data"`
		NextCursor string       `json:"nextCursor"`
	}
	c.do(t, call{method: "GET", path: "/v1/ops/refunds", auth: "ops", want: 200}).JSON(t, &page)
	q := "/v1/ops/refunds?status=SUCCEEDED&provider=cardpay&stuck=false&merchantId=" + s.MerchantID.String() + "&limit=1"
	c.do(t, call{method: "GET", path: q, auth: "ops", want: 200}).JSON(t, &page)
	if len(page.Data) != 1 || page.NextCursor == "" || page.Data[0].MerchantID != s.MerchantID {
		t.Fatalf("first page = %+v", page)
	}
	c.do(t, call{method: "GET", path: q + "&cursor=" + page.NextCursor, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/refunds?stuck=true&limit=200", auth: "ops", want: 200})

	// show: the refund whose events were delivered, with every kind of attempt.
	r := c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + hookRefundID, auth: "ops", want: 200})
	var d ops.RefundDetail
	r.JSON(t, &d)
	if len(d.Ledger) != 2 || len(d.Events) != 2 || len(d.WebhookAttempts) < 5 || d.Workflow.Status == nil ||
		d.Workflow.ExecutionStatus != "Completed" || d.Workflow.Status.Step != "done" {
		t.Errorf("show = %s", r.Body)
	}

	// Refused actions on a final refund, each audited.
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/retry", auth: "ops", headers: []string{"Idempotency-Key", ikey()}, want: 409}), refund.CodeNotRetryable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/approve", auth: "ops", body: map[string]any{"reason": "looks fine"}, want: 409}), refund.CodeNotAwaitingApproval)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{"reason": "no"}, want: 409}), refund.CodeNotAwaitingApproval)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/cancel", auth: "ops", want: 409}), refund.CodeNotCancelable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/resolve", auth: "ops",
		body: map[string]any{"status": "FAILED", "reason": "checked at the provider"}, want: 409}), refund.CodeNotResolvable)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/resolve", auth: "ops",
		body: map[string]any{"status": "REVERSED", "reason": "x"}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/reject", auth: "ops", body: map[string]any{"reason": " "}, requestInvalid: true, want: 422}), refund.CodeValidation)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + refundID + "/retry", auth: "ops", body: map[string]any{"why": "x"}, requestInvalid: true, want: 400}), server.CodeMalformed)
	missing := uuid.Must(uuid.NewV7()).String()
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + missing, auth: "ops", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + missing + "/approve", auth: "ops", want: 404}), refund.CodeRefundNotFound)
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/events/" + missing + "/redeliver", auth: "ops", want: 404}), refund.CodeEventNotFound)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds/not-a-uuid", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	for _, q := range []string{"status=LOST", "stuck=maybe", "limit=0", "limit=201", "merchantId=nope"} {
		problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds?" + q, auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	}
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/refunds", want: 403}), server.CodeForbidden)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit", auth: "none", requestInvalid: true, want: 401}), server.CodeUnauthorized)

	// Redeliver across merchants.
	key := ikey()
	var res ops.ActionResult
	c.do(t, call{method: "POST", path: "/v1/ops/events/" + createdEvent.ID.String() + "/redeliver", auth: "ops", headers: []string{"Idempotency-Key", key}, want: 202}).JSON(t, &res)
	if res.Action != refund.AuditRedeliver || res.EventID == nil || *res.EventID != createdEvent.ID || res.RefundID.String() != hookRefundID {
		t.Errorf("ops redeliver = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/events/" + createdEvent.ID.String() + "/redeliver", auth: "ops", body: map[string]any{"again": true}, headers: []string{"Idempotency-Key", key}, want: 422}),
		server.CodeIdempotencyMismatch)
	hook.recv.wait(t, "/ok", createdEvent.ID.String(), 2) // the fixture's delivery, then this one

	// The audit: newest first, refusals recorded with their code.
	var audit struct {
		Data       []refund.AuditEntry `json:"data"`
		NextCursor string              `json:"nextCursor"`
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=" + refundID, auth: "ops", want: 200}).JSON(t, &audit)
	if len(audit.Data) != 8 || audit.Data[len(audit.Data)-1].Action != refund.AuditRetry ||
		!strings.Contains(string(audit.Data[len(audit.Data)-1].Detail), refund.CodeNotRetryable) {
		t.Errorf("audit of the refund = %+v", audit.Data)
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=2", auth: "ops", want: 200}).JSON(t, &audit)
	if len(audit.Data) != 2 || audit.NextCursor == "" {
		t.Fatalf("audit first page = %+v", audit)
	}
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=2&cursor=" + audit.NextCursor, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=200", auth: "ops", want: 200})
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit?limit=0", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	problemOf(t, c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=nope", auth: "ops", requestInvalid: true, want: 400}), server.CodeMalformed)
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + refundID, auth: "ops", want: 200})
}

// testOpsApprovalConformance: refunds above a merchant's approval
// threshold wait for ops, who approve, reject or cancel them.
func testOpsApprovalConformance(t *testing.T, c *conformance) {
	s := c.s
	threshold := int64(1000)
	_, key := s.NewMerchantKey(t, &threshold)
	auth := "bearer:" + key
	r := c.do(t, call{method: "POST", path: "/v1/sessions", auth: auth, want: 201})
	var sess struct{ SessionID string }
	r.JSON(t, &sess)
	c.do(t, call{method: "POST", path: "/v1/transactions", auth: auth, want: 201, body: map[string]any{"sessionId": sess.SessionID,
		"provider": "cardpay", "method": "card", "amount": 10000, "currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}})
	awaiting := func() string {
		r := c.do(t, call{method: "POST", path: "/v1/refunds", auth: auth, want: 202, body: map[string]any{"sessionId": sess.SessionID, "refundValue": map[string]any{"amount": 2000}}})
		var ref refund.Object
		r.JSON(t, &ref)
		if !ref.RequiresApproval {
			t.Fatalf("refund above the threshold = %s", r.Body)
		}
		id := ref.TransactionID.String()
		waitOps(t, s, id, func(d ops.RefundDetail) bool {
			return d.Workflow.Status != nil && d.Workflow.Status.Step == "awaiting_approval"
		})
		return id
	}

	// retry of a refund awaiting approval is accepted (202); approve sends it.
	approved := awaiting()
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + approved, auth: "ops", want: 200})
	var res ops.ActionResult
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/retry", auth: "ops", want: 202}).JSON(t, &res)
	if res.Action != refund.AuditRetry || res.Refund == nil || res.WorkflowID == "" {
		t.Errorf("retry = %+v", res)
	}
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/approve", auth: "ops", body: map[string]any{"reason": "checked with the merchant"},
		headers: []string{"Idempotency-Key", ikey()}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditApprove || res.Refund == nil {
		t.Errorf("approve = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + approved + "/approve", auth: "ops", want: 409}), refund.CodeNotAwaitingApproval)

	rejected := awaiting()
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + rejected + "/reject", auth: "ops", body: map[string]any{"reason": "amount does not match the return"}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditReject {
		t.Errorf("reject = %+v", res)
	}

	canceled := awaiting()
	c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + canceled + "/cancel", auth: "ops", body: map[string]any{"reason": "merchant asked"}, want: 200}).JSON(t, &res)
	if res.Action != refund.AuditCancel || res.Refund == nil || res.Refund.Status != refund.StatusCanceled {
		t.Errorf("cancel = %+v", res)
	}
	problemOf(t, c.do(t, call{method: "POST", path: "/v1/ops/refunds/" + canceled + "/retry", auth: "ops", want: 409}), refund.CodeNotRetryable)

	for id, want := range map[string]refund.Status{approved: refund.StatusSucceeded, rejected: refund.StatusCanceled, canceled: refund.StatusCanceled} {
		waitOps(t, s, id, func(d ops.RefundDetail) bool { return d.Refund.Status == want })
	}
	c.do(t, call{method: "GET", path: "/v1/ops/refunds/" + rejected, auth: "ops", want: 200})
	c.do(t, call{method: "GET", path: "/v1/ops/audit?refundId=" + approved, auth: "ops", want: 200})
}
