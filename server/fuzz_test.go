package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/refunds"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/store"
)

// startCounter is the Temporal gateway of the fuzzed API: it counts refund
// workflow starts instead of making them, so a rejected request can be
// shown to start nothing and the fuzzer leaves no workflows behind.
type startCounter struct {
	refunds.Gateway
	starts atomic.Int64
}

func (s *startCounter) StartRefund(context.Context, refund.Refund) error {
	s.starts.Add(1)
	return nil
}

// fuzzFixture is one merchant's data the fuzzed bodies refer to through
// placeholders: {{session}}, {{tx}} (10000 EUR on cardpay, line item sku-1
// 500 × 4, gift card gc-1 3000), {{authorized}}, {{nodest}} (momo without a
// payout destination) and {{other_tx}} / {{other_session}} (another merchant's).
type fuzzFixture struct {
	st       *store.Store
	merchant uuid.UUID
	key      string
	ids      map[string]string
}

func (f *fuzzFixture) expand(body []byte) []byte {
	for name, id := range f.ids {
		body = bytes.ReplaceAll(body, []byte("{{"+name+"}}"), []byte(id))
	}
	return body
}

type fuzzCounts struct{ refunds, ledger, events int }

func (f *fuzzFixture) counts(t *testing.T) fuzzCounts {
	t.Helper()
	var c fuzzCounts
	err := f.st.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM refunds WHERE merchant_id = $1),
		(SELECT count(*) FROM ledger_entries l JOIN transactions t ON t.id = l.transaction_id WHERE t.merchant_id = $1),
		(SELECT count(*) FROM refund_events WHERE merchant_id = $1)`, f.merchant).Scan(&c.refunds, &c.ledger, &c.events)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	ctx := context.Background()
	st := testenv.Get(tb).Store
	mk := func() (uuid.UUID, string) {
		m, err := st.CreateMerchant(ctx, "fuzz-"+uuid.NewString()[:8], nil)
		if err != nil {
			tb.Fatal(err)
		}
		key, err := st.CreateAPIKey(ctx, m.ID, "fuzz", refund.MerchantScopes)
		if err != nil {
			tb.Fatal(err)
		}
		return m.ID, key
	}
	f := &fuzzFixture{st: st, ids: map[string]string{}}
	f.merchant, f.key = mk()
	other, _ := mk()
	tx := func(merchant uuid.UUID, session uuid.UUID, in refund.NewTransaction) string {
		in.MerchantID, in.SessionID = merchant, session
		if in.Provider == "" {
			in.Provider, in.Method, in.Currency, in.Status = "cardpay", "card", "EUR", refund.TxCaptured
		}
		in.ProviderReference = "pay_" + uuid.NewString()[:8]
		t, _, err := st.CreateTransaction(ctx, in)
		if err != nil {
			tb.Fatal(err)
		}
		return t.ID.String()
	}
	session := func(merchant uuid.UUID) uuid.UUID {
		id, err := st.CreateSession(ctx, merchant, "")
		if err != nil {
			tb.Fatal(err)
		}
		return id
	}
	s := session(f.merchant)
	f.ids["session"] = s.String()
	f.ids["tx"] = tx(f.merchant, s, refund.NewTransaction{Amount: 10000,
		LineItems:           []refund.LineItem{{ID: "sku-1", Amount: 500, Quantity: 4}},
		GiftCardRedemptions: []refund.GiftCardRedemption{{ID: "gc-1", Amount: 3000}}})
	f.ids["authorized"] = tx(f.merchant, session(f.merchant), refund.NewTransaction{Provider: "cardpay", Method: "card", Currency: "EUR",
		Status: refund.TxAuthorized, Amount: 5000})
	f.ids["nodest"] = tx(f.merchant, session(f.merchant), refund.NewTransaction{Provider: "momo", Method: "mobile_money", Currency: "KES",
		Status: refund.TxCaptured, Amount: 5000})
	otherSession := session(other)
	f.ids["other_session"] = otherSession.String()
	f.ids["other_tx"] = tx(other, otherSession, refund.NewTransaction{Amount: 10000})
	return f
}

// FuzzCreateRefund throws malformed, hostile and borderline bodies at the
// real create-refund handler over HTTP. Every answer is 202 or a 4xx
// application/problem+json document, never a 5xx; a rejected request writes
// no refund, ledger or event row and starts no workflow; an accepted one
// writes exactly one of each. The seed corpus is in
// testdata/fuzz/FuzzCreateRefund; plain `go test` runs it.
func FuzzCreateRefund(f *testing.F) {
	env := testenv.Get(f)
	fx := newFuzzFixture(f)
	starts := &startCounter{Gateway: refunds.TemporalGateway{Client: env.Temporal, TaskQueue: env.TaskQueue + "-fuzz"}}
	reg, err := providers.NewRegistry(providers.SandboxConfigs("http://127.0.0.1:9"), &http.Client{Timeout: time.Second})
	if err != nil {
		f.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	svc := refunds.New(env.Store, reg, starts, quiet, refunds.Hooks{})
	srv := httptest.NewServer(server.New(server.Deps{Service: svc, Logger: quiet}).Handler())
	f.Cleanup(srv.Close)

	for _, seed := range []string{
		`{"originalTransactionId":"{{tx}}","refundValue":{"amount":100,"currency":"EUR"}}`,
		`{"sessionId":"{{session}}"}`,
		`{"originalTransactionId":"{{tx}}","lineItems":[{"id":"sku-1","quantity":1}]}`,
		`{"originalTransactionId":"{{tx}}","targetType":"GIFT_CARD_REDEMPTION","targetId":"gc-1","refundValue":{"amount":10,"currency":"EUR"}}`,
		`{"originalTransactionId":"{{other_tx}}"}`,
	} {
		f.Add([]byte(seed))
	}

	var mu sync.Mutex // one request at a time: the row counts are per merchant
	statuses := map[int]int{}
	started := time.Now()
	f.Cleanup(func() { reportFuzz(f, statuses, time.Since(started)) })
	f.Fuzz(func(t *testing.T, body []byte) {
		mu.Lock()
		defer mu.Unlock()
		body = fx.expand(body)
		before, startsBefore := fx.counts(t), starts.starts.Load()

		req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/refunds", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+fx.key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", uuid.NewString())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		after, startsAfter := fx.counts(t), starts.starts.Load()
		statuses[resp.StatusCode]++

		if resp.StatusCode == http.StatusAccepted {
			var o refund.Object
			if err := json.Unmarshal(out, &o); err != nil || o.Status != refund.StatusPending || o.RefundValue.Amount < 1 ||
				o.RefundValue.Amount > 99_999_999 {
				t.Fatalf("202 with body %s (%v)", out, err)
			}
			want := fuzzCounts{before.refunds + 1, before.ledger + 1, before.events + 1}
			if after != want || startsAfter != startsBefore+1 {
				t.Fatalf("accepted request wrote %+v → %+v and started %d workflows, want one refund, one RESERVE, one event, one start",
					before, after, startsAfter-startsBefore)
			}
			// Give the balance back so later inputs can still be accepted.
			if _, _, err := fx.st.Finalize(context.Background(), o.TransactionID, refund.Outcome{Status: refund.StatusCanceled,
				FailureCode: "canceled", FailureMessage: "fuzz cleanup"}); err != nil {
				t.Fatal(err)
			}
			return
		}
		if resp.StatusCode < 400 || resp.StatusCode > 499 {
			t.Fatalf("status %d for body %q: %s", resp.StatusCode, body, out)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("status %d with Content-Type %q for body %q", resp.StatusCode, ct, body)
		}
		var p server.Problem
		if err := json.Unmarshal(out, &p); err != nil || p.Code == "" || p.Status != resp.StatusCode || p.Title == "" ||
			!strings.HasPrefix(p.Type, "https://") {
			t.Fatalf("status %d with a malformed problem %s (%v) for body %q", resp.StatusCode, out, err, body)
		}
		if after != before || startsAfter != startsBefore {
			t.Fatalf("rejected request (%d %s) left rows %+v → %+v and %d workflow starts for body %q",
				resp.StatusCode, p.Code, before, after, startsAfter-startsBefore, body)
		}
	})
}

// reportFuzz adds the seed-corpus run to the reliability report (see
// docs/reliability.md) when BACKFLOW_RELIABILITY_REPORT is set; fuzzing
// runs (-fuzz) are not reported.
func reportFuzz(f *testing.F, statuses map[int]int, d time.Duration) {
	path := os.Getenv(rig.ReportEnv)
	if path == "" || (flag.Lookup("test.fuzz") != nil && flag.Lookup("test.fuzz").Value.String() != "") {
		return
	}
	codes := make([]int, 0, len(statuses))
	total := 0
	for c, n := range statuses {
		codes = append(codes, c)
		total += n
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d × %d", statuses[c], c))
	}
	result := "pass"
	if f.Failed() {
		result = "FAIL"
	}
	row := rig.Row{Scenario: "9. Bad input (FuzzCreateRefund seed corpus)",
		Injected: fmt.Sprintf("%d bodies: malformed/truncated/trailing JSON, huge, negative, fractional and string amounts, bad and foreign UUIDs, unknown and duplicate fields, a 70 KB body, NUL, lone surrogates, invalid UTF-8, RTL and emoji text", total),
		Refunds:  statuses[http.StatusAccepted],
		Checked:  "answers " + strings.Join(parts, ", ") + "; every rejection a problem+json 4xx with no refund, ledger or event row and no workflow start; every 202 exactly one of each",
		Result:   result, Duration: d, At: time.Now().UTC()}
	if err := rig.AppendRow(path, row); err != nil {
		f.Errorf("report: %v", err)
	}
}
