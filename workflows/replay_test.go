package workflows_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	bfworker "github.com/backflow/backflow/worker"
)

// TestReplayRecordedHistories replays histories recorded from real runs (see
// integration.recordHistory) against today's workflow code: a change that
// breaks determinism for refunds already in flight fails here, before deploy.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found %d recorded histories, want the committed set", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			history, err := client.HistoryFromJSON(mustOpen(t, f), client.HistoryJSONOptions{})
			if err != nil {
				t.Fatalf("load history: %v", err)
			}
			replayer := worker.NewWorkflowReplayer()
			bfworker.RegisterWorkflows(replayer)
			if err := replayer.ReplayWorkflowHistory(nil, history); err != nil {
				t.Fatalf("replay: %v", err)
			}
		})
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
