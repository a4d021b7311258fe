package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/providers"
	"github.com/backflow/backflow/refund"
)

// startWorkerProcess runs `backflow worker` as its own process, so a test can SIGKILL it.
func startWorkerProcess(t *testing.T, s *rig.Stack, providerURL string) *exec.Cmd {
	t.Helper()
	cfgs, err := json.Marshal(providers.SandboxConfigs(providerURL))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.BackflowBinary(t), "worker")
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+s.DBURL,
		"TEMPORAL_ADDRESS="+os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS"),
		"BACKFLOW_TASK_QUEUE="+s.TaskQueue,
		"BACKFLOW_PROVIDERS="+string(cfgs),
		"BACKFLOW_WORKER_HTTP_ADDR=127.0.0.1:0",
		"BACKFLOW_LOG_LEVEL=WARN",
	)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker process: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

// TestWorkerKilledDuringProviderCall SIGKILLs the worker while the provider
// call is in flight, before and after the provider processed it; a restarted
// worker finishes the refund with exactly one refund at the provider.
func TestWorkerKilledDuringProviderCall(t *testing.T) {
	for _, processed := range []bool{false, true} {
		name := "before the provider processed it"
		if processed {
			name = "after the provider processed it"
		}
		t.Run(name, func(t *testing.T) {
			inflight := make(chan struct{})
			release := make(chan struct{})
			var once sync.Once
			s := rig.StartStack(t, rig.StackOptions{NoWorker: true, ProviderProxy: func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					first := false
					if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/cardpay/") {
						once.Do(func() { first = true })
					}
					if !first {
						next.ServeHTTP(w, r)
						return
					}
					if processed {
						next.ServeHTTP(discard{header: http.Header{}}, r)
					}
					close(inflight)
					<-release
					// The worker is dead: its connection and the answer are lost.
					panic(http.ErrAbortHandler)
				})
			}})
			proc := startWorkerProcess(t, s, s.SandboxURL)
			id, txID := refundOn(t, s, paths[0].fields, 2500)
			select {
			case <-inflight:
			case <-time.After(30 * time.Second):
				t.Fatal("the provider call never started")
			}
			if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = proc.Wait()
			close(release)
			s.StartWorker(t)
			got := s.WaitRefund(t, id, 45*time.Second, refund.StatusSucceeded, refund.StatusFailed, refund.StatusDeclined)
			if got.Status != refund.StatusSucceeded {
				t.Fatalf("status %s after the crash", got.Status)
			}
			if n := s.Sandbox.Count(id); n != 1 {
				t.Fatalf("provider holds %d refunds for one Backflow refund", n)
			}
			var tx struct{ RefundedAmount, ReservedAmount int64 }
			s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
			if tx.RefundedAmount != 2500 || tx.ReservedAmount != 0 {
				t.Fatalf("balance after the crash: %+v", tx)
			}
			assertLedger(t, s, id, true)
		})
	}
}

// discard is a ResponseWriter that drops the answer, as a dead client would.
type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
