package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/workflows"
)

// TestAPIWorkerStartsRefundsEagerly runs `backflow api` with
// BACKFLOW_API_WORKER=true on a task queue nobody else polls: the refund
// completes, so the API's own worker ran it, and its first workflow task came
// back in the start response (eager start) instead of through matching.
func TestAPIWorkerStartsRefundsEagerly(t *testing.T) {
	ctx := context.Background()
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	taskQueue := "eager-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		_ = s.Temporal.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID(taskQueue)).Delete(ctx)
	})
	port := rig.FreePort(t)
	apiURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	cfgs, err := json.Marshal(providers.SandboxConfigs(s.SandboxURL))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.BackflowBinary(t), "api")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+s.DBURL, "TEMPORAL_ADDRESS="+os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS"),
		"BACKFLOW_TASK_QUEUE="+taskQueue, "BACKFLOW_API_WORKER=true", "BACKFLOW_PROVIDERS="+string(cfgs),
		fmt.Sprintf("BACKFLOW_HTTP_ADDR=127.0.0.1:%d", port), "BACKFLOW_PUBLIC_URL="+apiURL,
		"BACKFLOW_LOG_LEVEL=ERROR", "BACKFLOW_RECONCILE_EVERY=1h")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGKILL); _ = cmd.Wait() })
	err = rig.Poll(ctx, 30*time.Second, "backflow api on "+apiURL, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(apiURL + "/readyz")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal(err)
	}

	c := rig.NewClient(apiURL, s.MerchantKey)
	tx, err := c.CreateTransaction(ctx, rig.Providers[0].Fields)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Refund(ctx, tx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// Only the API's worker polls the task queue.
	s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded)

	iter := s.Temporal.GetWorkflowHistory(ctx, workflows.RefundWorkflowID(uuid.MustParse(id)), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := iter.Next()
	if err != nil {
		t.Fatal(err)
	}
	started := first.GetWorkflowExecutionStartedEventAttributes()
	if started == nil || !started.GetEagerExecutionAccepted() {
		t.Fatalf("first event %s: eager execution not accepted", first.GetEventType())
	}
	if got := started.GetTaskQueue().GetName(); got != taskQueue {
		t.Fatalf("workflow on task queue %q, want %q", got, taskQueue)
	}
}
