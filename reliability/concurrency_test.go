package reliability_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// race runs fn(0..n-1) on n goroutines released at the same instant.
func race(n int, fn func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

type attempt struct {
	kind   string // which request family
	amount int64
	units  int64
	resp   rig.Response
	err    error
}

// TestConcurrentOverRefund fires more refunds than there is money at one
// transaction, one line item and one gift-card redemption, all at once,
// mixed with whole-transaction refunds competing for the same balance.
func TestConcurrentOverRefund(t *testing.T) {
	sc := begin(t, "1. Concurrent over-refund")
	ctx := context.Background()
	r := startRig(t, rigOptions{})
	m := newMerchant(t, r)
	c := r.Client(m)

	plain := must[rig.Transaction](t)(c.CreateTransaction(ctx, map[string]any{"amount": 10000}))
	lines := must[rig.Transaction](t)(c.CreateTransaction(ctx, map[string]any{"provider": "paydesk", "amount": 10000,
		"lineItems": []map[string]any{{"id": "sku-1", "amount": 500, "quantity": 6}, {"id": "sku-2", "amount": 1000, "quantity": 2}}}))
	gift := must[rig.Transaction](t)(c.CreateTransaction(ctx, map[string]any{"provider": "orchestra", "currency": "USD",
		"amount": 10000, "giftCardRedemptions": []map[string]any{{"id": "gc-1", "amount": 3000}}}))

	var reqs []func() attempt
	add := func(n int, kind string, amount, units int64, body map[string]any) {
		for range n {
			reqs = append(reqs, func() attempt {
				resp, err := c.CreateRefund(ctx, body, "")
				return attempt{kind: kind, amount: amount, units: units, resp: resp, err: err}
			})
		}
	}
	// 40 × 300 of a 10000 transaction: exactly 33 fit.
	add(40, "plain", 300, 0, rig.RefundBody(plain, 300))
	// Line items: sku-1 has 6 units of 500, sku-2 2 of 1000, while 5 × 1000 whole-amount refunds take
	// the rest of the transaction: exactly everything fits.
	add(24, "sku-1", 500, 1, map[string]any{"originalTransactionId": lines.ID, "lineItems": []map[string]any{{"id": "sku-1", "quantity": 1}}})
	add(8, "sku-2", 1000, 1, map[string]any{"originalTransactionId": lines.ID, "lineItems": []map[string]any{{"id": "sku-2", "quantity": 1}}})
	add(5, "lines-plain", 1000, 0, rig.RefundBody(lines, 1000))
	// Gift card: a 3000 redemption and the rest of the transaction, 20 × 500 each.
	add(20, "gift", 500, 0, map[string]any{"originalTransactionId": gift.ID, "targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-1",
		"refundValue": map[string]any{"amount": 500, "currency": "USD"}})
	add(20, "gift-plain", 500, 0, rig.RefundBody(gift, 500))
	sc.inject("%d concurrent create-refund requests released at once on 3 transactions (one with 2 line items, one with a gift-card redemption)", len(reqs))

	results := make([]attempt, len(reqs))
	race(len(reqs), func(i int) { results[i] = reqs[i]() })

	accepted := map[string]int64{} // amount by kind
	units := map[string]int64{}
	var ids []string
	for _, a := range results {
		if a.err != nil {
			t.Fatalf("%s: %v", a.kind, a.err)
		}
		switch a.resp.Status {
		case http.StatusAccepted:
			var o refund.Object
			if err := a.resp.Decode(&o); err != nil {
				t.Fatal(err)
			}
			accepted[a.kind] += a.amount
			units[a.kind] += a.units
			ids = append(ids, o.TransactionID.String())
		case http.StatusUnprocessableEntity, http.StatusConflict:
			p, ok := a.resp.Problem()
			if !ok || (p.Code != refund.CodeAmountInsufficient && p.Code != refund.CodeFullyRefunded) {
				t.Fatalf("%s rejected with %d %s", a.kind, a.resp.Status, a.resp.Body)
			}
		default:
			t.Fatalf("%s: unexpected %d %s", a.kind, a.resp.Status, a.resp.Body)
		}
	}
	sc.refunds = len(ids)
	if accepted["plain"] != 9900 {
		t.Errorf("accepted %d of the 10000 transaction in 300s, want exactly 9900 (33 refunds)", accepted["plain"])
	}
	if units["sku-1"] != 6 || units["sku-2"] != 2 || accepted["lines-plain"] != 5000 {
		t.Errorf("line items: accepted sku-1 %d/6 and sku-2 %d/2 units, whole-amount %d/5000; want each exactly full",
			units["sku-1"], units["sku-2"], accepted["lines-plain"])
	}
	if accepted["gift"] > 3000 {
		t.Errorf("gift card redemption: accepted %d of 3000", accepted["gift"])
	}
	// Every request either fit or found the balance exhausted, so the gift-card transaction is exactly full.
	if sum := accepted["gift"] + accepted["gift-plain"]; sum != 10000 {
		t.Errorf("gift-card transaction: accepted %d, want exactly 10000", sum)
	}
	sc.verified("accepted: %d of 10000 in 300s; sku-1 %d/6 and sku-2 %d/2 units; gift card %d/3000, its transaction %d/10000",
		accepted["plain"], units["sku-1"], units["sku-2"], accepted["gift"], accepted["gift"]+accepted["gift-plain"])

	if err := rig.WaitSettled(ctx, r.Store, 60*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	for kind, tx := range map[string]rig.Transaction{"plain": plain, "lines": lines, "gift": gift} {
		want := map[string]int64{"plain": accepted["plain"], "lines": accepted["sku-1"] + accepted["sku-2"] + accepted["lines-plain"],
			"gift": accepted["gift"] + accepted["gift-plain"]}[kind]
		st := must[rig.TransactionState](t)(c.GetTransaction(ctx, tx.ID))
		if st.RefundedAmount != want || st.ReservedAmount != 0 {
			t.Errorf("%s transaction after settling: refunded %d reserved %d, want %d and 0", kind, st.RefundedAmount, st.ReservedAmount, want)
		}
	}
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}

// TestConcurrentIdempotencyKeys sends duplicates of one Idempotency-Key at
// once, the same key with two different bodies at once, and replays after
// the fact: one refund per key, never two.
func TestConcurrentIdempotencyKeys(t *testing.T) {
	sc := begin(t, "2. Concurrent idempotency-key duplicates")
	ctx := context.Background()
	r := startRig(t, rigOptions{})
	m := newMerchant(t, r)
	c := r.Client(m)
	tx := must[rig.Transaction](t)(c.CreateTransaction(ctx, map[string]any{"amount": 1_000_000}))

	type keyed struct {
		key  string
		body map[string]any
	}
	// 12 keys, each sent 8 times at once; key 0 also races a second body.
	var sends []keyed
	keys := make([]keyed, 12)
	for i := range keys {
		keys[i] = keyed{key: "dup-" + uuid.NewString(), body: rig.RefundBody(tx, int64(1000+100*i))}
		for range 8 {
			sends = append(sends, keys[i])
		}
	}
	other := rig.RefundBody(tx, 7777)
	for range 8 {
		sends = append(sends, keyed{key: keys[0].key, body: other})
	}
	sc.inject("%d concurrent POST /v1/refunds: 12 keys × 8 duplicates, one key also raced with a different body ×8", len(sends))
	resps := make([]rig.Response, len(sends))
	race(len(sends), func(i int) {
		var err error
		if resps[i], err = c.CreateRefund(ctx, sends[i].body, sends[i].key); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	idsByKey := map[string]map[string]bool{}
	codes := map[string]int{}
	for i, resp := range resps {
		switch resp.Status {
		case http.StatusAccepted:
			var o refund.Object
			if err := resp.Decode(&o); err != nil {
				t.Fatal(err)
			}
			if idsByKey[sends[i].key] == nil {
				idsByKey[sends[i].key] = map[string]bool{}
			}
			idsByKey[sends[i].key][o.TransactionID.String()] = true
			codes["202"]++
		case http.StatusConflict, http.StatusUnprocessableEntity:
			p, ok := resp.Problem()
			if !ok || (p.Code != server.CodeIdempotencyInFlight && p.Code != server.CodeIdempotencyMismatch) {
				t.Fatalf("unexpected %d %s", resp.Status, resp.Body)
			}
			if p.Code == server.CodeIdempotencyMismatch && sends[i].key != keys[0].key {
				t.Fatalf("mismatch on a key sent with one body: %s", resp.Body)
			}
			codes[p.Code]++
		default:
			t.Fatalf("unexpected %d %s", resp.Status, resp.Body)
		}
	}
	for _, k := range keys {
		if n := len(idsByKey[k.key]); n > 1 {
			t.Errorf("key %s answered with %d different refunds", k.key, n)
		}
		got, err := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, k.key)
		if err != nil {
			t.Fatalf("no refund for key %s: %v", k.key, err)
		}
		if ids := idsByKey[k.key]; len(ids) == 1 && !ids[got.ID.String()] {
			t.Errorf("key %s: answered %v, stored %s", k.key, ids, got.ID)
		}
	}
	refunds := must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID))
	if len(refunds) != len(keys) {
		t.Fatalf("%d refunds for %d keys", len(refunds), len(keys))
	}
	sc.refunds = len(refunds)

	// Same key, another body, after the fact: 422 and nothing written.
	before := len(refunds)
	resp := must[rig.Response](t)(c.CreateRefund(ctx, rig.RefundBody(tx, 4242), keys[1].key))
	if p, ok := resp.Problem(); !ok || resp.Status != http.StatusUnprocessableEntity || p.Code != server.CodeIdempotencyMismatch {
		t.Fatalf("same key, other body: %d %s", resp.Status, resp.Body)
	}
	if after := len(must[[]refund.Refund](t)(rig.Refunds(ctx, r.Store, m.ID))); after != before {
		t.Fatalf("the mismatched request wrote a refund: %d → %d", before, after)
	}

	if err := rig.WaitSettled(ctx, r.Store, 60*time.Second, m.ID); err != nil {
		t.Fatal(err)
	}
	// Replays after completion answer the original 202 with the same refund.
	for _, k := range keys {
		if won, _ := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, k.key); won.Amount == 7777 {
			k.body = other // the raced second body won key 0
		}
		resp := must[rig.Response](t)(c.CreateRefund(ctx, k.body, k.key))
		var o refund.Object
		if resp.Status != http.StatusAccepted || resp.Header.Get("Idempotent-Replayed") != "true" || resp.Decode(&o) != nil {
			t.Fatalf("replay of %s: %d %v %s", k.key, resp.Status, resp.Header, resp.Body)
		}
		if want, _ := r.Store.GetRefundByIdempotencyKey(ctx, m.ID, k.key); o.TransactionID != want.ID {
			t.Fatalf("replay of %s answered refund %s, want %s", k.key, o.TransactionID, want.ID)
		}
	}
	sc.verified("one refund per key (%d keys, %d refunds); answers: %d × 202, %d × 409 in_progress, %d × 422 mismatch; late mismatch 422 wrote nothing; replays return the same refund",
		len(keys), len(refunds), codes["202"], codes[server.CodeIdempotencyInFlight], codes[server.CodeIdempotencyMismatch])
	sc.invariants(ctx, r.Store.Pool(), fullCheck(r, nil, m))
}
