package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/metrics"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
)

// TestRateLimit: each key has its own token bucket; past it, 429
// rate_limited with Retry-After, counted in the metrics; other keys and the
// key itself, once the bucket refills, go on.
func TestRateLimit(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	m := metrics.New()
	limit := server.RateLimit{PerSecond: 2, Burst: 5}
	api := httptest.NewServer(server.New(server.Deps{Service: rig.NewService(s.Store, s.Temporal, s.TaskQueue, s.Providers, s.Logger, refunds.Hooks{}),
		Logger: s.Logger, Metrics: m.Handler(), RateLimit: limit, RateLimited: m.RateLimited}).Handler())
	t.Cleanup(api.Close)
	c, other := rig.NewClient(api.URL, s.MerchantKey), rig.NewClient(api.URL, s.OpsKey)
	ctx := context.Background()
	get := func(c *rig.Client, path string) rig.Response {
		r, err := c.Do(ctx, "GET", path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for i := range limit.Burst {
		if r := get(c, "/v1/refunds"); r.Status != http.StatusOK {
			t.Fatalf("request %d of the burst: %d %s", i+1, r.Status, r.Body)
		}
	}
	r := get(c, "/v1/refunds/"+s.MerchantID.String())
	p := rig.AssertProblem(t, r, http.StatusTooManyRequests, server.CodeRateLimited)
	if after, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || after != 1 {
		t.Fatalf("Retry-After %q, want 1 (a token every 500 ms)", r.Header.Get("Retry-After"))
	}
	if !strings.Contains(p.Detail, "at most 2 a second, bursts of 5") {
		t.Fatalf("detail %q", p.Detail)
	}
	if r := get(other, "/v1/ops/refunds"); r.Status != http.StatusOK {
		t.Fatalf("another key: %d %s", r.Status, r.Body)
	}
	// Unauthenticated requests are refused before the limit: 401, not 429.
	if r := get(rig.NewClient(api.URL, "bf_nope"), "/v1/refunds"); r.Status != http.StatusUnauthorized {
		t.Fatalf("unknown key: %d", r.Status)
	}
	if err := rig.Poll(ctx, 5*time.Second, "the bucket refills", func(context.Context) (bool, error) {
		return get(c, "/v1/refunds").Status == http.StatusOK, nil
	}); err != nil {
		t.Fatal(err)
	}
	scrape := get(rig.NewClient(api.URL, ""), "/metrics")
	if !strings.Contains(string(scrape.Body), metrics.RateLimited+`{route="/v1/refunds/:id"} 1`) {
		t.Fatalf("the scrape lacks the refused request:\n%s", grepLines(string(scrape.Body), "rate_limited"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
