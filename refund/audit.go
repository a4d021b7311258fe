package refund

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Ops audit actions.
const (
	AuditRetry     = "retry"
	AuditCancel    = "cancel"
	AuditApprove   = "approve"
	AuditReject    = "reject"
	AuditRedeliver = "redeliver"
	AuditResolve   = "resolve"

	// Merchants and their keys.
	AuditCreateMerchant = "merchant.create"
	AuditCreateAPIKey   = "api_key.create"
	AuditRevokeAPIKey   = "api_key.revoke"
)

// AuditEntry is one ops action on a refund, event, merchant or key, recorded before the
// action runs and completed with its outcome, so failed attempts are audited
// too.
type AuditEntry struct {
	ID        uuid.UUID       `json:"id"`
	ActorKey  uuid.UUID       `json:"actorKey"`
	Action    string          `json:"action"`
	RefundID  *uuid.UUID      `json:"refundId,omitempty"`
	Detail    json.RawMessage `json:"detail"`
	CreatedAt time.Time       `json:"createdAt"`
}

// DeliveryAttempt is one logged attempt to deliver an event to a webhook
// endpoint, with the endpoint's URL.
type DeliveryAttempt struct {
	ID         uuid.UUID `json:"id"`
	EventID    uuid.UUID `json:"eventId"`
	EndpointID uuid.UUID `json:"endpointId"`
	URL        string    `json:"url"`
	Attempt    int       `json:"attempt"`
	StatusCode *int      `json:"statusCode,omitempty"`
	LatencyMS  int       `json:"latencyMs"`
	Error      string    `json:"error,omitempty"`
	Succeeded  bool      `json:"succeeded"`
	CreatedAt  time.Time `json:"createdAt"`
}

// StoredResponse is an API response kept for an idempotent replay.
type StoredResponse struct {
	Status int
	Body   []byte
}
