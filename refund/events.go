package refund

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Event is an outbox row: one refund status change, or a change of one of
// the merchant's webhook endpoints (webhook_endpoint.disabled).
type Event struct {
	ID         uuid.UUID `json:"id"`
	MerchantID uuid.UUID `json:"merchantId"`
	// RefundID is uuid.Nil for an event about an endpoint.
	RefundID  uuid.UUID       `json:"refundId"`
	Type      string          `json:"type"`
	Sequence  int             `json:"sequence"`
	Payload   json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"createdAt"`
}

// EventRecord is an event and when it was handed to webhook delivery.
type EventRecord struct {
	Event
	DispatchedAt *time.Time `json:"dispatchedAt,omitempty"`
}

// LedgerEntry is one append-only balance change: RESERVE, SETTLE, RELEASE
// or REVERSE.
type LedgerEntry struct {
	ID            uuid.UUID `json:"id"`
	TransactionID uuid.UUID `json:"transactionId"`
	RefundID      uuid.UUID `json:"refundId"`
	Kind          string    `json:"kind"`
	Amount        int64     `json:"amount"`
	CreatedAt     time.Time `json:"createdAt"`
}

// Delivery is one event to deliver to one webhook endpoint.
type Delivery struct {
	EventID    uuid.UUID
	EndpointID uuid.UUID
}

// Statuses of a delivery in the webhook outbox.
const (
	DeliveryPending   = "PENDING"   // waiting for its next attempt
	DeliveryDelivered = "DELIVERED" // the endpoint answered 2xx
	DeliveryFailed    = "FAILED"    // retries gave up; it can be redelivered
	DeliverySkipped   = "SKIPPED"   // the endpoint was deleted or disabled first
)

// DueDelivery is a delivery a dispatcher claimed, with what its attempt needs.
type DueDelivery struct {
	Event    Event
	Endpoint WebhookEndpoint
	// Attempts were made since WindowStartedAt (the event, or its last
	// redelivery), before this one.
	Attempts        int
	WindowStartedAt time.Time
}

// DeliveryOutcome is how one claimed delivery's attempt ended.
type DeliveryOutcome struct {
	Delivery
	// WindowStartedAt is the claimed delivery's (DueDelivery.WindowStartedAt):
	// an outcome of an attempt made before a redelivery restarted the
	// window does not end the redelivery.
	WindowStartedAt time.Time
	// Attempt is the request made, logged in webhook_attempts; nil when
	// none was made (the endpoint had gone).
	Attempt *WebhookAttempt
	// Status is the delivery's new status; PENDING retries at NextAttemptAt.
	Status        string
	NextAttemptAt time.Time
	// EndpointRetryAt, after a failed attempt, holds back every delivery to
	// the endpoint until then; a success clears it and the endpoint's
	// failing state.
	EndpointRetryAt time.Time
}

// MaxWebhookEndpoints bounds a merchant's live (not deleted) endpoints.
const MaxWebhookEndpoints = 16

// WebhookEndpoint is a merchant's URL that receives signed events.
type WebhookEndpoint struct {
	ID                      uuid.UUID
	MerchantID              uuid.UUID
	URL                     string
	EventTypes              []string
	Secret                  string
	PreviousSecret          string
	PreviousSecretExpiresAt *time.Time
	DisabledAt              *time.Time
	DisabledReason          string
	DeletedAt               *time.Time
	CreatedAt               time.Time
	// Failures counts consecutive failed attempts; FailingSince is the
	// first of them (nil after a success).
	Failures     int
	FailingSince *time.Time
}

// EndpointFailingAfter is how many consecutive failed attempts make an
// endpoint failing: from then on it is held back as a whole on its own
// backoff and gets one attempt at a time, until one succeeds. Fewer (a
// flaky endpoint) only back off the deliveries that failed.
const EndpointFailingAfter = 3

// Failing reports whether the endpoint's last EndpointFailingAfter
// attempts or more all failed.
func (e WebhookEndpoint) Failing() bool { return e.Failures >= EndpointFailingAfter }

// Active reports whether the endpoint receives deliveries.
func (e WebhookEndpoint) Active() bool { return e.DeletedAt == nil && e.DisabledAt == nil }

// Subscribed reports whether the endpoint receives events of eventType.
func (e WebhookEndpoint) Subscribed(eventType string) bool {
	return slices.Contains(e.EventTypes, eventType)
}

// SigningSecrets are the secrets a delivery at now is signed with: the
// current one, plus the previous one while its rotation grace period lasts.
func (e WebhookEndpoint) SigningSecrets(now time.Time) []string {
	out := []string{e.Secret}
	if e.PreviousSecret != "" && e.PreviousSecretExpiresAt != nil && now.Before(*e.PreviousSecretExpiresAt) {
		out = append(out, e.PreviousSecret)
	}
	return out
}

// WebhookAttempt is one HTTP delivery attempt of an event to an endpoint.
type WebhookAttempt struct {
	ID         uuid.UUID
	EventID    uuid.UUID
	EndpointID uuid.UUID
	Attempt    int  // 1, 2, ... per event and endpoint, across redeliveries
	StatusCode *int // nil when no HTTP answer came back
	LatencyMS  int
	Error      string
	Succeeded  bool
	CreatedAt  time.Time
}
