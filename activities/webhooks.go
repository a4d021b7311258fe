package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/webhooks"
)

// Error types of webhook delivery.
const (
	// ErrTypeWebhookFailed is a failed attempt (non-2xx, network error,
	// timeout); it is retried with backoff.
	ErrTypeWebhookFailed = "WebhookAttemptFailed"
	// ErrTypeWebhookInvalid is a delivery that can never succeed (unknown
	// event, endpoint of another merchant); it is not retried.
	ErrTypeWebhookInvalid = "WebhookDeliveryInvalid"
)

// Outcomes of a delivery that ended without error.
const (
	DeliveryDelivered    = "DELIVERED"     // the endpoint answered 2xx
	DeliverySkipped      = "SKIPPED"       // the endpoint is deleted or disabled
	DeliveryEndpointGone = "ENDPOINT_GONE" // the endpoint answered 410: it is now disabled
	// DeliveryURLNotAllowed: the endpoint's URL breaks the webhook URL
	// policy (created before it): it is now disabled, nothing was sent.
	DeliveryURLNotAllowed = "URL_NOT_ALLOWED"
)

// WebhookPolicy is the timing of webhook delivery. The delivery workflow
// reads it through a local activity, so it is recorded in history and a
// replay never depends on the worker's configuration.
type WebhookPolicy struct {
	InitialInterval    time.Duration // first retry after a failed attempt
	BackoffCoefficient float64       // each retry waits this much longer
	MaximumInterval    time.Duration // retries back off up to this
	GiveUpAfter        time.Duration // no attempt starts after this (ScheduleToClose)
	AttemptTimeout     time.Duration // HTTP timeout of one attempt
}

// DefaultWebhookPolicy is the production timing: retries after 10 s, 20 s,
// 40 s, ... up to one hour apart, for three days.
func DefaultWebhookPolicy() WebhookPolicy {
	return WebhookPolicy{
		InitialInterval:    10 * time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    time.Hour,
		GiveUpAfter:        72 * time.Hour,
		AttemptTimeout:     10 * time.Second,
	}
}

// withDefaults fills unset fields from DefaultWebhookPolicy.
func (p WebhookPolicy) withDefaults() WebhookPolicy {
	def := DefaultWebhookPolicy()
	if p.InitialInterval <= 0 {
		p.InitialInterval = def.InitialInterval
	}
	if p.BackoffCoefficient < 1 {
		p.BackoffCoefficient = def.BackoffCoefficient
	}
	if p.MaximumInterval <= 0 {
		p.MaximumInterval = def.MaximumInterval
	}
	p.MaximumInterval = max(p.MaximumInterval, p.InitialInterval)
	if p.GiveUpAfter <= 0 {
		p.GiveUpAfter = def.GiveUpAfter
	}
	if p.AttemptTimeout <= 0 {
		p.AttemptTimeout = def.AttemptTimeout
	}
	return p
}

// WebhookDeliveryPolicy returns the delivery timing (Activities.Webhooks,
// unset fields defaulted); the delivery workflow calls it as a local activity.
func (a *Activities) WebhookDeliveryPolicy(context.Context) (WebhookPolicy, error) {
	return a.Webhooks.withDefaults(), nil
}

// DeliveryResult is how a delivery ended when it did not fail.
type DeliveryResult struct {
	Outcome    string
	StatusCode int
	Attempt    int
}

// strictWebhookClient delivers under the production URL policy (https to
// public addresses only) when Activities.WebhookClient is not set.
var strictWebhookClient = webhooks.URLPolicy{}.Client()

// webhookClient is the client of every delivery: it applies the webhook URL
// policy to each connection, never follows redirects (a 3xx is a failed
// attempt) and each attempt carries its own deadline.
func (a *Activities) webhookClient() *http.Client {
	if a.WebhookClient != nil {
		return a.WebhookClient
	}
	return strictWebhookClient
}

const (
	maxErrorBody = 200 // characters of a failed answer kept in the attempt's error
	userAgent    = "Backflow-Webhooks/1"
)

// DeliverWebhook makes one delivery attempt of an event to an endpoint for
// a WebhookDeliveryWorkflow of the previous release (still running after
// the upgrade) and logs it in webhook_attempts. A deleted or disabled
// endpoint ends the delivery without an attempt; 2xx delivers; 410
// disables the endpoint, as does a URL the policy refuses for good;
// anything else returns a retryable ErrTypeWebhookFailed.
func (a *Activities) DeliverWebhook(ctx context.Context, d Delivery) (DeliveryResult, error) {
	ev, err := a.Store.GetEvent(ctx, d.EventID)
	if errors.Is(err, refund.ErrNotFound) {
		return DeliveryResult{}, temporal.NewNonRetryableApplicationError("event "+d.EventID.String()+" does not exist", ErrTypeWebhookInvalid, err)
	}
	if err != nil {
		return DeliveryResult{}, fmt.Errorf("read event: %w", err)
	}
	ep, err := a.Store.GetWebhookEndpoint(ctx, d.EndpointID)
	if errors.Is(err, refund.ErrNotFound) {
		return DeliveryResult{Outcome: DeliverySkipped}, nil
	}
	if err != nil {
		return DeliveryResult{}, fmt.Errorf("read endpoint: %w", err)
	}
	if ep.MerchantID != ev.MerchantID {
		return DeliveryResult{}, temporal.NewNonRetryableApplicationError("endpoint and event belong to different merchants", ErrTypeWebhookInvalid, nil)
	}
	log := activity.GetLogger(ctx)
	if !ep.Active() {
		log.Info("webhook endpoint deleted or disabled: delivery skipped", "eventId", ev.ID, "endpointId", ep.ID, "merchantId", ep.MerchantID)
		return DeliveryResult{Outcome: DeliverySkipped}, nil
	}
	policy, _ := a.WebhookDeliveryPolicy(ctx)
	att, refused, err := postAttempt(ctx, a.webhookClient(), ev, ep, policy.AttemptTimeout)
	if err != nil {
		return DeliveryResult{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeWebhookInvalid, err)
	}
	// Record even when the activity's own context is done, so no attempt goes unlogged.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	att, recErr := a.Store.RecordWebhookAttempt(rctx, att)
	res := DeliveryResult{Attempt: att.Attempt}
	if att.StatusCode != nil {
		res.StatusCode = *att.StatusCode
	}
	if recErr != nil {
		log.Error("record webhook attempt", "eventId", ev.ID, "endpointId", ep.ID, "error", recErr)
	}
	switch {
	case att.Succeeded:
		// A lost attempt row must not cause a second delivery: it is logged above.
		res.Outcome = DeliveryDelivered
		return res, nil
	case refused != nil:
		if err := a.disableEndpoint(rctx, ep, DisabledURLNotAllowed, refused.Error()); err != nil {
			return res, err
		}
		res.Outcome = DeliveryURLNotAllowed
		return res, nil
	case res.StatusCode == http.StatusGone:
		if err := a.disableEndpoint(rctx, ep, DisabledGone, goneReason); err != nil {
			return res, err
		}
		res.Outcome = DeliveryEndpointGone
		return res, nil
	}
	return res, temporal.NewApplicationError(att.Error, ErrTypeWebhookFailed, recErr)
}

// Why Backflow disables an endpoint, as EndpointDisabled is told.
const (
	DisabledGone    = "gone"    // it answered 410 Gone
	DisabledFailing = "failing" // every attempt failed for DispatchOptions.DisableAfter
	// DisabledURLNotAllowed: the webhook URL policy refuses the URL itself
	// (an endpoint created before the policy): no attempt can succeed.
	DisabledURLNotAllowed = "url_not_allowed"
)

// goneReason is what a merchant reads about an endpoint disabled for a 410.
const goneReason = "endpoint answered 410 Gone"

// disableEndpoint disables an endpoint (its pending deliveries are skipped
// and its merchant gets a webhook_endpoint.disabled event) and counts it by
// cause (DisabledGone, DisabledFailing).
func (a *Activities) disableEndpoint(ctx context.Context, ep refund.WebhookEndpoint, cause, reason string) error {
	_, disabled, err := a.Store.DisableWebhookEndpoint(ctx, ep.ID, reason)
	if err != nil {
		return fmt.Errorf("disable endpoint: %w", err)
	}
	if disabled {
		logger(ctx).Warn("webhook endpoint disabled", "endpointId", ep.ID, "merchantId", ep.MerchantID, "reason", reason)
		if a.EndpointDisabled != nil {
			a.EndpointDisabled(cause)
		}
	}
	return nil
}

// postAttempt posts one signed delivery of ev to ep and returns it as
// webhook_attempts logs it (not yet numbered), and the URL policy's refusal
// when it refuses the endpoint's URL for good (nothing was sent). The error
// is for an event that cannot be encoded: no attempt was made.
func postAttempt(ctx context.Context, client *http.Client, ev refund.Event, ep refund.WebhookEndpoint, timeout time.Duration) (refund.WebhookAttempt, *webhooks.NotAllowedError, error) {
	body, err := json.Marshal(webhooks.Event{ID: ev.ID, Type: ev.Type, CreatedAt: ev.CreatedAt.UTC(), Sequence: ev.Sequence, Data: ev.Payload})
	if err != nil {
		return refund.WebhookAttempt{}, nil, fmt.Errorf("encode event %s: %w", ev.ID, err)
	}
	status, latency, sendErr := post(ctx, client, ep, ev.ID, body, timeout)
	att := refund.WebhookAttempt{EventID: ev.ID, EndpointID: ep.ID, LatencyMS: int(latency.Milliseconds()),
		Succeeded: sendErr == nil && status >= 200 && status < 300}
	if status != 0 {
		att.StatusCode = &status
	}
	switch {
	case sendErr != nil:
		att.Error = sendErr.Error()
	case !att.Succeeded:
		att.Error = fmt.Sprintf("endpoint answered %d", status)
	}
	if refused, ok := webhooks.IsNotAllowed(sendErr); ok && refused.Permanent {
		return att, refused, nil
	}
	return att, nil, nil
}

// post sends one signed delivery and returns the HTTP status (0 when none
// came back), how long it took and a transport error.
func post(ctx context.Context, client *http.Client, ep refund.WebhookEndpoint, eventID uuid.UUID, body []byte, timeout time.Duration) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	now := time.Now()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(webhooks.EventIDHeader, eventID.String())
	req.Header.Set(webhooks.SignatureHeader, webhooks.Sign(body, ep.SigningSecrets(now), now))
	resp, err := client.Do(req)
	latency := time.Since(now)
	if refused, ok := webhooks.IsNotAllowed(err); ok {
		return 0, latency, refused // no request was sent: say why, not how the dial failed
	}
	if err != nil {
		return 0, latency, fmt.Errorf("post to endpoint: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 || resp.StatusCode == http.StatusGone {
		return resp.StatusCode, latency, nil
	}
	if text := cleanText(snippet); text != "" {
		return resp.StatusCode, latency, fmt.Errorf("endpoint answered %d: %s", resp.StatusCode, text)
	}
	return resp.StatusCode, latency, nil
}

// cleanText makes an endpoint's answer safe to store as text: valid UTF-8,
// no NUL, one line, bounded.
func cleanText(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\x00", "")), " ")
	if r := []rune(s); len(r) > maxErrorBody {
		s = string(r[:maxErrorBody]) + "..."
	}
	return s
}
