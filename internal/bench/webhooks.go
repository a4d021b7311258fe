package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
)

// Receivers are the merchant's webhook endpoints of a bench run, all on
// loopback: live ones answer 204 and record each delivery; dead ones are
// ports that refuse connections (listened on once, then closed).
type Receivers struct {
	Live []string // URLs
	Dead []string

	servers []*http.Server
	mu      sync.Mutex
	got     map[delivery]time.Duration // first arrival: delivery latency from the event's creation
	dups    int
	total   int
	last    time.Time
}

type delivery struct {
	event    uuid.UUID
	endpoint int
}

// StartReceivers starts live receivers and reserves dead loopback ports.
func StartReceivers(live, dead int) (*Receivers, error) {
	r := &Receivers{got: map[delivery]time.Duration{}}
	for i := range live {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("start webhook receiver: %w", err)
		}
		srv := &http.Server{Handler: r.handler(i), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(l) }()
		r.servers = append(r.servers, srv)
		r.Live = append(r.Live, "http://"+l.Addr().String()+"/hooks")
	}
	for range dead {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("reserve a dead port: %w", err)
		}
		r.Dead = append(r.Dead, "http://"+l.Addr().String()+"/hooks")
		_ = l.Close() // nothing listens there any more: connections are refused
	}
	return r, nil
}

func (r *Receivers) handler(endpoint int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		now := time.Now()
		var ev struct {
			ID        uuid.UUID `json:"id"`
			CreatedAt time.Time `json:"createdAt"`
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		if err == nil {
			err = json.Unmarshal(body, &ev)
		}
		if err != nil {
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		k := delivery{ev.ID, endpoint}
		r.total++
		if _, seen := r.got[k]; seen {
			r.dups++
		} else {
			r.got[k] = now.Sub(ev.CreatedAt)
			r.last = now
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
}

// Distinct counts the distinct (event, endpoint) deliveries received.
func (r *Receivers) Distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// Close stops the live receivers.
func (r *Receivers) Close() {
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// WebhookReport is what the live endpoints saw of phase (a)'s refunds.
type WebhookReport struct {
	LiveEndpoints int `json:"liveEndpoints"`
	DeadEndpoints int `json:"deadEndpoints"`
	// Expected deliveries: two events (refund.created, refund.succeeded)
	// per refund completed in phase (a), per live endpoint.
	Expected   int `json:"expected"`
	Delivered  int `json:"delivered"`
	Duplicates int `json:"duplicates"`
	// PerSec is distinct deliveries per second, from phase (a)'s first
	// request to the last first-arrival.
	PerSec float64 `json:"deliveriesPerSec"`
	// Latency is from an event's creation (its createdAt) to its first arrival.
	Latency Latency `json:"latency"`
}

// waitDeliveries waits (up to limit) until the receivers have expected
// distinct deliveries, then reports them.
func (r *Receivers) waitDeliveries(ctx context.Context, expected int, since time.Time, limit time.Duration) WebhookReport {
	deadline := time.Now().Add(limit)
	for r.Distinct() < expected && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := make([]time.Duration, 0, len(r.got))
	for _, d := range r.got {
		lat = append(lat, d)
	}
	rep := WebhookReport{LiveEndpoints: len(r.Live), DeadEndpoints: len(r.Dead), Expected: expected, Delivered: len(r.got),
		Duplicates: r.dups, Latency: Summarize(lat)}
	if s := r.last.Sub(since).Seconds(); s > 0 {
		rep.PerSec = round(float64(len(r.got))/s, 1)
	}
	return rep
}

// registerEndpoints creates one webhook endpoint per receiver URL for the
// bench's merchant.
func (a *apiClient) registerEndpoints(ctx context.Context, urls []string) error {
	if len(urls) > 16 {
		return errors.New("bench: a merchant has at most 16 webhook endpoints")
	}
	for _, u := range urls {
		if err := a.post(ctx, "/v1/webhook-endpoints", "", map[string]any{"url": u}, nil, http.StatusCreated); err != nil {
			return fmt.Errorf("register webhook endpoint %s: %w", u, err)
		}
	}
	return nil
}
