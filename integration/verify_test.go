package integration

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/internal/testenv"
	"github.com/backflow/backflow/refund"
)

// TestVerifyCommand: `backflow verify` finds a broken balance, names the
// transaction, exits non-zero; a clean merchant passes with exit 0.
func TestVerifyCommand(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{})
	_, txID := s.Transaction(t, nil)
	id := createRefund(t, s, txID, 1200, "EUR")
	s.WaitRefund(t, id, 20*time.Second, refund.StatusSucceeded)
	verify := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(testenv.BackflowBinary(t), append([]string{"verify", "--merchant", s.MerchantID.String()}, args...)...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+s.DBURL, "TEMPORAL_ADDRESS="+os.Getenv("BACKFLOW_TEST_TEMPORAL_ADDRESS"))
		out, err := cmd.CombinedOutput()
		if exit, ok := err.(*exec.ExitError); ok {
			return string(out), exit.ExitCode()
		}
		if err != nil {
			t.Fatalf("verify: %v\n%s", err, out)
		}
		return string(out), 0
	}
	if out, code := verify(); code != 0 || !strings.HasPrefix(lastLine(out), "0 violations") {
		t.Fatalf("clean merchant: exit %d\n%s", code, out)
	}
	// A balance moved without its ledger entry.
	if _, err := s.Pool.Exec(context.Background(), `UPDATE transactions SET reserved_amount = reserved_amount + 5 WHERE id = $1`, txID); err != nil {
		t.Fatal(err)
	}
	out, code := verify("--since", "1h")
	if code == 0 || !strings.Contains(out, "ledger: transaction "+txID) {
		t.Fatalf("broken ledger: exit %d\n%s", code, out)
	}
	if out, code := verify("--from", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); code != 0 {
		t.Fatalf("a range with nothing in it: exit %d\n%s", code, out)
	}
	if out, code := verify("--from", "yesterday"); code == 0 || !strings.Contains(out, "RFC 3339") {
		t.Fatalf("bad --from: exit %d\n%s", code, out)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
