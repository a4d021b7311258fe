package reliability_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/activities"
	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/webhooks"
	"github.com/backflow/backflow/workflows"
)

// ssrfTargets are internal addresses of every range of SPEC §12's list, as
// literals in every form and as names that resolve to them.
var ssrfTargets = []string{
	"https://169.254.169.254/latest/meta-data/", "http://169.254.169.254/latest/meta-data/", "https://[fe80::1]/",
	"https://10.0.0.1/", "http://10.0.0.1/", "https://172.16.0.1/", "https://192.168.1.1/", "https://[fc00::1]/", "https://[fd00:ec2::254]/",
	"https://100.64.0.1/", "https://0.0.0.0/", "https://[::]/", "https://224.0.0.1/", "https://[ff02::1]/", "https://255.255.255.255/",
	"https://127.0.0.1:5432/", "http://localhost:5433/", "http://[::1]:8080/", "https://[::ffff:169.254.169.254]/",
	"https://[::ffff:10.0.0.1]/", "https://[::10.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a00:1::1]/",
	"https://metadata.example/", "https://db.example/", "https://cgnat.example/", "https://v6.example/", "https://mapped.example/",
}

// TestHostileMerchant: one merchant attacks Backflow through the API while
// another trades as usual. Every SSRF attempt over every range is refused
// at creation, and a name rebound to the metadata service after creation
// at delivery, before any connection; oversized bodies get 413, trickling
// clients are dropped at the read timeouts, a burst beyond the rate limit
// gets 429; every answer to the attacker is a problem+json; nothing reaches
// an internal address; the other merchant's refunds and reads never fail.
func TestHostileMerchant(t *testing.T) {
	sc := begin(t, "18. Hostile merchant")
	ctx := context.Background()
	dns := rig.NewStubResolver()
	for host, addr := range map[string]string{"metadata.example": "169.254.169.254", "db.example": "10.1.2.3",
		"cgnat.example": "100.100.1.1", "v6.example": "fd12:3456::1", "mapped.example": "::ffff:192.168.0.1"} {
		dns.Set(host, addr)
	}
	var dials sync.Map // address → the policy's verdict
	limits := server.Limits{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: 10 * time.Second,
		IdleTimeout: 5 * time.Second, MaxHeaderBytes: 32 << 10}
	rate := server.RateLimit{PerSecond: 50, Burst: 100}
	r := startRig(t, rigOptions{RigOptions: rig.RigOptions{NoWorker: true, HTTPLimits: limits, RateLimit: &rate,
		WebhookURLs: webhooks.URLPolicy{Resolver: dns, DialGuard: func(address string, verdict error) error {
			dials.Store(address, verdict)
			return webhooks.LoopbackOnly(address, verdict)
		}}}})
	r.Activities.Webhooks = activities.WebhookPolicy{InitialInterval: 200 * time.Millisecond, BackoffCoefficient: 2,
		MaximumInterval: time.Second, GiveUpAfter: time.Minute, AttemptTimeout: 2 * time.Second}
	if err := r.StartWorker(); err != nil {
		t.Fatal(err)
	}
	hostile, bystander := newMerchant(t, r), newMerchant(t, r)
	h, b := r.Client(hostile), r.Client(bystander)

	// The bystander trades throughout: refunds on its payment, and reads.
	btx := must[rig.Transaction](t)(b.CreateTransaction(ctx, map[string]any{"amount": 100000}))
	var bDone atomic.Bool
	var bMu sync.Mutex
	var bFailures []string
	var bRefunds []string
	var bSlowest time.Duration
	bLoop := make(chan struct{})
	go func() {
		defer close(bLoop)
		for i := 0; !bDone.Load(); i++ {
			start := time.Now()
			resp, err := b.CreateRefund(ctx, rig.RefundBody(btx, 100), "")
			read, rerr := b.Do(ctx, "GET", "/v1/transactions/"+btx.ID, nil)
			d := time.Since(start)
			bMu.Lock()
			bSlowest = max(bSlowest, d)
			switch {
			case err != nil || rerr != nil:
				bFailures = append(bFailures, fmt.Sprint(err, rerr))
			case resp.Status != http.StatusAccepted || read.Status != http.StatusOK:
				bFailures = append(bFailures, fmt.Sprintf("%d %d: %s", resp.Status, read.Status, resp.Body))
			default:
				var o refund.Object
				if resp.Decode(&o) == nil {
					bRefunds = append(bRefunds, o.TransactionID.String())
				}
			}
			bMu.Unlock()
			time.Sleep(200 * time.Millisecond) // a steady customer, well within the rate limit
		}
	}()

	answers := map[string]int{}
	note := func(resp rig.Response, want int, code string) {
		t.Helper()
		p, ok := resp.Problem()
		answers[fmt.Sprintf("%d %s", resp.Status, p.Code)]++
		if !ok || resp.Status != want || p.Code != code {
			t.Errorf("hostile request answered %d %s, want a problem+json %d %s", resp.Status, resp.Body, want, code)
		}
	}

	// 1. SSRF at creation: every range, every form, names resolving inside.
	for _, target := range ssrfTargets {
		note(must[rig.Response](t)(h.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": target})),
			http.StatusUnprocessableEntity, refund.CodeWebhookURLNotAllowed)
	}
	// 2. DNS rebinding: public at creation, the metadata service at delivery.
	dns.Set("rebind.example", rig.TestPublicAddr.String())
	resp := must[rig.Response](t)(h.Do(ctx, "POST", "/v1/webhook-endpoints", map[string]any{"url": "https://rebind.example/hooks"}))
	if resp.Status != http.StatusCreated {
		t.Fatalf("create the endpoint to rebind: %d %s", resp.Status, resp.Body)
	}
	dns.Set("rebind.example", "169.254.169.254")
	htx := must[rig.Transaction](t)(h.CreateTransaction(ctx, nil))
	hRefund := must[string](t)(h.Refund(ctx, htx, 1000))
	var events struct{ Data []server.EventObject }
	must[rig.Response](t)(h.Do(ctx, "GET", "/v1/events?refundId="+hRefund, nil)).Decode(&events)
	t.Cleanup(func() { stopDeliveries(r, hostile) })
	refusedAttempts := 0
	if err := rig.Poll(ctx, 30*time.Second, "refused delivery attempts", func(ctx context.Context) (bool, error) {
		refusedAttempts = 0
		for _, e := range events.Data {
			var d server.EventDetail
			if err := must[rig.Response](t)(h.Do(ctx, "GET", "/v1/events/"+e.ID.String(), nil)).Decode(&d); err != nil {
				return false, err
			}
			for _, a := range d.Attempts {
				if a.StatusCode != nil || !strings.Contains(a.Error, "resolves to a link-local address") {
					return false, fmt.Errorf("attempt %+v", a)
				}
				refusedAttempts++
			}
		}
		return refusedAttempts >= 4, nil
	}); err != nil {
		t.Fatal(err)
	}

	// 3. Oversized bodies, sent whole before reading: 413, received.
	big := bytes.Repeat([]byte("{"), 6<<20)
	post := "POST /v1/refunds HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + hostile.Key + "\r\nContent-Type: application/json\r\n"
	for _, wire := range [][]byte{append([]byte(fmt.Sprintf("%sContent-Length: %d\r\n\r\n", post, len(big))), big...),
		append([]byte(post+"Transfer-Encoding: chunked\r\n\r\n"), rig.Chunked(big)...)} {
		resp, body, err := rig.SendRaw(r.APIURL, wire)
		if err != nil {
			t.Fatalf("oversized body: %v", err)
		}
		note(rig.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, http.StatusRequestEntityTooLarge, server.CodeTooLarge)
	}

	// 4. Slow clients: headers and bodies trickled; the server drops them.
	var slow sync.WaitGroup
	dropped := make([]time.Duration, 6)
	for i := range dropped {
		slow.Add(1)
		go func() {
			defer slow.Done()
			head := "GET /v1/refunds HTTP/1.1\r\nHost: api\r\n"
			if i%2 == 1 {
				head = "POST /v1/refunds HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + hostile.Key + "\r\nContent-Length: 60000\r\n\r\n{"
			}
			d, err := rig.Trickle(r.APIURL, head, " ")
			if err != nil {
				t.Error(err)
			}
			dropped[i] = d
		}()
	}
	slow.Wait()
	for i, d := range dropped {
		if d == 0 || d > 4*time.Second {
			t.Errorf("slow client %d held its connection %s", i, d)
		}
	}

	// 5. A burst far over the rate limit.
	var burst sync.WaitGroup
	var mu sync.Mutex
	for range 250 {
		burst.Add(1)
		go func() {
			defer burst.Done()
			resp, err := h.Do(ctx, "GET", "/v1/refunds", nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if resp.Status == http.StatusOK {
				answers["200 (burst)"]++
				return
			}
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After")
			}
			note(resp, http.StatusTooManyRequests, server.CodeRateLimited)
		}()
	}
	burst.Wait()
	if answers["429 rate_limited"] == 0 || answers["200 (burst)"] < rate.Burst/2 {
		t.Errorf("burst answers %v: want most of the bucket's %d, then 429s", answers, rate.Burst)
	}

	bDone.Store(true)
	<-bLoop
	// Nothing was dialed outside loopback, and the policy allowed no internal address.
	dialed := []string{}
	dials.Range(func(k, v any) bool {
		addr := netip.MustParseAddrPort(k.(string)).Addr()
		dialed = append(dialed, k.(string))
		if v == nil && webhooks.Classify(addr) != "" {
			t.Errorf("the policy allowed a dial to %s", k)
		}
		return true
	})
	if len(dialed) != 1 || dialed[0] != "169.254.169.254:443" {
		t.Errorf("dials %v, want only the rebound name's, refused", dialed)
	}
	var list struct {
		Data []server.WebhookEndpointObject
	}
	must[rig.Response](t)(h.Do(ctx, "GET", "/v1/webhook-endpoints", nil)).Decode(&list)
	if len(list.Data) != 1 {
		t.Errorf("the hostile merchant has %d endpoints, want only the rebound one", len(list.Data))
	}
	bMu.Lock()
	defer bMu.Unlock()
	if len(bFailures) > 0 || len(bRefunds) < 10 || bSlowest > 5*time.Second {
		t.Errorf("the bystander: %d refunds, failures %v, slowest %s", len(bRefunds), bFailures, bSlowest)
	}
	if err := rig.WaitSettled(ctx, r.Store, 60*time.Second, hostile.ID, bystander.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range bRefunds {
		if o := must[refund.Object](t)(b.GetRefund(ctx, id)); o.Status != refund.StatusSucceeded {
			t.Errorf("bystander refund %s is %s", id, o.Status)
		}
	}

	keys := make([]string, 0, len(answers))
	for k := range answers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	counts := make([]string, 0, len(keys))
	for _, k := range keys {
		counts = append(counts, fmt.Sprintf("%d × %s", answers[k], k))
	}
	sc.inject("%d SSRF webhook URLs (every SPEC §12 range as IPv4, IPv6, IPv4-mapped/-compatible, NAT64, 6to4 literals and names resolving to them, plain http); a name rebound from public to 169.254.169.254 after creation; 6 MiB bodies (length and chunked) sent whole; 6 trickling clients (headers, bodies); a burst of 250 requests over a 50/s bucket of 100; meanwhile another merchant refunding and reading every 200 ms",
		len(ssrfTargets))
	sc.verified("answers to the attacker: %s, each a problem+json; %d delivery attempts to the rebound name refused before connecting; dials: only 169.254.169.254:443, refused by the policy; slow clients dropped after %s at most; the other merchant: %d refunds and reads, no failure, slowest %s",
		strings.Join(counts, ", "), refusedAttempts, maxOf(dropped).Round(100*time.Millisecond), len(bRefunds), bSlowest.Round(10*time.Millisecond))
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, hostile, bystander))
}

func maxOf(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// stopDeliveries ends a merchant's delivery workflows still retrying.
func stopDeliveries(r *rig.Rig, m rig.Merchant) {
	ctx := context.Background()
	rows, err := r.Store.Pool().Query(ctx, `SELECT e.id, w.id FROM refund_events e JOIN webhook_endpoints w ON w.merchant_id = e.merchant_id
		WHERE e.merchant_id = $1`, m.ID)
	if err != nil {
		return
	}
	defer rows.Close()
	for rows.Next() {
		var ev, ep uuid.UUID
		if rows.Scan(&ev, &ep) == nil {
			_ = r.Temporal.TerminateWorkflow(ctx, workflows.WebhookWorkflowID(ev, ep), "", "test cleanup")
		}
	}
}
