package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/reliability"
	"github.com/backflow/backflow/store"
	"github.com/backflow/backflow/workflows"
)

// TestAPIWorkerStartsRefundsEagerly runs `backflow api` with
// BACKFLOW_API_WORKER=true on a task queue nobody else polls: the refund
// completes, so the API's own worker ran it, and its first workflow task came
// back in the start response (eager start) instead of through matching.
func TestAPIWorkerStartsRefundsEagerly(t *testing.T) {
	ctx := context.Background()
	s := testenv.StartStack(t, testenv.StackOptions{NoWorker: true})
	taskQueue := "eager-" + uuid.NewString()[:8]
	t.Cleanup(func() {
		_ = s.Temporal.ScheduleClient().GetHandle(ctx, workflows.ReconcileScheduleID(taskQueue)).Delete(ctx)
	})
	port := freeTCPPort(t)
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
	waitReady(t, apiURL+"/readyz")

	c := reliability.NewClient(apiURL, s.MerchantKey)
	tx, err := c.CreateTransaction(ctx, reliability.Providers[0].Fields)
	if err != nil {
		t.Fatal(err)
	}
	id, err := c.Refund(ctx, tx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := c.GetRefund(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == store.StatusSucceeded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refund %s is %s after 30 s: the API's worker did not run it", id, r.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}

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

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer 200 within 30 s", url)
}
