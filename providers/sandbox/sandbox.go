// Package sandbox is an in-memory payment service provider that serves the
// card (cardpay), payment platform (paydesk), orchestration (orchestra),
// mobile money (momo) and bank (banktransfer) APIs that Backflow's connectors
// speak. It enforces provider-side idempotency, sends signed callbacks and
// picks each refund's fate from its amount (see README.md).
package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/backflow/backflow/providers"
	"github.com/google/uuid"
)

// Options configure a sandbox Server.
type Options struct {
	// CallbackURL is the Backflow API base; callbacks go to
	// {CallbackURL}/v1/provider-callbacks/{providerName}. Empty disables callbacks.
	CallbackURL string
	// ProviderNames maps an API type (cardpay, paydesk, orchestra, momo,
	// banktransfer) to the provider name used in the callback path; missing
	// entries map to themselves.
	ProviderNames map[string]string
	// AsyncDelay is how long asynchronous outcomes (04, 05) take; default 2s.
	AsyncDelay time.Duration
	// ReverseAfter is how long after its success a refund of outcome 08 is
	// reversed; default 3s.
	ReverseAfter time.Duration
	// AuthOutage is how long after the create status checks of an outcome-09
	// refund answer 401; then it has succeeded. Default 10s.
	AuthOutage time.Duration
	// LookupLag is how long after the create a look-up by idempotency key
	// does not find an outcome-10 refund; default 2s.
	LookupLag time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Stats are totals since the server started.
type Stats struct {
	CreateRequests  int // create requests received, answered or not
	Created         int // refunds and payouts created
	Replayed        int // creates answered with an existing object (same idempotency key)
	CallbacksSent   int // callbacks the receiver acknowledged with 2xx
	CallbacksFailed int // callbacks given up after all attempts
}

// Server is the sandbox PSP; it implements http.Handler.
type Server struct {
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	client *http.Client // for callbacks

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // timers and callback deliveries

	mu       sync.Mutex
	closed   bool
	byKey    map[recordKey]*record
	byID     map[recordKey]*record
	requests map[recordKey]int
	timers   map[*time.Timer]struct{}
	stats    Stats
}

// Outcome controls: the amount in minor units modulo 100.
const (
	outcomeDecline      = 1  // declined
	outcomeTransient    = 2  // 503 on the first two create requests of a key
	outcomeLostAnswer   = 3  // created, but the first answer is lost
	outcomeAsyncSuccess = 4  // processing, succeeds after AsyncDelay with a callback
	outcomeAsyncFailure = 5  // processing, fails after AsyncDelay with a callback
	outcomeNever        = 6  // processing forever
	outcomeRateLimited  = 7  // 429 with Retry-After: 1 on the first create request of a key
	outcomeReversed     = 8  // succeeds, then is reversed after ReverseAfter with a callback
	outcomeAuthOutage   = 9  // processing; status checks answer 401 for AuthOutage, then it has succeeded (no callback)
	outcomeLookupLag    = 10 // created, the first answer lost, later creates 409; unseen by key for LookupLag
)

// Defaults of the timed outcomes.
const (
	defaultAsyncDelay   = 2 * time.Second
	defaultReverseAfter = 3 * time.Second
	defaultAuthOutage   = 10 * time.Second
	defaultLookupLag    = 2 * time.Second
)

// transientFailures is how many create requests outcomeTransient answers with 503.
const transientFailures = 2

// Callback delivery: attempts and the first pause between them (doubling).
const (
	callbackAttempts = 5
	callbackBackoff  = 250 * time.Millisecond
)

const maxBodyBytes = 1 << 20

// New returns a sandbox server; Close it to stop pending outcomes and callbacks.
func New(opts Options) *Server {
	opts.AsyncDelay = positiveOr(opts.AsyncDelay, defaultAsyncDelay)
	opts.ReverseAfter = positiveOr(opts.ReverseAfter, defaultReverseAfter)
	opts.AuthOutage = positiveOr(opts.AuthOutage, defaultAuthOutage)
	opts.LookupLag = positiveOr(opts.LookupLag, defaultLookupLag)
	names := map[string]string{}
	for _, a := range apis {
		names[a.name] = a.name
	}
	for k, v := range opts.ProviderNames {
		names[k] = v
	}
	opts.ProviderNames = names
	opts.CallbackURL = strings.TrimRight(opts.CallbackURL, "/")
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:     opts,
		log:      logger.With("component", "sandbox-psp"),
		mux:      http.NewServeMux(),
		client:   &http.Client{Timeout: 10 * time.Second},
		ctx:      ctx,
		cancel:   cancel,
		byKey:    map[recordKey]*record{},
		byID:     map[recordKey]*record{},
		requests: map[recordKey]int{},
		timers:   map[*time.Timer]struct{}{},
	}
	s.routeCardpay()
	s.routePaydesk()
	s.routeOrchestra()
	s.routeMomo()
	s.routeBank()
	return s
}

func positiveOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ServeHTTP serves the sandbox APIs.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Close stops pending asynchronous outcomes and callback deliveries and waits
// for them to end. Refunds still processing stay so.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.wg.Done() // the timer will never run its Done
		}
	}
	clear(s.timers)
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Count returns how many refunds and payouts exist for idempotencyKey, over
// all APIs: 0 or 1 unless provider-side idempotency is broken.
func (s *Server) Count(idempotencyKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.byKey {
		if k.id == idempotencyKey {
			n++
		}
	}
	return n
}

// Requests returns how many create requests carried idempotencyKey.
func (s *Server) Requests(idempotencyKey string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.requests {
		if k.id == idempotencyKey {
			n += c
		}
	}
	return n
}

// Stats returns totals since the server started.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// state is an API-neutral refund or payout state; each API names it.
type state int

const (
	stateProcessing state = iota
	stateSucceeded
	stateDeclined
	stateFailed
	stateReversed // succeeded, then taken back by the provider
)

// recordKey scopes ids and idempotency keys per API.
type recordKey struct{ api, id string }

// record is one refund or payout.
type record struct {
	api         string
	id          string
	key         string // idempotency key
	fingerprint string // what the key was first used for
	payment     string // original payment (refund APIs)
	amount      int64  // minor units
	currency    string
	outcome     int // the outcome control: amount % 100
	state       state
	created     time.Time
	updated     time.Time
	details     any // the API's decoded create request, for rendering
}

// createReq is an API-neutral create request.
type createReq struct {
	api      *api
	key      string
	payment  string // original payment, or the payout destination
	amount   int64
	currency string
	details  any
}

// verdict says how to answer a create request.
type verdict int

const (
	answerObject      verdict = iota // answer with the (new or existing) object
	answerUnavailable                // 503
	answerRateLimited                // 429 with Retry-After
	answerLost                       // close the connection without an answer
	answerMismatch                   // the key was used for another request
	answerDuplicate                  // 409: the key's request was already processed (outcome 10)
)

// create applies provider-side idempotency and the outcome controls. Under
// one lock, so concurrent requests with one key create one object.
func (s *Server) create(c createReq) (record, verdict) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.CreateRequests++
	key := c.key
	if key == "" {
		key = "no-key-" + uuid.NewString() // without a key every request is new
	}
	k := recordKey{c.api.name, key}
	s.requests[k]++
	fingerprint := fmt.Sprintf("%s|%d|%s", c.payment, c.amount, c.currency)
	if r, ok := s.byKey[k]; ok {
		if r.outcome == outcomeLookupLag {
			return *r, answerDuplicate
		}
		if r.fingerprint != fingerprint {
			return *r, answerMismatch
		}
		s.stats.Replayed++
		return *r, answerObject
	}

	outcome := int(c.amount % 100)
	switch {
	case outcome == outcomeTransient && s.requests[k] <= transientFailures:
		return record{}, answerUnavailable
	case outcome == outcomeRateLimited && s.requests[k] == 1:
		return record{}, answerRateLimited
	}
	now := time.Now().UTC()
	r := &record{
		api: c.api.name, id: c.api.newID(), key: c.key, fingerprint: fingerprint,
		payment: c.payment, amount: c.amount, currency: c.currency, outcome: outcome,
		state: stateSucceeded, created: now, updated: now, details: c.details,
	}
	switch outcome {
	case outcomeDecline:
		r.state = stateDeclined
	case outcomeAsyncSuccess:
		r.state = stateProcessing
		s.schedule(r, s.opts.AsyncDelay, stateSucceeded, true)
	case outcomeAsyncFailure:
		r.state = stateProcessing
		s.schedule(r, s.opts.AsyncDelay, stateFailed, true)
	case outcomeNever:
		r.state = stateProcessing
	case outcomeReversed:
		s.schedule(r, s.opts.ReverseAfter, stateReversed, true)
	case outcomeAuthOutage:
		r.state = stateProcessing
		s.schedule(r, s.opts.AuthOutage, stateSucceeded, false) // learnt by status checks only
	}
	s.byKey[k] = r
	s.byID[recordKey{c.api.name, r.id}] = r
	s.stats.Created++
	s.log.Info("sandbox object created", "api", c.api.name, "id", r.id, "idempotencyKey", c.key,
		"amount", c.amount, "currency", c.currency, "outcome", fmt.Sprintf("%02d", outcome))
	if outcome == outcomeLostAnswer || outcome == outcomeLookupLag {
		return *r, answerLost
	}
	return *r, answerObject
}

// schedule moves r to final after delay and, with notify, sends a callback.
// Called with s.mu held, which also keeps the timer func from reading t too early.
func (s *Server) schedule(r *record, delay time.Duration, final state, notify bool) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(delay, func() {
		defer s.wg.Done()
		s.mu.Lock()
		delete(s.timers, t)
		if s.closed {
			s.mu.Unlock()
			return
		}
		r.state = final
		r.updated = time.Now().UTC()
		snapshot := *r
		s.mu.Unlock()
		s.log.Info("sandbox object completed", "api", r.api, "id", r.id, "idempotencyKey", r.key, "final", final)
		if notify {
			s.notify(snapshot)
		}
	})
	s.timers[t] = struct{}{}
}

// get returns the object id of api.
func (s *Server) get(a *api, id string) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byID[recordKey{a.name, id}]
	if !ok {
		return record{}, false
	}
	return *r, true
}

// findByKey returns the object created with an idempotency key, if any. An
// outcome-10 object stays unseen for LookupLag: a read that lags the write.
func (s *Server) findByKey(a *api, key string) (record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.byKey[recordKey{a.name, key}]
	if !ok || (r.outcome == outcomeLookupLag && time.Since(r.created) < s.opts.LookupLag) {
		return record{}, false
	}
	return *r, true
}

// authOutage reports whether status checks of r answer 401 (outcome 09).
func (s *Server) authOutage(r record) bool {
	return r.outcome == outcomeAuthOutage && time.Since(r.created) < s.opts.AuthOutage
}

// notify delivers r's callback in the background, retrying a few times.
func (s *Server) notify(r record) {
	if s.opts.CallbackURL == "" {
		return
	}
	a := apiByName[r.api]
	body, err := json.Marshal(a.callback(r, "evt_"+uuid.NewString(), time.Now().UTC()))
	if err != nil {
		s.log.Error("encode sandbox callback", "api", r.api, "err", err)
		return
	}
	url := s.opts.CallbackURL + providers.CallbackPath(s.opts.ProviderNames[a.name])
	s.wg.Add(1) // the caller (a timer func) holds the group, so Close cannot have returned
	go func() {
		defer s.wg.Done()
		backoff := callbackBackoff
		for attempt := 1; ; attempt++ {
			err := s.post(url, a.secret, body)
			if err == nil {
				s.count(func(st *Stats) { st.CallbacksSent++ })
				return
			}
			s.log.Warn("sandbox callback failed", "url", url, "id", r.id, "attempt", attempt, "err", err)
			if attempt == callbackAttempts {
				s.count(func(st *Stats) { st.CallbacksFailed++ })
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
				backoff *= 2
			}
		}
	}()
}

func (s *Server) count(f func(*Stats)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.stats)
}

// post sends one signed callback.
func (s *Server) post(url, secret string, body []byte) error {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build callback: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(providers.SandboxSignatureHeader, providers.SignCallback(secret, time.Now(), body))
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("send callback: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("send callback: status %d", resp.StatusCode)
	}
	return nil
}

// answerCreate writes the answer a create verdict calls for.
func (s *Server) answerCreate(w http.ResponseWriter, a *api, r record, v verdict) {
	switch v {
	case answerUnavailable:
		a.fail(w, errUnavailable, "temporarily unavailable, retry with the same idempotency key")
	case answerRateLimited:
		w.Header().Set("Retry-After", "1")
		a.fail(w, errRateLimited, "too many requests, retry after 1 second")
	case answerMismatch:
		a.fail(w, errMismatch, "idempotency key already used for a different request")
	case answerDuplicate:
		a.fail(w, errDuplicate, "a request with this idempotency key was already processed")
	case answerLost:
		dropConnection(w)
	default:
		a.answerObject(w, r)
	}
}

// dropConnection cuts the answer off after its status line and closes the
// connection, as when a provider processed a request but its answer was lost.
// A client cannot tell whether the request was processed; because some bytes
// arrived, Go's transport will not silently resend it on a reused connection
// either (it does that for requests with an Idempotency-Key when nothing came
// back), so the connector sees the error.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\n") // the connection dies next anyway
			_ = buf.Flush()
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2: reset the stream instead
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client is gone if this fails
}

// decodeBody decodes a JSON request body strictly: unknown fields are
// rejected so connector bugs show up as errors.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode request body: %w", err)
	}
	if dec.More() {
		return errors.New("decode request body: trailing data")
	}
	return nil
}

// bearerToken returns the token of "Authorization: Bearer <token>".
func bearerToken(r *http.Request) string {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return token
}

// paymentProblem applies the payment-reference controls of the refund APIs:
// no payment is registered, but some prefixes stand for payments that cannot
// be refunded.
func paymentProblem(ref string) (errKind, string) {
	switch {
	case strings.HasPrefix(ref, "missing"):
		return errNotFound, "no payment " + ref
	case strings.HasPrefix(ref, "refunded"):
		return errInsufficient, "payment " + ref + " is already fully refunded"
	case strings.HasPrefix(ref, "authorized"):
		return errNotCaptured, "payment " + ref + " is not captured; void it instead"
	default:
		return errNone, ""
	}
}

// validCurrency reports whether c looks like an ISO 4217 code.
func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// shortID returns prefix plus 14 random base-62 characters.
func shortID(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 14)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return prefix + string(b)
}

// uuidV7 returns a new time-ordered UUID.
func uuidV7() string { return uuid.Must(uuid.NewV7()).String() }

// submit creates (or replays) the object of a validated create request and
// answers it.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, c createReq) {
	c.key = r.Header.Get("Idempotency-Key")
	rec, v := s.create(c)
	s.answerCreate(w, c.api, rec, v)
}
