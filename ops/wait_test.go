package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/workflows"
	"github.com/google/uuid"
)

// waitStep polls the refund workflow's status query until its step is step.
func waitStep(t *testing.T, s *rig.Stack, id, step string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		v, err := s.Temporal.QueryWorkflow(context.Background(), workflows.RefundWorkflowID(uuid.MustParse(id)), "", workflows.QueryStatus)
		var st workflows.RefundState
		if err == nil && v.Get(&st) == nil && st.Step == step {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund %s not at step %s within %s (last: %q, %v)", id, step, waitFor, st.Step, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
