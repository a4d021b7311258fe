// Package ops is the ops side of Backflow: the wire types of the ops API
// (/v1/ops, scope ops), the HTTP client the `backflow ops` CLI uses, and
// the CLI itself with its human-readable rendering.
package ops

import (
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// Refund is a refund as the ops API shows it: the merchant's view plus the
// fields ops steer by.
type Refund struct {
	refund.Object
	MerchantID        uuid.UUID  `json:"merchantId"`
	WorkflowID        string     `json:"workflowId"`
	Stuck             bool       `json:"stuck"`
	StuckReason       string     `json:"stuckReason,omitempty"` // provider.auth, provider.no_answer, ...
	WorkflowStartedAt *time.Time `json:"workflowStartedAt,omitempty"`
	SubmittedAt       *time.Time `json:"submittedAt,omitempty"`
}

// RefundOf renders a stored refund for the ops API.
func RefundOf(r refund.Refund) Refund {
	return Refund{Object: r.Object(), MerchantID: r.MerchantID, WorkflowID: workflows.RefundWorkflowID(r.ID),
		Stuck: r.Stuck, StuckReason: r.StuckReason, WorkflowStartedAt: r.WorkflowStartedAt, SubmittedAt: r.SubmittedAt}
}

// RefundPage is one page of GET /v1/ops/refunds, newest first.
type RefundPage struct {
	Data       []Refund `json:"data"`
	NextCursor string   `json:"nextCursor,omitempty"`
}

// RefundDetail is GET /v1/ops/refunds/{id}: everything known about one
// refund, from Postgres and from its live workflow.
type RefundDetail struct {
	Refund          Refund                   `json:"refund"`
	Ledger          []refund.LedgerEntry     `json:"ledger"`
	Events          []refund.EventRecord     `json:"events"`
	WebhookAttempts []refund.DeliveryAttempt `json:"webhookAttempts"`
	Workflow        workflows.Execution      `json:"workflow"`
	Audit           []refund.AuditEntry      `json:"audit"` // oldest first
}

// ActionRequest is the optional body of the ops actions on a refund.
// reject requires a reason; resolve a reason and a status.
type ActionRequest struct {
	Reason string `json:"reason,omitempty"`
	// Status is what resolve records as the provider's answer: SUCCEEDED,
	// DECLINED or FAILED.
	Status refund.Status `json:"status,omitempty"`
}

// ActionResult answers an ops action.
type ActionResult struct {
	Action     string     `json:"action"`
	AuditID    uuid.UUID  `json:"auditId"`
	RefundID   uuid.UUID  `json:"refundId,omitempty"`
	EventID    *uuid.UUID `json:"eventId,omitempty"`
	WorkflowID string     `json:"workflowId,omitempty"`
	Message    string     `json:"message"`
	Refund     *Refund    `json:"refund,omitempty"`
}

// AuditPage is GET /v1/ops/audit, newest first.
type AuditPage struct {
	Data       []refund.AuditEntry `json:"data"`
	NextCursor string              `json:"nextCursor,omitempty"`
}
