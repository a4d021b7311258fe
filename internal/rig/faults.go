package rig

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Fault is what FaultProxy does to one provider request.
type Fault string

// Faults a FaultProxy injects between the connectors and the provider.
const (
	FaultNone Fault = ""
	// Fault5xx answers 503 without reaching the provider.
	Fault5xx Fault = "5xx"
	// Fault429 answers 429 with Retry-After: 1 without reaching the provider.
	Fault429 Fault = "429"
	// FaultTimeout holds the request longer than the connectors' HTTP
	// timeout, then lets the provider process it: the client gave up on a
	// request that later happened.
	FaultTimeout Fault = "timeout"
	// FaultLost lets the provider process the request, then cuts the answer
	// off: the refund exists but the client cannot know.
	FaultLost Fault = "lost"
	// Fault401 answers 401 without reaching the provider, as during a
	// credentials outage (rotated keys, an auth service down).
	Fault401 Fault = "401"
	// Fault409 answers 409 (duplicate request) without reaching the
	// provider, as a provider does to a retry of a request it processed.
	Fault409 Fault = "409"
	// FaultForgetKey passes the request without its Idempotency-Key, as a
	// provider that no longer remembers the key (past its retention) sees it.
	FaultForgetKey Fault = "forget-key"
)

// FaultPlan picks the fault of one request; attempt counts the requests with
// the same method and idempotency key (or, without a key, the same URL),
// from 1.
type FaultPlan func(r *http.Request, attempt int) Fault

// FaultProxy wraps the provider with injected faults and counts them.
type FaultProxy struct {
	next    http.Handler
	plan    FaultPlan
	hangFor time.Duration

	mu       sync.Mutex
	attempts map[string]int
	injected map[Fault]int
	enabled  bool
	wg       sync.WaitGroup
}

// NewFaultProxy wraps next; hangFor is how long FaultTimeout holds a request
// (make it longer than the connectors' timeout).
func NewFaultProxy(next http.Handler, plan FaultPlan, hangFor time.Duration) *FaultProxy {
	return &FaultProxy{next: next, plan: plan, hangFor: hangFor, attempts: map[string]int{}, injected: map[Fault]int{}, enabled: true}
}

// SetEnabled turns injection on or off (off: every request passes).
func (p *FaultProxy) SetEnabled(on bool) {
	p.mu.Lock()
	p.enabled = on
	p.mu.Unlock()
}

// Injected returns how many faults of each kind were injected.
func (p *FaultProxy) Injected() map[Fault]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Fault]int, len(p.injected))
	for k, v := range p.injected {
		out[k] = v
	}
	return out
}

// Total is the number of injected faults.
func (p *FaultProxy) Total() int {
	n := 0
	for _, v := range p.Injected() {
		n += v
	}
	return n
}

// Describe lists the injected faults, e.g. "5xx 12, 429 7, lost 5, timeout 4".
func (p *FaultProxy) Describe() string {
	inj := p.Injected()
	var parts []string
	for k, v := range inj {
		parts = append(parts, string(k)+" "+strconv.Itoa(v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// Wait waits for held (FaultTimeout) requests to reach the provider.
func (p *FaultProxy) Wait() { p.wg.Wait() }

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.Header.Get("Idempotency-Key")
	if r.Header.Get("Idempotency-Key") == "" {
		key = r.Method + " " + r.URL.String()
	}
	p.mu.Lock()
	p.attempts[key]++
	attempt := p.attempts[key]
	f := FaultNone
	if p.enabled && p.plan != nil {
		f = p.plan(r, attempt)
	}
	if f != FaultNone {
		p.injected[f]++
	}
	p.mu.Unlock()

	switch f {
	case Fault5xx:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":{"code":"unavailable","message":"injected outage"}}`)
	case Fault429:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"code":"rate_limited","message":"injected rate limit"}}`)
	case Fault401:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":{"code":"unauthorized","message":"injected credentials outage"}}`)
	case Fault409:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"error":{"code":"duplicate_request","message":"injected duplicate"}}`)
	case FaultForgetKey:
		r.Header.Del("Idempotency-Key")
		p.next.ServeHTTP(w, r)
	case FaultTimeout:
		body, _ := io.ReadAll(r.Body)
		p.wg.Add(1)
		defer p.wg.Done()
		time.Sleep(p.hangFor) // the client's timeout fires meanwhile
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		// The client is gone: process it for the provider's sake and drop the answer.
		p.next.ServeHTTP(httptest.NewRecorder(), r2.WithContext(context.WithoutCancel(r.Context())))
	case FaultLost:
		p.next.ServeHTTP(httptest.NewRecorder(), r)
		CutConnection(w)
	default:
		p.next.ServeHTTP(w, r)
	}
}

// CutConnection writes the start of an answer and closes the connection, as
// when a provider's answer is lost on the way. Writing a status line first
// stops Go's transport from silently resending the request.
func CutConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n")
			_ = buf.Flush()
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// FaultMix is the probability of each fault on a create or status request,
// for the first MaxAttempts attempts of a key (later attempts pass, so every
// refund can finish).
type FaultMix struct {
	Rates       map[Fault]float64
	MaxAttempts int
	// CreatesOnly limits faults to POST requests.
	CreatesOnly bool
}

// RandomFaults returns a plan drawing faults from mix with a seeded source.
func RandomFaults(seed uint64, mix FaultMix) FaultPlan {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kinds := make([]Fault, 0, len(mix.Rates))
	for k := range mix.Rates {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	return func(r *http.Request, attempt int) Fault {
		if attempt > mix.MaxAttempts || (mix.CreatesOnly && r.Method != http.MethodPost) {
			return FaultNone
		}
		mu.Lock()
		x := rng.Float64()
		mu.Unlock()
		for _, k := range kinds {
			if x < mix.Rates[k] {
				return k
			}
			x -= mix.Rates[k]
		}
		return FaultNone
	}
}

// CycleFaults gives the n-th distinct idempotency key the fault sequence
// cycle[n % len(cycle)], one fault per attempt (attempts past the sequence
// pass): every kind of fault is injected, in a known proportion. Requests
// without a key pass.
func CycleFaults(cycle [][]Fault) FaultPlan {
	var mu sync.Mutex
	order := map[string]int{}
	return func(r *http.Request, attempt int) Fault {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || len(cycle) == 0 {
			return FaultNone
		}
		mu.Lock()
		n, ok := order[key]
		if !ok {
			n = len(order)
			order[key] = n
		}
		mu.Unlock()
		seq := cycle[n%len(cycle)]
		if attempt > len(seq) {
			return FaultNone
		}
		return seq[attempt-1]
	}
}

// Plans combines plans: creates (POST) follow creates, everything else other.
func Plans(creates, other FaultPlan) FaultPlan {
	return func(r *http.Request, attempt int) Fault {
		if r.Method == http.MethodPost {
			if creates == nil {
				return FaultNone
			}
			return creates(r, attempt)
		}
		if other == nil {
			return FaultNone
		}
		return other(r, attempt)
	}
}
