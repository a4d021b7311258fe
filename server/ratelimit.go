package server

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

// RateLimit is the token bucket of each API key: PerSecond requests a
// second on average, bursts of up to Burst. Zero PerSecond: no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// DefaultRateLimit is 100 requests a second per key, bursts of 200.
func DefaultRateLimit() RateLimit { return RateLimit{PerSecond: 100, Burst: 200} }

// limiter holds one bucket per key that made a request lately. Each API
// replica limits on its own: N replicas let a key make N times the rate.
type limiter struct {
	limit   RateLimit
	mu      sync.Mutex
	buckets map[uuid.UUID]*bucket
	swept   time.Time
}

type bucket struct {
	tokens *rate.Limiter
	used   time.Time
	warned time.Time
}

// sweepEvery is how often idle buckets are dropped: a bucket idle for
// longer than it takes to refill is the same as a new one.
const sweepEvery = time.Minute

func newLimiter(l RateLimit) *limiter {
	l.Burst = max(l.Burst, 1) // a bucket that holds no token would refuse everything
	return &limiter{limit: l, buckets: map[uuid.UUID]*bucket{}}
}

// take spends a token of key's bucket. When none is left it returns how
// long until one is, and whether to log it (once a minute per key).
func (l *limiter) take(key uuid.UUID, now time.Time) (wait time.Duration, warn bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > sweepEvery {
		refill := time.Duration(float64(l.limit.Burst) / l.limit.PerSecond * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.used) > max(refill, sweepEvery) {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: rate.NewLimiter(rate.Limit(l.limit.PerSecond), l.limit.Burst)}
		l.buckets[key] = b
	}
	b.used = now
	r := b.tokens.ReserveN(now, 1)
	if wait = r.DelayFrom(now); wait <= 0 {
		return 0, false
	}
	r.CancelAt(now) // a refused request spends nothing
	if now.Sub(b.warned) > time.Minute {
		b.warned, warn = now, true
	}
	return wait, warn
}

// rateLimit refuses a key's requests beyond its bucket: 429 rate_limited
// with Retry-After, before any other work is done for them.
func (s *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	if s.limiter == nil {
		return next
	}
	return func(c echo.Context) error {
		p := principal(c)
		wait, warn := s.limiter.take(p.KeyID, time.Now())
		if wait == 0 {
			return next(c)
		}
		if s.rateLimited != nil {
			s.rateLimited(c.Path())
		}
		if warn {
			s.log.WarnContext(c.Request().Context(), "API key rate limited", "keyId", p.KeyID, "merchantId", p.MerchantID,
				"route", c.Path(), "perSecond", s.limiter.limit.PerSecond, "burst", s.limiter.limit.Burst, "requestId", requestID(c))
		}
		seconds := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(seconds, 1)))
		return problem(CodeRateLimited, "too many requests with this API key: at most "+
			strconv.FormatFloat(s.limiter.limit.PerSecond, 'f', -1, 64)+" a second, bursts of "+strconv.Itoa(s.limiter.limit.Burst)+
			"; retry after the Retry-After header's seconds")
	}
}
