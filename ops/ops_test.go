package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/ops"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMain(m *testing.M) { testenv.Main(m) }

const waitFor = 30 * time.Second

// cli runs `backflow ops args...` in process against the stack's API with its ops key.
func cli(t *testing.T, s *rig.Stack, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := ops.Run(context.Background(), args, ops.Options{URL: s.APIURL, Key: s.OpsKey, Stdout: &out})
	return out.String(), err
}

// mustCLI runs a CLI command that must succeed.
func mustCLI(t *testing.T, s *rig.Stack, args ...string) string {
	t.Helper()
	out, err := cli(t, s, args...)
	if err != nil {
		t.Fatalf("backflow ops %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// cliJSON runs a CLI command with --json and decodes its output.
func cliJSON(t *testing.T, s *rig.Stack, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, s, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
}

// apiError asserts err is the API's problem with status and code.
func apiError(t *testing.T, err error, status int, code string) *ops.APIError {
	t.Helper()
	var apiErr *ops.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("error = %v, want an API problem %d %s", err, status, code)
	}
	if apiErr.Status != status || apiErr.Code != code {
		t.Fatalf("problem = %d %s (%s), want %d %s", apiErr.Status, apiErr.Code, apiErr.Detail, status, code)
	}
	return apiErr
}

// createRefund creates a refund of amount on a fresh 10000 EUR cardpay transaction.
func createRefund(t *testing.T, s *rig.Stack, amount int64) string {
	t.Helper()
	sessionID, _ := s.Transaction(t, map[string]any{"amount": 10000})
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds", map[string]any{
		"sessionId": sessionID, "refundValue": map[string]any{"amount": amount, "currency": "EUR"},
		"reason": "customer asked", "description": "ops test",
	}), http.StatusAccepted)
	var created refund.Object
	r.JSON(t, &created)
	return created.TransactionID.String()
}

// terminateOnCleanup ends a refund workflow a test leaves running (stuck,
// awaiting approval) so it does not linger on the shared dev server.
func terminateOnCleanup(t *testing.T, s *rig.Stack, refundID string) {
	t.Cleanup(func() {
		_ = s.Temporal.TerminateWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(refundID)), "", "test cleanup")
	})
}

// eventually polls check until it returns nil or the deadline passes.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, waitFor, err)
}

// showUntil polls `show --json` until cond holds and returns that view.
func showUntil(t *testing.T, s *rig.Stack, id, what string, cond func(ops.RefundDetail) bool) ops.RefundDetail {
	t.Helper()
	var d ops.RefundDetail
	eventually(t, what, func() error {
		d = ops.RefundDetail{}
		cliJSON(t, s, &d, "show", id)
		if cond(d) {
			return nil
		}
		st := "no live status"
		if d.Workflow.Status != nil {
			st = d.Workflow.Status.Step
		}
		return fmt.Errorf("refund %s, workflow %s, step %s", d.Refund.Status, d.Workflow.ExecutionStatus, st)
	})
	return d
}

func awaitingApproval(d ops.RefundDetail) bool {
	return d.Workflow.Status != nil && d.Workflow.Status.Step == workflows.StepAwaitingApproval
}

func closed(d ops.RefundDetail) bool {
	return d.Workflow.ExecutionStatus == "Completed" && d.Workflow.Status != nil && d.Workflow.Status.Step == workflows.StepDone
}

// audit returns the refund's audit entries, oldest first, with their details decoded.
func audit(t *testing.T, s *rig.Stack, refundID string) []auditRow {
	t.Helper()
	var page ops.AuditPage
	cliJSON(t, s, &page, "audit", "--refund", refundID)
	rows := make([]auditRow, 0, len(page.Data))
	for i := len(page.Data) - 1; i >= 0; i-- {
		e := page.Data[i]
		row := auditRow{Entry: e}
		if err := json.Unmarshal(e.Detail, &row.Detail); err != nil {
			t.Fatalf("audit detail %s: %v", e.Detail, err)
		}
		rows = append(rows, row)
	}
	return rows
}

type auditRow struct {
	Entry  refund.AuditEntry
	Detail map[string]any
}

func assertAudit(t *testing.T, rows []auditRow, want ...string) {
	t.Helper()
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s %v %v %v", r.Entry.Action, r.Detail["outcome"], r.Detail["status"], r.Detail["code"]))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

var (
	uuidPattern = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timePattern = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z`)
)

// normalize replaces the volatile parts of CLI output by stable values: ids
// and timestamps by ones of the same width, so the table alignment in the
// golden file is the real one, and literals (the provider's reference, at
// line ends) by their names.
func normalize(out string, literals map[string]string) string {
	for lit, name := range literals {
		if lit != "" {
			out = strings.ReplaceAll(out, lit, name)
		}
	}
	ids := map[string]string{}
	out = uuidPattern.ReplaceAllStringFunc(out, func(id string) string {
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("00000000-0000-0000-0000-%012d", len(ids)+1)
		}
		return ids[id]
	})
	return timePattern.ReplaceAllString(out, "2026-01-01T00:00:00Z")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if got != string(want) {
		t.Fatalf("output differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestShowSucceededRefund(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	id := createRefund(t, s, 2500)
	s.WaitRefund(t, id, waitFor, refund.StatusSucceeded)
	d := showUntil(t, s, id, "workflow closed", closed)

	if d.Refund.MerchantID != s.MerchantID || d.Refund.WorkflowID != "refund-"+id || d.Refund.Stuck {
		t.Fatalf("refund = %+v", d.Refund)
	}
	if len(d.Ledger) != 2 || d.Ledger[0].Kind != "RESERVE" || d.Ledger[1].Kind != "SETTLE" || d.Ledger[1].Amount != 2500 {
		t.Fatalf("ledger = %+v", d.Ledger)
	}
	if len(d.Events) != 2 || d.Events[0].Type != refund.EventRefundCreated || d.Events[1].Type != refund.EventRefundSucceeded ||
		d.Events[1].Sequence != 2 {
		t.Fatalf("events = %+v", d.Events)
	}
	st := d.Workflow.Status
	if st.Status != refund.StatusSucceeded || st.Attempts != 1 || st.ProviderReference != d.Refund.ProviderReference {
		t.Fatalf("live status = %+v", st)
	}

	out := mustCLI(t, s, "show", id)
	golden(t, "show_succeeded.golden", normalize(out, map[string]string{d.Refund.ProviderReference: "<provider-reference>"}))

	// list finds it with every filter, as a table and as JSON.
	table := mustCLI(t, s, "list", "--status", "succeeded", "--provider", "cardpay", "--merchant", s.MerchantID.String())
	if !strings.Contains(table, id) || !strings.Contains(table, "25.00 EUR") || !strings.HasPrefix(table, "REFUND ") {
		t.Fatalf("list table:\n%s", table)
	}
	var page ops.RefundPage
	cliJSON(t, s, &page, "list", "--merchant", s.MerchantID.String())
	if len(page.Data) != 1 || page.Data[0].TransactionID.String() != id || page.Data[0].Status != refund.StatusSucceeded {
		t.Fatalf("list --json = %+v", page)
	}
	if out := mustCLI(t, s, "list", "--merchant", s.MerchantID.String(), "--provider", "momo"); strings.TrimSpace(out) != "no refunds match" {
		t.Fatalf("empty list = %q", out)
	}
}

func TestStuckRefundRetry(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	id := createRefund(t, s, 1006) // the sandbox never completes it
	terminateOnCleanup(t, s, id)

	// Past the 3 s SLA the refund is flagged stuck, and list --stuck shows it.
	eventually(t, "list --stuck shows the refund", func() error {
		var page ops.RefundPage
		cliJSON(t, s, &page, "list", "--stuck", "--merchant", s.MerchantID.String())
		if len(page.Data) == 1 && page.Data[0].TransactionID.String() == id && page.Data[0].Stuck {
			return nil
		}
		return fmt.Errorf("list --stuck = %+v", page.Data)
	})
	table := mustCLI(t, s, "list", "--stuck")
	if !strings.Contains(table, id) || !regexp.MustCompile(id+`\s+PROCESSING\s+provider\.sla\s+cardpay`).MatchString(table) {
		t.Fatalf("list --stuck table:\n%s", table)
	}
	d := showUntil(t, s, id, "live status stuck", func(d ops.RefundDetail) bool {
		return d.Workflow.Status != nil && d.Workflow.Status.Stuck
	})
	if d.Workflow.ExecutionStatus != "Running" || d.Refund.Status != refund.StatusProcessing {
		t.Fatalf("stuck refund view = %+v / %+v", d.Refund, d.Workflow)
	}
	human := mustCLI(t, s, "show", id)
	for _, want := range []string{"PROCESSING (stuck: provider.sla)", "Live status", "stuck", "RESERVE", "refund.created"} {
		if !strings.Contains(human, want) {
			t.Fatalf("show lacks %q:\n%s", want, human)
		}
	}

	out := mustCLI(t, s, "retry", id)
	if !strings.Contains(out, "retry signal sent") || !strings.Contains(out, "PROCESSING, stuck") {
		t.Fatalf("retry output:\n%s", out)
	}
	// The workflow records the ops retry in its timeline and re-checks the provider.
	showUntil(t, s, id, "timeline records the retry", func(d ops.RefundDetail) bool {
		if d.Workflow.Status == nil {
			return false
		}
		for _, e := range d.Workflow.Status.Timeline {
			if strings.HasPrefix(e.Note, "retry requested by ops:") {
				return true
			}
		}
		return false
	})
	rows := audit(t, s, id)
	assertAudit(t, rows, "retry succeeded 202 <nil>")
	if rows[0].Entry.ActorKey == uuid.Nil || rows[0].Detail["merchantId"] != s.MerchantID.String() ||
		rows[0].Detail["workflowId"] != "refund-"+id || rows[0].Detail["statusBefore"] != string(refund.StatusProcessing) {
		t.Fatalf("audit entry = %+v %v", rows[0].Entry, rows[0].Detail)
	}
	if rows[0].Detail["requestId"] == "" {
		t.Fatalf("audit entry lacks the request id: %v", rows[0].Detail)
	}
}

// TestResolveUnknownOutcome: on-call learned a stuck refund's outcome at the
// provider and records it; the workflow releases the refund on it.
func TestResolveUnknownOutcome(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	id := createRefund(t, s, 1006) // the sandbox never completes it
	s.WaitRefund(t, id, waitFor, refund.StatusProcessing)
	// PROCESSING is written before the provider call; a resolution is
	// taken once the workflow waits for the outcome.
	waitStep(t, s, id, workflows.StepAwaitingOutcome)

	_, err := cli(t, s, "resolve", id, "--status", "FAILED")
	if err == nil || !strings.Contains(err.Error(), "--reason is required") {
		t.Fatalf("resolve without a reason: %v", err)
	}
	_, err = cli(t, s, "resolve", id, "--status", "CANCELED", "--reason", "x")
	apiError(t, err, http.StatusUnprocessableEntity, refund.CodeValidation)

	out := mustCLI(t, s, "resolve", id, "--status", "FAILED", "--reason", "cardpay support: no such refund")
	if !strings.Contains(out, "resolution accepted") {
		t.Fatalf("resolve output:\n%s", out)
	}
	got := s.WaitRefund(t, id, waitFor, refund.StatusFailed)
	if got.Failure == nil || got.Failure.Code != "ops.resolved" || !strings.Contains(got.Failure.Message, "cardpay support: no such refund") {
		t.Fatalf("resolved refund = %+v", got.Failure)
	}
	var tx struct{ ReservedAmount int64 }
	rig.Must(t, s.Do(t, "GET", "/v1/transactions/"+got.OriginalTransactionID.String(), nil), http.StatusOK).JSON(t, &tx)
	if tx.ReservedAmount != 0 {
		t.Fatalf("reserved %d after the resolution released the refund", tx.ReservedAmount)
	}
	_, err = cli(t, s, "resolve", id, "--status", "SUCCEEDED", "--reason", "changed my mind")
	apiError(t, err, http.StatusConflict, refund.CodeNotResolvable)
	assertAudit(t, audit(t, s, id), "resolve failed 422 validation.failed", "resolve succeeded 202 <nil>",
		"resolve failed 409 refund.not_resolvable")
}

func TestRetryRefusals(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	id := createRefund(t, s, 1500)
	s.WaitRefund(t, id, waitFor, refund.StatusSucceeded)

	_, err := cli(t, s, "retry", id)
	apiError(t, err, http.StatusConflict, refund.CodeNotRetryable)
	if !strings.Contains(err.Error(), "SUCCEEDED") {
		t.Fatalf("error does not say why: %v", err)
	}
	assertAudit(t, audit(t, s, id), "retry failed 409 refund.not_retryable")

	unknown := uuid.Must(uuid.NewV7()).String()
	_, err = cli(t, s, "retry", unknown)
	apiError(t, err, http.StatusNotFound, refund.CodeRefundNotFound)
	assertAudit(t, audit(t, s, unknown), "retry failed 404 refund.not_found")

	// Bad arguments never reach the API.
	if _, err := cli(t, s, "retry", "not-a-uuid"); err == nil || !strings.Contains(err.Error(), "not a valid refund id") {
		t.Fatalf("bad id: %v", err)
	}
	if _, err := cli(t, s, "retry"); err == nil || !strings.Contains(err.Error(), "want exactly one refund id") {
		t.Fatalf("missing id: %v", err)
	}
}

func TestApproveAndReject(t *testing.T) {
	threshold := int64(5000)
	s := rig.StartStack(t, rig.StackOptions{ApprovalThreshold: &threshold})

	// Above the threshold, the refund waits for ops; approve sends it.
	approved := createRefund(t, s, 6000)
	terminateOnCleanup(t, s, approved)
	showUntil(t, s, approved, "awaiting approval", awaitingApproval)
	out := mustCLI(t, s, "approve", approved, "--reason", "checked with the merchant")
	if !strings.Contains(out, "refund approved") {
		t.Fatalf("approve output:\n%s", out)
	}
	s.WaitRefund(t, approved, waitFor, refund.StatusSucceeded)
	_, err := cli(t, s, "approve", approved)
	apiError(t, err, http.StatusConflict, refund.CodeNotAwaitingApproval)
	assertAudit(t, audit(t, s, approved),
		"approve succeeded 200 <nil>",
		"approve failed 409 refund.not_awaiting_approval")

	// Reject needs a reason: the CLI asks for it, the API refuses without one.
	rejected := createRefund(t, s, 7000)
	terminateOnCleanup(t, s, rejected)
	showUntil(t, s, rejected, "awaiting approval", awaitingApproval)
	if _, err := cli(t, s, "reject", rejected); err == nil || !strings.Contains(err.Error(), "--reason is required") {
		t.Fatalf("reject without reason: %v", err)
	}
	r := s.DoWithKey(t, s.OpsKey, "POST", "/v1/ops/refunds/"+rejected+"/reject", map[string]any{})
	if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), refund.CodeValidation) {
		t.Fatalf("reject without reason: %d %s", r.Status, r.Body)
	}
	out = mustCLI(t, s, "reject", rejected, "--reason", "looks fraudulent")
	if !strings.Contains(out, "refund rejected") {
		t.Fatalf("reject output:\n%s", out)
	}
	done := s.WaitRefund(t, rejected, waitFor, refund.StatusCanceled)
	if done.Failure == nil || done.Failure.Code != "approval.rejected" || !strings.Contains(done.Failure.Message, "looks fraudulent") {
		t.Fatalf("rejected refund = %+v", done)
	}
	_, err = cli(t, s, "approve", rejected)
	apiError(t, err, http.StatusConflict, refund.CodeNotAwaitingApproval)
	rows := audit(t, s, rejected)
	assertAudit(t, rows,
		"reject failed 422 validation.failed",
		"reject succeeded 200 <nil>",
		"approve failed 409 refund.not_awaiting_approval")
	if rows[1].Detail["reason"] != "looks fraudulent" {
		t.Fatalf("audit lacks the reason: %v", rows[1].Detail)
	}
	d := showUntil(t, s, rejected, "workflow closed", closed)
	golden(t, "show_rejected.golden", normalize(mustCLI(t, s, "show", rejected), map[string]string{d.Refund.ProviderReference: "-"}))

	// Below the threshold nothing awaits approval; unknown ids are 404.
	small := createRefund(t, s, 1000)
	s.WaitRefund(t, small, waitFor, refund.StatusSucceeded)
	_, err = cli(t, s, "approve", small)
	apiErr := apiError(t, err, http.StatusConflict, refund.CodeNotAwaitingApproval)
	if !strings.Contains(apiErr.Detail, "does not require approval") {
		t.Fatalf("detail = %q", apiErr.Detail)
	}
	_, err = cli(t, s, "reject", uuid.Must(uuid.NewV7()).String(), "--reason", "x")
	apiError(t, err, http.StatusNotFound, refund.CodeRefundNotFound)
}

func TestCancel(t *testing.T) {
	threshold := int64(5000)
	s := rig.StartStack(t, rig.StackOptions{ApprovalThreshold: &threshold})
	id := createRefund(t, s, 8000)
	terminateOnCleanup(t, s, id)
	showUntil(t, s, id, "awaiting approval", awaitingApproval)

	out := mustCLI(t, s, "cancel", id, "--reason", "merchant called")
	if !strings.Contains(out, "refund canceled") || !strings.Contains(out, "now CANCELED") {
		t.Fatalf("cancel output:\n%s", out)
	}
	var tx struct{ ReservedAmount, RefundableAmount int64 }
	s.Do(t, "GET", "/v1/transactions/"+mustDetail(t, s, id).Refund.OriginalTransactionID.String(), nil).JSON(t, &tx)
	if tx.ReservedAmount != 0 || tx.RefundableAmount != 10000 {
		t.Fatalf("reservation not released: %+v", tx)
	}
	_, err := cli(t, s, "cancel", id)
	apiError(t, err, http.StatusConflict, refund.CodeNotCancelable)
	assertAudit(t, audit(t, s, id), "cancel succeeded 200 <nil>", "cancel failed 409 refund.not_cancelable")
}

func mustDetail(t *testing.T, s *rig.Stack, id string) ops.RefundDetail {
	t.Helper()
	var d ops.RefundDetail
	cliJSON(t, s, &d, "show", id)
	return d
}

func TestWebhookAttemptsAndRedeliver(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	var hits atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	rig.Must(t, s.Do(t, "POST", "/v1/webhook-endpoints", map[string]any{"url": hook.URL + "/hooks"}), http.StatusCreated)

	id := createRefund(t, s, 3000)
	s.WaitRefund(t, id, waitFor, refund.StatusSucceeded)
	d := showUntil(t, s, id, "both events delivered", func(d ops.RefundDetail) bool {
		ok := 0
		for _, a := range d.WebhookAttempts {
			if a.Succeeded {
				ok++
			}
		}
		return ok == 2
	})
	if a := d.WebhookAttempts[0]; a.URL != hook.URL+"/hooks" || a.StatusCode == nil || *a.StatusCode != http.StatusNoContent {
		t.Fatalf("attempt = %+v", a)
	}
	created := d.Events[0].ID.String()

	out := mustCLI(t, s, "redeliver", created)
	if !strings.Contains(out, "redeliver event "+created) {
		t.Fatalf("redeliver output:\n%s", out)
	}
	showUntil(t, s, id, "the redelivery is attempted", func(d ops.RefundDetail) bool { return len(d.WebhookAttempts) == 3 })
	human := mustCLI(t, s, "show", id)
	if !strings.Contains(human, hook.URL+"/hooks") || !strings.Contains(human, "204") {
		t.Fatalf("show lacks the webhook attempts:\n%s", human)
	}
	rows := audit(t, s, id)
	assertAudit(t, rows, "redeliver succeeded 202 <nil>")
	if rows[0].Detail["eventId"] != created {
		t.Fatalf("audit detail = %v", rows[0].Detail)
	}

	unknown := uuid.Must(uuid.NewV7()).String()
	_, err := cli(t, s, "redeliver", unknown)
	apiError(t, err, http.StatusNotFound, refund.CodeEventNotFound)
	var page ops.AuditPage
	cliJSON(t, s, &page, "audit", "--limit", "1")
	var detail map[string]any
	if err := json.Unmarshal(page.Data[0].Detail, &detail); err != nil {
		t.Fatal(err)
	}
	if page.Data[0].Action != refund.AuditRedeliver || page.Data[0].RefundID != nil || detail["eventId"] != unknown || detail["outcome"] != "failed" {
		t.Fatalf("audit of unknown event = %+v %v", page.Data[0], detail)
	}
	if table := mustCLI(t, s, "audit"); !strings.Contains(table, "redeliver") || !strings.Contains(table, "event.not_found") {
		t.Fatalf("audit table:\n%s", table)
	}
}

func TestOpsAPIAccess(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	for _, tc := range []struct {
		name, key, path string
		status          int
	}{
		{"no key", "", "/v1/ops/refunds", http.StatusUnauthorized},
		{"merchant key", s.MerchantKey, "/v1/ops/refunds", http.StatusForbidden},
		{"bad stuck", s.OpsKey, "/v1/ops/refunds?stuck=maybe", http.StatusBadRequest},
		{"bad status", s.OpsKey, "/v1/ops/refunds?status=LOST", http.StatusBadRequest},
		{"bad merchant", s.OpsKey, "/v1/ops/refunds?merchantId=x", http.StatusBadRequest},
		{"bad limit", s.OpsKey, "/v1/ops/audit?limit=1000", http.StatusBadRequest},
		{"unknown refund", s.OpsKey, "/v1/ops/refunds/" + uuid.NewString(), http.StatusNotFound},
		{"ops key", s.OpsKey, "/v1/ops/refunds?stuck=true", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := s.DoWithKey(t, tc.key, "GET", tc.path, nil); r.Status != tc.status {
				t.Fatalf("GET %s = %d %s, want %d", tc.path, r.Status, r.Body, tc.status)
			}
		})
	}
	// A merchant key cannot act through the ops API either.
	r := s.DoWithKey(t, s.MerchantKey, "POST", "/v1/ops/refunds/"+uuid.NewString()+"/retry", nil)
	if r.Status != http.StatusForbidden {
		t.Fatalf("merchant retry = %d %s", r.Status, r.Body)
	}

	// The CLI explains a missing key and an unreachable API.
	err := ops.Run(context.Background(), []string{"list"}, ops.Options{URL: s.APIURL})
	if err == nil || !strings.Contains(err.Error(), "BACKFLOW_OPS_KEY") {
		t.Fatalf("no key: %v", err)
	}
	err = ops.Run(context.Background(), []string{"list"}, ops.Options{URL: "http://127.0.0.1:1", Key: s.OpsKey})
	if err == nil || !strings.Contains(err.Error(), "cannot reach the Backflow API") {
		t.Fatalf("unreachable: %v", err)
	}
	if _, err := cli(t, s, "frobnicate"); err == nil || !strings.Contains(err.Error(), "unknown ops command") {
		t.Fatalf("unknown command: %v", err)
	}
	if out := mustCLI(t, s, "help"); !strings.Contains(out, "backflow ops <command>") {
		t.Fatalf("help:\n%s", out)
	}
}

func TestShowWithoutWorkflow(t *testing.T) {
	// With no worker, a refund's workflow exists but cannot answer its query;
	// the view still shows the database side and says why.
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	id := createRefund(t, s, 1200)
	terminateOnCleanup(t, s, id)
	d := mustDetail(t, s, id)
	if d.Workflow.Status != nil || !strings.Contains(d.Workflow.Note, "no worker answered") || d.Refund.Status != refund.StatusPending {
		t.Fatalf("workflow view = %+v", d.Workflow)
	}
	if len(d.Ledger) != 1 || len(d.Events) != 1 {
		t.Fatalf("db view = %+v", d)
	}
	// A closed workflow that no worker replays: its execution status still shows.
	if err := s.Temporal.TerminateWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", "test"); err != nil {
		t.Fatal(err)
	}
	d = mustDetail(t, s, id)
	if d.Workflow.ExecutionStatus != "Terminated" {
		t.Fatalf("terminated workflow view = %+v", d.Workflow)
	}
}
