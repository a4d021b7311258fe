package integration

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/workflowservice/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
	"github.com/backflow/backflow/workflows"
)

// paths are the two refund paths: a provider refund and a payout refund.
var paths = []struct {
	name   string
	fields map[string]any
	method refund.Method
}{
	{"cardpay", map[string]any{"provider": "cardpay", "method": "card"}, refund.MethodProviderRefund},
	{"momo", map[string]any{"provider": "momo", "method": "mobile_money", "currency": "KES",
		"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "MPESA"}}, refund.MethodPayoutRefund},
}

// otherProviders are the remaining sandbox connectors, each on its own path.
var otherProviders = []struct {
	name   string
	fields map[string]any
	method refund.Method
}{
	{"paydesk", map[string]any{"provider": "paydesk", "method": "card"}, refund.MethodProviderRefund},
	{"orchestra", map[string]any{"provider": "orchestra", "method": "card", "currency": "USD"}, refund.MethodProviderRefund},
	{"banktransfer", map[string]any{"provider": "banktransfer", "method": "bank_transfer", "payoutDestination": map[string]any{
		"type": "bank_account", "accountHolder": "Ada Lovelace", "iban": "DE89370400440532013000", "country": "DE"}}, refund.MethodPayoutRefund},
}

func TestSandboxOutcomesOnBothPaths(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	outcomes := []struct {
		suffix  int
		name    string
		status  refund.Status
		settled bool
	}{
		{0, "success", refund.StatusSucceeded, true},
		{1, "declined", refund.StatusDeclined, false},
		{2, "transient 5xx", refund.StatusSucceeded, true},
		{3, "answer lost", refund.StatusSucceeded, true},
		{4, "async success", refund.StatusSucceeded, true},
		{5, "async failure", refund.StatusFailed, false},
		{7, "429 retry-after", refund.StatusSucceeded, true},
		{8, "reversed after success", refund.StatusReversed, false},
		{9, "status checks answer 401 for a while", refund.StatusSucceeded, true},
		{10, "answer lost then 409 on retries", refund.StatusSucceeded, true},
	}
	for _, p := range append(paths, otherProviders...) {
		for _, o := range outcomes {
			t.Run(p.name+"/"+o.name, func(t *testing.T) {
				t.Parallel()
				amount := 1000 + o.suffix
				id, txID := refundOn(t, s, p.fields, amount)
				got := s.WaitRefund(t, id, 30*time.Second, o.status)
				if got.Method != p.method {
					t.Fatalf("status %s method %s, want %s %s (failure %+v)", got.Status, got.Method, o.status, p.method, got.Failure)
				}
				if o.status != refund.StatusSucceeded && (got.Failure == nil || got.Failure.Code == "") {
					t.Fatalf("failed refund without failure code: %+v", got)
				}
				if n := s.Sandbox.Count(id); n > 1 || ((o.settled || o.status == refund.StatusReversed) && n != 1) {
					t.Fatalf("sandbox holds %d refunds for the key", n)
				}
				var tx server.TransactionObject
				s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
				wantRefunded := int64(0)
				if o.settled {
					wantRefunded = int64(amount)
				}
				if tx.RefundedAmount != wantRefunded || tx.ReservedAmount != 0 {
					t.Fatalf("balance after %s: refunded %d reserved %d", o.name, tx.RefundedAmount, tx.ReservedAmount)
				}
				if o.status == refund.StatusReversed {
					if kinds := ledgerKinds(t, s, id); kinds != "RESERVE,SETTLE,REVERSE" {
						t.Fatalf("ledger %s, want RESERVE,SETTLE,REVERSE", kinds)
					}
				} else {
					assertLedger(t, s, id, o.settled)
				}
				if p.name == "cardpay" || p.name == "momo" {
					recordHistory(t, s, id, p.name+"_"+fmt.Sprintf("%02d", o.suffix))
				}
			})
		}
	}
}

// TestNeverCompletesIsFlaggedStuck: an unknown outcome is never released; it
// stays PROCESSING, flagged stuck in Postgres and in Temporal's visibility.
func TestNeverCompletesIsFlaggedStuck(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	for _, p := range append(paths, otherProviders...) {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			id, txID := refundOn(t, s, p.fields, 1006)
			waitStuck(t, s, id)
			got := s.WaitRefund(t, id, time.Second, refund.StatusProcessing)
			if got.CompletedAt != nil {
				t.Fatalf("stuck refund completed: %+v", got)
			}
			var tx server.TransactionObject
			s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
			if tx.ReservedAmount != 1006 {
				t.Fatalf("stuck refund's reservation was released: %+v", tx)
			}
			st := queryStatus(t, s, id)
			if !st.Stuck || st.Status != refund.StatusProcessing {
				t.Fatalf("query = %+v", st)
			}
			// Ops find it by search attributes, as in the README's ops section.
			query := fmt.Sprintf(`BackflowStuck=true AND BackflowProvider=%q AND BackflowMerchantId=%q`, p.name, s.MerchantID)
			deadline := time.Now().Add(15 * time.Second)
			for {
				resp, err := s.Temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.Executions) == 1 && resp.Executions[0].Execution.WorkflowId == workflows.RefundWorkflowID(uuid.MustParse(id)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("visibility query %q found %d executions", query, len(resp.Executions))
				}
				time.Sleep(200 * time.Millisecond)
			}
			// The same query through the Temporal CLI, as ops run it.
			cli, err := testenv.RepoBin("temporal", "TEMPORAL_CLI_BIN", "run `make tools`")
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(cli, "workflow", "list", "--address", os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS"),
				"--query", query, "--output", "json").CombinedOutput()
			if err != nil || !strings.Contains(string(out), workflows.RefundWorkflowID(uuid.MustParse(id))) {
				t.Fatalf("temporal workflow list --query %q: %v\n%s", query, err, out)
			}
			if err := s.Temporal.TerminateWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", "test cleanup"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOpsRetryRedrivesStuckRefund: the provider is down past every retry, the
// refund waits as stuck; once the provider is back, the retry signal
// completes it without waiting for the slow timer.
func TestOpsRetryRedrivesStuckRefund(t *testing.T) {
	var mu sync.Mutex
	down := true
	policy := rig.StackPolicy()
	policy.StuckRetryEvery = time.Hour
	s := rig.StartStack(t, rig.StackOptions{Policy: &policy, ProviderProxy: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			isDown := down
			mu.Unlock()
			if isDown {
				http.Error(w, "provider outage", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	id, _ := refundOn(t, s, paths[0].fields, 1500)
	waitStuck(t, s, id)
	if n := s.Sandbox.Count(id); n != 0 {
		t.Fatalf("provider holds %d refunds during the outage", n)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	err := s.Temporal.SignalWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", workflows.SignalRetry, "ops-test")
	if err != nil {
		t.Fatal(err)
	}
	got := s.WaitRefund(t, id, 20*time.Second, refund.StatusSucceeded)
	if got.Attempts <= int(policy.SubmitAttempts) {
		t.Fatalf("attempts %d, want more than the %d of the first round", got.Attempts, policy.SubmitAttempts)
	}
	var stuck bool
	if err := s.Pool.QueryRow(context.Background(), `SELECT stuck FROM refunds WHERE id = $1`, id).Scan(&stuck); err != nil || stuck {
		t.Fatalf("stuck flag not cleared: %v %v", stuck, err)
	}
	if n := s.Sandbox.Count(id); n != 1 {
		t.Fatalf("provider holds %d refunds, want 1", n)
	}
	recordHistory(t, s, id, "cardpay_stuck_retried")
}

// refund registers a captured transaction and refunds amount of it.
func refundOn(t *testing.T, s *rig.Stack, fields map[string]any, amount int) (string, string) {
	t.Helper()
	f := map[string]any{"amount": 10000}
	for k, v := range fields {
		f[k] = v
	}
	_, txID := s.Transaction(t, f)
	currency, _ := f["currency"].(string)
	if currency == "" {
		currency = "EUR"
	}
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"refundValue": map[string]any{"amount": amount, "currency": currency}}, "Idempotency-Key", uuid.NewString()), http.StatusAccepted)
	var o refund.Object
	r.JSON(t, &o)
	return o.TransactionID.String(), txID
}

func waitStuck(t *testing.T, s *rig.Stack, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var stuck bool
		if err := s.Pool.QueryRow(context.Background(), `SELECT stuck FROM refunds WHERE id = $1`, id).Scan(&stuck); err != nil {
			t.Fatal(err)
		}
		if stuck {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("refund %s never flagged stuck", id)
}

func queryStatus(t *testing.T, s *rig.Stack, id string) workflows.RefundState {
	t.Helper()
	v, err := s.Temporal.QueryWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", workflows.QueryStatus)
	if err != nil {
		t.Fatal(err)
	}
	var st workflows.RefundState
	if err := v.Get(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// assertLedger checks one RESERVE and exactly one SETTLE or RELEASE.
func assertLedger(t *testing.T, s *rig.Stack, id string, settled bool) {
	t.Helper()
	entries, err := s.Store.ListLedger(context.Background(), uuid.MustParse(id))
	if err != nil {
		t.Fatal(err)
	}
	want := "RELEASE"
	if settled {
		want = "SETTLE"
	}
	if len(entries) != 2 || entries[0].Kind != "RESERVE" || entries[1].Kind != want {
		t.Fatalf("ledger = %+v, want RESERVE then %s", entries, want)
	}
}

// recordHistory writes the workflow's history for the replay test when
// BACKFLOW_RECORD_HISTORIES is set (see workflows/replay_test.go).
func recordHistory(t *testing.T, s *rig.Stack, id, name string) {
	t.Helper()
	if os.Getenv("BACKFLOW_RECORD_HISTORIES") == "" {
		return
	}
	iter := s.Temporal.GetWorkflowHistory(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", false, 0)
	var h historypb.History
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: " "}.Marshal(&h)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "workflows", "testdata", "refund_"+name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustUUID(t *testing.T, s string) uuid.UUID {
	t.Helper()
	id, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGiftCardRefundThroughOrchestra refunds to a gift-card redemption end
// to end; the target reaches the provider and the redemption's balance moves.
func TestGiftCardRefundThroughOrchestra(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, map[string]any{"provider": "orchestra", "currency": "USD", "amount": 9000,
		"giftCardRedemptions": []map[string]any{{"id": "gc-7", "amount": 4000}}})
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID,
		"targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-7"}), http.StatusAccepted)
	var o refund.Object
	r.JSON(t, &o)
	if o.RefundValue.Amount != 4000 || o.TargetID != "gc-7" {
		t.Fatalf("gift card refund = %+v", o)
	}
	s.WaitRefund(t, o.TransactionID.String(), 20*time.Second, refund.StatusSucceeded)
	var tx server.TransactionObject
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if g := tx.GiftCardRedemptions[0]; g.RefundedAmount != 4000 || g.ReservedAmount != 0 || tx.RefundedAmount != 4000 {
		t.Fatalf("after gift card refund: %+v", tx)
	}
	r = s.Do(t, "POST", "/v1/refunds", map[string]any{"originalTransactionId": txID, "targetType": "GIFT_CARD_REDEMPTION", "targetId": "gc-7"})
	if r.Status != http.StatusConflict {
		t.Fatalf("second gift card refund: %d %s", r.Status, r.Body)
	}
}
