package activities

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/webhooks"
)

// TestFlakyEndpointNotHeldBack: a failure that does not make the endpoint
// failing backs off only its own delivery.
func TestFlakyEndpointNotHeldBack(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	d := refund.DueDelivery{Event: refund.Event{ID: uuid.New(), Payload: []byte(`{}`)}, WindowStartedAt: time.Now(),
		Endpoint: refund.WebhookEndpoint{ID: uuid.New(), URL: srv.URL, Secret: "whsec_x", Failures: refund.EndpointFailingAfter - 2}}
	r := attemptDue(context.Background(), http.DefaultClient, d, DefaultWebhookPolicy())
	if r.out.Status != refund.DeliveryPending || r.out.NextAttemptAt.IsZero() || !r.out.EndpointRetryAt.IsZero() {
		t.Fatalf("outcome %+v: want the delivery retried, the endpoint not held back", r.out)
	}
}

func TestBackoff(t *testing.T) {
	p := DefaultWebhookPolicy()
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 4: 80 * time.Second, 9: 2560 * time.Second, 10: time.Hour, 80: time.Hour} {
		if got := p.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

// TestAttemptDue: how a claimed delivery goes on after its attempt.
func TestAttemptDue(t *testing.T) {
	p := WebhookPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute, GiveUpAfter: time.Hour,
		AttemptTimeout: 2 * time.Second}
	cases := []struct {
		name       string
		status     int
		age        time.Duration // since the delivery's window started
		want       string
		retryIn    time.Duration // delivery's next attempt, when PENDING
		endpointIn time.Duration // endpoint held back, when it failed
		gone       bool
	}{
		{"delivered", http.StatusNoContent, 0, refund.DeliveryDelivered, 0, 0, false},
		{"retried on its own and, failing now, the endpoint's backoff", http.StatusInternalServerError, time.Minute, refund.DeliveryPending,
			8 * time.Second, time.Second, false},
		{"failed past its window", http.StatusBadGateway, 2 * time.Hour, refund.DeliveryFailed, 0, time.Second, false},
		{"gone", http.StatusGone, 0, refund.DeliverySkipped, 0, 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(tc.status) }))
			defer srv.Close()
			d := refund.DueDelivery{
				Event: refund.Event{ID: uuid.New(), Type: refund.EventRefundCreated, Sequence: 1, Payload: []byte(`{}`), CreatedAt: time.Now()},
				// This failure would be its EndpointFailingAfter-th in a row.
				Endpoint: refund.WebhookEndpoint{ID: uuid.New(), URL: srv.URL, Secret: "whsec_x", Failures: refund.EndpointFailingAfter - 1},
				Attempts: 3, WindowStartedAt: time.Now().Add(-tc.age),
			}
			r := attemptDue(context.Background(), http.DefaultClient, d, p)
			if r.out.Status != tc.want || (r.disable == DisabledGone) != tc.gone || r.out.Attempt == nil || *r.out.Attempt.StatusCode != tc.status {
				t.Fatalf("outcome %+v (disable %q), want %s", r.out, r.disable, tc.want)
			}
			near := func(at time.Time, in time.Duration) bool {
				return (in == 0 && at.IsZero()) || (in > 0 && at.Sub(r.at) == in)
			}
			if !near(r.out.NextAttemptAt, tc.retryIn) || !near(r.out.EndpointRetryAt, tc.endpointIn) {
				t.Fatalf("next attempt in %s, endpoint held back %s; want %s and %s",
					r.out.NextAttemptAt.Sub(r.at), r.out.EndpointRetryAt.Sub(r.at), tc.retryIn, tc.endpointIn)
			}
		})
	}
}

// TestAttemptDueURLRefused: an endpoint whose URL the policy refuses for
// good (created before the policy) gets no request; the delivery is
// skipped and the endpoint disabled.
func TestAttemptDueURLRefused(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	defer srv.Close()
	d := refund.DueDelivery{Event: refund.Event{ID: uuid.New(), Payload: []byte(`{}`)}, WindowStartedAt: time.Now(),
		Endpoint: refund.WebhookEndpoint{ID: uuid.New(), URL: srv.URL, Secret: "whsec_x"}}
	r := attemptDue(context.Background(), webhooks.URLPolicy{}.Client(), d, DefaultWebhookPolicy())
	if r.out.Status != refund.DeliverySkipped || r.disable != DisabledURLNotAllowed || r.reason == "" || hits != 0 {
		t.Fatalf("outcome %+v, disable %q (%s), %d requests: want skipped, url_not_allowed, none sent", r.out, r.disable, r.reason, hits)
	}
}
