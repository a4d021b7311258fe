package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// What Temporal UI shows of a refund without a query: a one-line static
// summary and static details given at start (StartOptions), and current
// details the workflow keeps up to date (refundRun.showDetails). A run after
// continue-as-new has no static summary, so the current details repeat it.

// Summary is a refund's one-line summary: "Refund 12.34 EUR · cardpay · PROVIDER_REFUND".
func Summary(amount int64, currency, provider string, method refund.Method) string {
	return fmt.Sprintf("Refund %s %s · %s · %s", providers.FormatAmount(amount, currency), currency, provider, method)
}

// StaticDetails are the refund's fixed facts: merchant, transaction, session, reference.
func StaticDetails(r refund.Refund) string {
	lines := []string{
		"**Merchant** " + r.MerchantID.String(),
		"**Transaction** " + r.TransactionID.String(),
		"**Session** " + r.SessionID.String(),
	}
	if r.Reference != "" {
		lines = append(lines, "**Reference** "+r.Reference)
	}
	return strings.Join(lines, "\n")
}

// CurrentDetails renders where a refund stands: status, step, attempts,
// stuck reason and next retry.
func CurrentDetails(summary string, st RefundState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n**%s** · step `%s` · %d provider attempt(s)", summary, st.Status, st.Step, st.Attempts)
	if st.Stuck {
		fmt.Fprintf(&b, "\n\n**Stuck**: %s", st.StuckReason)
	}
	if st.NextRetryAt != nil {
		fmt.Fprintf(&b, "\n\nNext check %s", st.NextRetryAt.UTC().Format(time.RFC3339))
	}
	if st.LastError != "" {
		fmt.Fprintf(&b, "\n\nLast error: %s", st.LastError)
	}
	return b.String()
}

// showDetails publishes the current details (no history event: replay-safe).
func (w *refundRun) showDetails() {
	summary := "Refund " + w.state.RefundID.String() // until BeginRefund has read it
	if w.plan.Provider != "" {
		summary = Summary(w.plan.Amount, w.plan.Currency, w.plan.Provider, w.plan.Method)
	}
	workflow.SetCurrentDetails(w.ctx, CurrentDetails(summary, w.state))
}
