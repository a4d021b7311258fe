package server

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestLimiterBuckets(t *testing.T) {
	l := newLimiter(RateLimit{PerSecond: 10, Burst: 20})
	a, b := uuid.New(), uuid.New()
	now := time.Unix(1_800_000_000, 0)
	for i := range 20 {
		if wait, _ := l.take(a, now); wait != 0 {
			t.Fatalf("request %d of the burst waits %s", i+1, wait)
		}
	}
	wait, warn := l.take(a, now)
	if wait <= 0 || wait > 100*time.Millisecond || !warn {
		t.Fatalf("past the burst: wait %s, warn %v; want up to one token's 100ms, logged", wait, warn)
	}
	if _, warn := l.take(a, now.Add(time.Millisecond)); warn {
		t.Fatal("logged twice within the minute")
	}
	if wait, _ := l.take(b, now); wait != 0 {
		t.Fatalf("another key waits %s", wait)
	}
	// Refused requests spend nothing: 100 ms later exactly one more passes.
	later := now.Add(100 * time.Millisecond)
	if wait, _ := l.take(a, later); wait != 0 {
		t.Fatalf("after a token's time: wait %s", wait)
	}
	if wait, _ := l.take(a, later); wait == 0 {
		t.Fatal("two requests on one refilled token")
	}
	// Idle buckets are dropped once full again; active ones are kept.
	l.take(b, now.Add(90*time.Second))
	l.take(b, now.Add(2*time.Minute))
	if _, ok := l.buckets[a]; ok {
		t.Fatal("an idle key's bucket was kept")
	}
	if _, ok := l.buckets[b]; !ok {
		t.Fatal("an active key's bucket was dropped")
	}
	if zero := newLimiter(RateLimit{PerSecond: 5}); zero.limit.Burst != 1 {
		t.Fatalf("a zero burst became %d, want 1", zero.limit.Burst)
	}
}
