package workflows_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"

	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/workflows"
)

// currentDetailsAt captures the current details Temporal UI shows at d.
func (h *harness) currentDetailsAt(d time.Duration) *string {
	var details string
	h.at(d, func() {
		v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(h.t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(h.t, v.Get(&md))
		details = md.GetCurrentDetails()
	})
	return &details
}

// Temporal UI shows where a stuck refund stands without a query: its
// summary, status, step, attempts, stuck reason and next check; once final,
// its outcome.
func TestCurrentDetailsFollowTheRefund(t *testing.T) {
	h := newHarness(t)
	h.onSubmit(append(repeat(fail(errTransient), int(testPolicy.SubmitAttempts)), ok(providers.StatusSucceeded, "re_later"))...)
	stuck := h.currentDetailsAt(10 * time.Minute)
	h.run(workflows.RefundInput{})
	require.Equal(t, "re_later", h.result().ProviderReference)
	for _, want := range []string{"Refund 42.00 EUR · stripe · PROVIDER_REFUND", "**PROCESSING**", "step `stuck`",
		"provider attempt(s)", "**Stuck**: provider.no_answer", "Next check ", "Last error: "} {
		require.Contains(t, *stuck, want)
	}
	v, err := h.env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	require.True(t, strings.Contains(md.GetCurrentDetails(), "**SUCCEEDED** · step `done`"), md.GetCurrentDetails())
}

func TestStaticSummaryAndDetails(t *testing.T) {
	require.Equal(t, "Refund 12.34 EUR · cardpay · PROVIDER_REFUND", workflows.Summary(1234, "EUR", "cardpay", "PROVIDER_REFUND"))
	require.Equal(t, "Refund 1234 JPY · momo · PAYOUT_REFUND", workflows.Summary(1234, "JPY", "momo", "PAYOUT_REFUND"))
}
