package bench

import (
	"strings"
	"testing"
)

func TestParsePersistence(t *testing.T) {
	text := `# HELP persistence_requests x
persistence_requests{namespace="default",operation="UpdateWorkflowExecution",service_name="history"} 10
persistence_requests{namespace="system",operation="UpdateWorkflowExecution",service_name="matching"} 2
persistence_latency_sum{namespace="default",operation="UpdateWorkflowExecution",service_name="history"} 0.5
persistence_latency_count{namespace="default",operation="UpdateWorkflowExecution",service_name="history"} 10
visibility_persistence_requests{operation="RecordWorkflowExecutionStarted",service_name="history"} 3
visibility_persistence_latency_sum{operation="RecordWorkflowExecutionStarted",service_name="history"} 0.03
task_requests{operation="VisibilityTaskStartExecution"} 7
`
	before, err := parsePersistence(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if got := before["UpdateWorkflowExecution"]; got.count != 12 || got.seconds != 0.5 {
		t.Fatalf("UpdateWorkflowExecution = %+v, want 12 calls, 0.5 s", got)
	}
	if got := before["visibility RecordWorkflowExecutionStarted"]; got.count != 3 {
		t.Fatalf("visibility start = %+v, want 3 calls", got)
	}
	if len(before) != 2 {
		t.Fatalf("parsed %v, want only the two persistence operations", before)
	}
	after := map[string]opStat{
		"UpdateWorkflowExecution":                   {count: 32, seconds: 1.5},
		"visibility RecordWorkflowExecutionStarted": {count: 13, seconds: 0.23},
	}
	d := diffPersistence(before, after, 10)
	if d.OpsPerItem != 3 || d.MsPerItem != 120 {
		t.Fatalf("diff = %+v, want 3 ops and 120 ms per item", d)
	}
	if d.ByOperation[0].Operation != "UpdateWorkflowExecution" || d.ByOperation[0].PerItem != 2 {
		t.Fatalf("by operation = %+v, want UpdateWorkflowExecution first with 2 per item", d.ByOperation)
	}
}
