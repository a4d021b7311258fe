package ops

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// tw is an aligned table or key/value block; call flush when done.
type tw struct{ *tabwriter.Writer }

func newTW(out io.Writer) tw { return tw{tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)} }

func (t tw) row(cols ...string) { fmt.Fprintln(t, strings.Join(cols, "\t")) }

func (t tw) flush() error { return t.Flush() }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func tsp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return ts(*t)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stuckText is the stuck column: no, or why it is stuck.
func stuckText(stuck bool, reason string) string {
	if !stuck {
		return "no"
	}
	return cmp.Or(reason, "yes")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func money(amount int64, currency string) string {
	return providers.FormatAmount(amount, currency) + " " + currency
}

func renderList(out io.Writer, page RefundPage) error {
	if len(page.Data) == 0 {
		_, err := fmt.Fprintln(out, "no refunds match")
		return err
	}
	t := newTW(out)
	t.row("REFUND", "STATUS", "STUCK", "PROVIDER", "METHOD", "AMOUNT", "ATTEMPTS", "MERCHANT", "CREATED")
	for _, r := range page.Data {
		t.row(r.TransactionID.String(), string(r.Status), stuckText(r.Stuck, r.StuckReason), r.Provider, string(r.Method), money(r.RefundValue.Amount, r.RefundValue.Currency),
			fmt.Sprint(r.Attempts), r.MerchantID.String(), ts(r.CreatedAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	noun := "refunds"
	if len(page.Data) == 1 {
		noun = "refund"
	}
	_, err := fmt.Fprintf(out, "\n%d %s", len(page.Data), noun)
	if err == nil && page.NextCursor != "" {
		_, err = fmt.Fprintf(out, "; more with --cursor %s", page.NextCursor)
	}
	if err == nil {
		_, err = fmt.Fprintln(out)
	}
	return err
}

func renderShow(out io.Writer, d RefundDetail) error {
	r := d.Refund
	fmt.Fprintf(out, "Refund %s\n", r.TransactionID)
	t := newTW(out)
	status := string(r.Status)
	if r.Stuck {
		status += " (stuck: " + stuckText(r.Stuck, r.StuckReason) + ")"
	}
	if r.RequiresApproval {
		status += " (above the approval threshold)"
	}
	t.row("  Status", status)
	t.row("  Merchant", r.MerchantID.String())
	t.row("  Amount", money(r.RefundValue.Amount, r.RefundValue.Currency))
	t.row("  Provider", r.Provider+" / "+string(r.Method))
	t.row("  Provider reference", dash(r.ProviderReference))
	t.row("  Original transaction", r.OriginalTransactionID.String())
	t.row("  Session", r.SessionID.String())
	if r.TargetType != refund.TargetPaymentMethod || r.TargetID != "" {
		t.row("  Target", r.TargetType+" "+r.TargetID)
	}
	if r.Reason != "" || r.ReasonCode != "" {
		t.row("  Reason", strings.TrimSpace(r.ReasonCode+" "+r.Reason))
	}
	if r.Description != "" {
		t.row("  Description", r.Description)
	}
	if r.Reference != "" {
		t.row("  Reference", r.Reference)
	}
	t.row("  Attempts", fmt.Sprint(r.Attempts))
	if r.Failure != nil {
		t.row("  Failure", r.Failure.Code+": "+r.Failure.Message)
	}
	t.row("  Created", ts(r.CreatedAt))
	t.row("  Submitted", tsp(r.SubmittedAt))
	t.row("  Completed", tsp(r.CompletedAt))
	t.row("  Updated", ts(r.UpdatedAt))
	if err := t.flush(); err != nil {
		return err
	}

	wf := d.Workflow
	fmt.Fprintf(out, "\nWorkflow %s\n", wf.ID)
	t = newTW(out)
	t.row("  Execution", dash(wf.ExecutionStatus))
	if wf.RunID != "" {
		t.row("  Run", wf.RunID)
	}
	t.row("  Started", tsp(wf.StartTime))
	if wf.CloseTime != nil {
		t.row("  Closed", tsp(wf.CloseTime))
	}
	if wf.Note != "" {
		t.row("  Note", wf.Note)
	}
	if st := wf.Status; st != nil {
		stuck := ""
		if st.Stuck {
			stuck = " (stuck: " + stuckText(st.Stuck, st.StuckReason) + ")"
		}
		t.row("  Live status", string(st.Status)+stuck)
		t.row("  Step", st.Step)
		t.row("  Attempts", fmt.Sprint(st.Attempts))
		if st.LastError != "" {
			t.row("  Last error", st.LastError)
		}
		if st.NextRetryAt != nil {
			t.row("  Next retry", tsp(st.NextRetryAt))
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if st := wf.Status; st != nil && len(st.Timeline) > 0 {
		fmt.Fprintln(out, "\n  Timeline")
		t = newTW(out)
		t.row("    AT", "STEP", "NOTE")
		for _, e := range st.Timeline {
			t.row("    "+ts(e.At), e.Step, dash(e.Note))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "\nLedger")
	if len(d.Ledger) == 0 {
		fmt.Fprintln(out, "  (none)")
	} else {
		t = newTW(out)
		t.row("  AT", "KIND", "AMOUNT", "ENTRY")
		for _, e := range d.Ledger {
			t.row("  "+ts(e.CreatedAt), e.Kind, money(e.Amount, r.RefundValue.Currency), e.ID.String())
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "\nEvents")
	if len(d.Events) == 0 {
		fmt.Fprintln(out, "  (none)")
	} else {
		t = newTW(out)
		t.row("  SEQ", "TYPE", "EVENT", "CREATED", "DISPATCHED")
		for _, e := range d.Events {
			t.row("  "+fmt.Sprint(e.Sequence), e.Type, e.ID.String(), ts(e.CreatedAt), tsp(e.DispatchedAt))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "\nWebhook attempts")
	if len(d.WebhookAttempts) == 0 {
		fmt.Fprintln(out, "  (none)")
	} else {
		t = newTW(out)
		t.row("  AT", "EVENT", "ENDPOINT", "#", "HTTP", "OK", "ERROR")
		for _, a := range d.WebhookAttempts {
			code := "-"
			if a.StatusCode != nil {
				code = fmt.Sprint(*a.StatusCode)
			}
			t.row("  "+ts(a.CreatedAt), a.EventID.String(), a.URL, fmt.Sprint(a.Attempt), code, yesNo(a.Succeeded), dash(a.Error))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(out, "\nOps audit")
	return renderAudit(out, d.Audit, false)
}

// renderAudit prints audit entries; withRefund adds the refund column.
func renderAudit(out io.Writer, entries []refund.AuditEntry, withRefund bool) error {
	if len(entries) == 0 {
		msg := "  (none)"
		if withRefund {
			msg = "no ops actions recorded"
		}
		_, err := fmt.Fprintln(out, msg)
		return err
	}
	// Inside show the entries are one refund's, indented like its other sections.
	indent := "  "
	if withRefund {
		indent = ""
	}
	t := newTW(out)
	head := []string{indent + "AT", "ACTION", "ACTOR KEY", "OUTCOME", "DETAIL"}
	if withRefund {
		head = append(head[:2], append([]string{"REFUND"}, head[2:]...)...)
	}
	t.row(head...)
	for _, e := range entries {
		outcome, detail := auditDetail(e)
		cols := []string{indent + ts(e.CreatedAt), e.Action, e.ActorKey.String(), outcome, detail}
		if withRefund {
			ref := "-"
			if e.RefundID != nil {
				ref = e.RefundID.String()
			}
			cols = append(cols[:2], append([]string{ref}, cols[2:]...)...)
		}
		t.row(cols...)
	}
	return t.flush()
}

// auditDetail summarizes an entry's detail: its outcome, and the reason,
// event id, error code and message that matter to a reader; for merchant
// and key actions, which merchant, key and name.
func auditDetail(e refund.AuditEntry) (string, string) {
	var d map[string]any
	if json.Unmarshal(e.Detail, &d) != nil {
		return "?", string(e.Detail)
	}
	keys := []string{"reason", "eventId", "code", "error"}
	if e.RefundID == nil && d["eventId"] == nil {
		keys = []string{"merchantId", "keyId", "name", "code", "error"}
	}
	outcome, _ := d["outcome"].(string)
	if outcome == "" {
		outcome = "in progress" // the action was started and its outcome not recorded
	}
	var parts []string
	for _, k := range keys {
		if v, ok := d[k]; ok && v != "" {
			parts = append(parts, fmt.Sprintf("%s=%v", k, v))
		}
	}
	return outcome, dash(strings.Join(parts, " "))
}

func renderAction(out io.Writer, res ActionResult) error {
	target := res.RefundID.String()
	if res.EventID != nil {
		target = "event " + res.EventID.String()
	}
	if _, err := fmt.Fprintf(out, "%s %s: %s\n", res.Action, target, res.Message); err != nil {
		return err
	}
	if r := res.Refund; r != nil {
		stuck := ""
		if r.Stuck {
			stuck = ", stuck"
		}
		if _, err := fmt.Fprintf(out, "refund is now %s%s (workflow %s)\n", r.Status, stuck, r.WorkflowID); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "audit entry %s\n", res.AuditID)
	return err
}

func renderMerchants(out io.Writer, page MerchantPage) error {
	if len(page.Data) == 0 {
		_, err := fmt.Fprintln(out, "no merchants")
		return err
	}
	t := newTW(out)
	t.row("MERCHANT", "NAME", "APPROVAL THRESHOLD", "CREATED")
	for _, m := range page.Data {
		threshold := "none"
		if m.ApprovalThreshold != nil {
			threshold = fmt.Sprint(*m.ApprovalThreshold)
		}
		t.row(m.MerchantID.String(), m.Name, threshold, ts(m.CreatedAt))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if page.NextCursor != "" {
		_, err := fmt.Fprintf(out, "\nmore with --cursor %s\n", page.NextCursor)
		return err
	}
	return nil
}

func renderKeys(out io.Writer, keys []APIKey) error {
	if len(keys) == 0 {
		_, err := fmt.Fprintln(out, "no keys")
		return err
	}
	t := newTW(out)
	t.row("KEY", "PREFIX", "NAME", "SCOPES", "CREATED", "LAST USED", "REVOKED")
	for _, k := range keys {
		t.row(k.KeyID.String(), k.Prefix+"…", k.Name, strings.Join(k.Scopes, ","), ts(k.CreatedAt), tsp(k.LastUsedAt), tsp(k.RevokedAt))
	}
	return t.flush()
}

func renderCreatedKey(out io.Writer, k APIKey) error {
	t := newTW(out)
	t.row("Key id", k.KeyID.String())
	t.row("Merchant", k.MerchantID.String())
	t.row("Name", k.Name)
	t.row("Scopes", strings.Join(k.Scopes, ","))
	if err := t.flush(); err != nil {
		return err
	}
	if k.Key == "" {
		_, err := fmt.Fprintln(out, "\nThe key's secret was shown when it was created and is not kept: revoke it and create another if it was lost.")
		return err
	}
	_, err := fmt.Fprintf(out, "\nAPI key (shown only now; Backflow keeps its hash):\n%s\n", k.Key)
	return err
}
