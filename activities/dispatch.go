package activities

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/activity"
	"golang.org/x/time/rate"

	"github.com/backflow/backflow/refund"
)

// DispatchOptions tune a webhook dispatcher (DispatchWebhooks). They bound
// what one slow or dead endpoint can hold: PerEndpoint attempts in flight
// (one while it fails), each cut at the policy's AttemptTimeout.
type DispatchOptions struct {
	Concurrency  int           // attempts in flight per dispatcher
	PerEndpoint  int           // attempts in flight per endpoint, per dispatcher
	PollInterval time.Duration // how often an idle dispatcher looks for due deliveries
	Rate         float64       // attempts started per second per dispatcher; 0: unlimited
	// DisableAfter: an endpoint whose every attempt failed for this long is
	// disabled (a webhook_endpoint.disabled event tells its merchant).
	DisableAfter time.Duration
}

// DefaultDispatchOptions are the production settings.
func DefaultDispatchOptions() DispatchOptions {
	return DispatchOptions{Concurrency: 32, PerEndpoint: 4, PollInterval: 250 * time.Millisecond, DisableAfter: 72 * time.Hour}
}

func (o DispatchOptions) withDefaults() DispatchOptions {
	def := DefaultDispatchOptions()
	if o.Concurrency <= 0 {
		o.Concurrency = def.Concurrency
	}
	if o.PerEndpoint <= 0 {
		o.PerEndpoint = def.PerEndpoint
	}
	if o.PollInterval <= 0 {
		o.PollInterval = def.PollInterval
	}
	if o.DisableAfter <= 0 {
		o.DisableAfter = def.DisableAfter
	}
	return o
}

// leaseSlack is added to the attempt timeout for a claimed delivery's
// lease: the attempt's database writes.
const leaseSlack = 20 * time.Second

// DispatchReport says what one slice of a dispatcher did.
type DispatchReport struct {
	Attempts, Delivered, Retrying, Failed, Skipped int64
}

// Add sums two reports (a dispatcher's run).
func (r DispatchReport) Add(o DispatchReport) DispatchReport {
	return DispatchReport{Attempts: r.Attempts + o.Attempts, Delivered: r.Delivered + o.Delivered, Retrying: r.Retrying + o.Retrying,
		Failed: r.Failed + o.Failed, Skipped: r.Skipped + o.Skipped}
}

// DispatchWebhooks is one slice of a webhook dispatcher: until slice has
// passed (or the activity is canceled), it claims due deliveries from the
// outbox and makes their attempts, at most Concurrency at once, recording
// their outcomes in batches; then it waits for those in flight. It
// heartbeats as it goes, so a dead worker's dispatcher moves to another; a
// claimed delivery's lease makes sure that no delivery is lost with the
// worker (it is claimed again) nor made twice at once.
func (a *Activities) DispatchWebhooks(ctx context.Context, slice time.Duration) (DispatchReport, error) {
	o, p := a.Dispatch.withDefaults(), a.Webhooks.withDefaults()
	var limiter *rate.Limiter
	if o.Rate > 0 {
		limiter = rate.NewLimiter(rate.Limit(o.Rate), max(1, int(math.Ceil(o.Rate))))
	}
	var rep dispatchCounters
	// Attempts in flight finish (within the attempt timeout) and are
	// recorded even when the slice is canceled.
	attemptCtx := context.WithoutCancel(ctx)
	slots := make(chan struct{}, o.Concurrency)
	// recorded wakes the loop when outcomes are written: their slots and
	// their endpoints' room are free again.
	recorded := make(chan struct{}, 1)
	results := make(chan attemptResult, o.Concurrency)
	recorderDone := make(chan struct{})
	go func() {
		defer close(recorderDone)
		a.recordOutcomes(attemptCtx, results, o, &rep, recorded)
	}()
	var wg sync.WaitGroup
	deadline := time.Now().Add(slice)
	for ctx.Err() == nil && time.Now().Before(deadline) {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, rep.report())
		}
		free := o.Concurrency - len(slots)
		var due []refund.DueDelivery
		var err error
		if free > 0 {
			due, err = a.Store.ClaimDeliveries(ctx, free, o.PerEndpoint, p.AttemptTimeout+leaseSlack)
		}
		if err != nil && ctx.Err() == nil {
			logger(ctx).Error("claim webhook deliveries", "error", err)
		}
		for _, d := range due {
			if limiter != nil && limiter.Wait(ctx) != nil {
				break // canceled: the rest of the claim waits out its lease
			}
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				results <- attemptDue(attemptCtx, a.webhookClient(), d, p)
			}()
		}
		if free > 0 && len(due) == free {
			continue // there may be more due at once
		}
		// What was claimable is claimed: wait for outcomes to be recorded
		// (slots and endpoints' room freed), or for new deliveries.
		select {
		case <-ctx.Done():
		case <-recorded:
		case <-time.After(o.PollInterval):
		}
	}
	// The attempts in flight end within the attempt timeout, which may be
	// longer than the heartbeat timeout: keep heartbeating meanwhile.
	done := make(chan struct{})
	go func() { wg.Wait(); close(results); <-recorderDone; close(done) }()
	for tick := time.NewTicker(time.Second); ; {
		select {
		case <-done:
			tick.Stop()
			return rep.report(), ctx.Err()
		case <-tick.C:
			if activity.IsActivity(ctx) && ctx.Err() == nil {
				activity.RecordHeartbeat(ctx, rep.report())
			}
		}
	}
}

// attemptResult is one attempt made and how its delivery ends.
type attemptResult struct {
	due refund.DueDelivery
	out refund.DeliveryOutcome
	// disable is why the attempt disables its endpoint (DisabledGone,
	// DisabledURLNotAllowed), and reason what its merchant reads; empty: it
	// does not.
	disable, reason string
	at              time.Time
}

// attemptDue makes the attempt of one claimed delivery and decides how
// the delivery goes on: delivered; a retry after the policy's backoff (the
// endpoint held back by its own backoff too once it is failing); failed
// once its retry window has passed; skipped when the endpoint answered 410
// or the URL policy refuses its URL for good (both disable it).
func attemptDue(ctx context.Context, client *http.Client, d refund.DueDelivery, p WebhookPolicy) attemptResult {
	r := attemptResult{due: d, out: refund.DeliveryOutcome{Delivery: refund.Delivery{EventID: d.Event.ID, EndpointID: d.Endpoint.ID},
		WindowStartedAt: d.WindowStartedAt}}
	att, refused, err := postAttempt(ctx, client, d.Event, d.Endpoint, p.AttemptTimeout)
	now := time.Now()
	switch {
	case refused != nil:
		r.disable, r.reason = DisabledURLNotAllowed, refused.Error()
	case att.StatusCode != nil && *att.StatusCode == http.StatusGone:
		r.disable, r.reason = DisabledGone, goneReason
	}
	out := &r.out
	switch {
	case err != nil:
		out.Status = refund.DeliveryFailed // the event cannot be encoded: no attempt can succeed
		logger(ctx).Error("webhook event cannot be delivered", "eventId", d.Event.ID, "error", err)
	case att.Succeeded:
		out.Attempt, out.Status = &att, refund.DeliveryDelivered
	case r.disable != "":
		out.Attempt, out.Status = &att, refund.DeliverySkipped
	case now.Sub(d.WindowStartedAt) >= p.GiveUpAfter:
		out.Attempt, out.Status = &att, refund.DeliveryFailed
	default:
		out.Attempt, out.Status, out.NextAttemptAt = &att, refund.DeliveryPending, now.Add(p.backoff(d.Attempts+1))
	}
	// From its EndpointFailingAfter-th consecutive failure, the endpoint is
	// held back as a whole: a dead one costs a probe per backoff step.
	if failures := d.Endpoint.Failures + 1; out.Attempt != nil && !att.Succeeded && r.disable == "" && failures >= refund.EndpointFailingAfter {
		out.EndpointRetryAt = now.Add(p.backoff(failures - refund.EndpointFailingAfter + 1))
	}
	r.at = now
	return r
}

// recordBatching is how long the recorder waits for more outcomes after
// the first one, so that one statement records several.
const recordBatching = 10 * time.Millisecond

// recordOutcomes writes the attempts' outcomes in batches (one statement
// each, store.FinishDeliveries) until results is closed, then counts them
// and disables the endpoints that answered 410 or failed for DisableAfter.
// A batch that cannot be written is logged: the leases run out and the
// deliveries are attempted again (at least once).
func (a *Activities) recordOutcomes(ctx context.Context, results <-chan attemptResult, o DispatchOptions, rep *dispatchCounters, recorded chan<- struct{}) {
	log := logger(ctx)
	for first := range results {
		batch := []attemptResult{first}
		timer := time.NewTimer(recordBatching)
	collect:
		for len(batch) < cap(results) {
			select {
			case r, ok := <-results:
				if !ok {
					break collect
				}
				batch = append(batch, r)
			case <-timer.C:
				break collect
			}
		}
		timer.Stop()
		outs := make([]refund.DeliveryOutcome, len(batch))
		for i, r := range batch {
			outs[i] = r.out
		}
		_, err := a.Store.FinishDeliveries(ctx, outs)
		select {
		case recorded <- struct{}{}:
		default:
		}
		if err != nil {
			log.Error("record webhook deliveries", "deliveries", len(batch), "error", err)
			continue
		}
		for _, r := range batch {
			a.afterAttempt(ctx, r, o, rep)
		}
	}
}

// afterAttempt counts a recorded attempt and disables its endpoint when the
// attempt says so (410, a URL refused for good), or when its every attempt
// failed for DisableAfter.
func (a *Activities) afterAttempt(ctx context.Context, r attemptResult, o DispatchOptions, rep *dispatchCounters) {
	out, ep := r.out, r.due.Endpoint
	rep.count(out.Status, out.Attempt != nil)
	if out.Attempt == nil {
		return
	}
	if a.ObserveDelivery != nil {
		a.ObserveDelivery(out.Status, r.at.Sub(r.due.Event.CreatedAt))
	}
	cause, reason := r.disable, r.reason
	switch {
	case cause != "":
	case !out.Attempt.Succeeded && ep.FailingSince != nil && r.at.Sub(*ep.FailingSince) >= o.DisableAfter:
		cause = DisabledFailing
		reason = fmt.Sprintf("every attempt failed since %s (%s)", ep.FailingSince.UTC().Format(time.RFC3339), o.DisableAfter)
	default:
		return
	}
	if err := a.disableEndpoint(ctx, ep, cause, reason); err != nil {
		logger(ctx).Error("disable webhook endpoint", "endpointId", ep.ID, "error", err)
	}
}

// backoff is the wait before retry n (1, 2, ...): InitialInterval growing
// by BackoffCoefficient up to MaximumInterval, as Temporal's retry policy.
func (p WebhookPolicy) backoff(n int) time.Duration {
	d := float64(p.InitialInterval) * math.Pow(p.BackoffCoefficient, float64(max(n-1, 0)))
	return time.Duration(min(d, float64(p.MaximumInterval)))
}

type dispatchCounters struct {
	attempts, delivered, retrying, failed, skipped atomic.Int64
}

func (c *dispatchCounters) count(status string, attempted bool) {
	if attempted {
		c.attempts.Add(1)
	}
	switch status {
	case refund.DeliveryDelivered:
		c.delivered.Add(1)
	case refund.DeliveryPending:
		c.retrying.Add(1)
	case refund.DeliveryFailed:
		c.failed.Add(1)
	case refund.DeliverySkipped:
		c.skipped.Add(1)
	}
}

func (c *dispatchCounters) report() DispatchReport {
	return DispatchReport{Attempts: c.attempts.Load(), Delivered: c.delivered.Load(), Retrying: c.retrying.Load(),
		Failed: c.failed.Load(), Skipped: c.skipped.Load()}
}
