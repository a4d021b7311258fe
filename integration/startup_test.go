package integration

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/backflow/backflow/internal/testenv"
)

// TestWorkerRefusesToStartWithoutItsServices: a worker that cannot reach
// Postgres or Temporal exits non-zero at once and says which and why.
func TestWorkerRefusesToStartWithoutItsServices(t *testing.T) {
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"postgres down", []string{"DATABASE_URL=postgres://postgres@127.0.0.1:1/none?sslmode=disable"}, "postgres unreachable"},
		{"temporal down", []string{"DATABASE_URL=" + os.Getenv("BACKFLOW_TEST_DATABASE_URL"), "TEMPORAL_ADDRESS=127.0.0.1:1"}, "temporal unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(testenv.BackflowBinary(t), "worker")
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			exit, ok := err.(*exec.ExitError)
			if !ok || exit.ExitCode() == 0 {
				t.Fatalf("worker exited with %v, want a non-zero exit:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
