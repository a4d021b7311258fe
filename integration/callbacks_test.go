package integration

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/refund"
)

// resentHeader marks the test's own copies so the tap does not copy them again.
const resentHeader = "X-Test-Resent"

type capturedCallback struct {
	path   string
	header http.Header
	body   []byte
}

// TestDuplicateAndLateCallbacksFinalizeOnce replays every provider callback
// at once (duplicate) and again after the refund finished (late).
func TestDuplicateAndLateCallbacksFinalizeOnce(t *testing.T) {
	var mu sync.Mutex
	var seen []capturedCallback
	var s *rig.Stack
	s = rig.StartStack(t, rig.StackOptions{CallbackTap: func(r *http.Request, body []byte) {
		if r.Header.Get(resentHeader) != "" {
			return
		}
		cb := capturedCallback{path: r.URL.Path, header: r.Header.Clone(), body: body}
		mu.Lock()
		seen = append(seen, cb)
		mu.Unlock()
		go resend(t, s.APIURL, cb) // the duplicate, while the refund is processing
	}})
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			id, txID := refundOn(t, s, p.fields, 3004)
			s.WaitRefund(t, id, 30*time.Second, refund.StatusSucceeded)
			mu.Lock()
			late := append([]capturedCallback(nil), seen...)
			mu.Unlock()
			if len(late) == 0 {
				t.Fatal("no callback was captured")
			}
			for _, cb := range late {
				if code := resend(t, s.APIURL, cb); code != http.StatusOK {
					t.Fatalf("late callback answered %d", code)
				}
			}
			var settles, succeeded int
			err := s.Pool.QueryRow(context.Background(), `SELECT
				(SELECT count(*) FROM ledger_entries WHERE refund_id = $1 AND kind = 'SETTLE'),
				(SELECT count(*) FROM refund_events WHERE refund_id = $1 AND type = 'refund.succeeded')`, id).Scan(&settles, &succeeded)
			if err != nil {
				t.Fatal(err)
			}
			if settles != 1 || succeeded != 1 {
				t.Fatalf("%d settles and %d succeeded events, want 1 and 1", settles, succeeded)
			}
			var tx struct{ RefundedAmount int64 }
			s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
			if tx.RefundedAmount != 3004 {
				t.Fatalf("refunded %d, want 3004", tx.RefundedAmount)
			}
		})
	}
}

func resend(t *testing.T, apiURL string, cb capturedCallback) int {
	req, err := http.NewRequest(http.MethodPost, apiURL+cb.path, bytes.NewReader(cb.body))
	if err != nil {
		t.Error(err)
		return 0
	}
	req.Header = cb.header.Clone()
	req.Header.Set(resentHeader, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCancelBeforeSubmit: a refund waiting for approval is canceled by the
// merchant; its reservation is released and nothing reaches the provider.
func TestCancelBeforeSubmit(t *testing.T) {
	threshold := int64(1000)
	s := rig.StartStack(t, rig.StackOptions{ApprovalThreshold: &threshold})
	id, txID := refundOn(t, s, paths[0].fields, 5000)
	deadline := time.Now().Add(15 * time.Second)
	for queryStatus(t, s, id).Step != "awaiting_approval" {
		if time.Now().After(deadline) {
			t.Fatal("refund never waited for approval")
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := rig.Must(t, s.Do(t, "POST", "/v1/refunds/"+id+"/cancel", nil), http.StatusOK)
	var o refund.Object
	r.JSON(t, &o)
	if o.Status != refund.StatusCanceled {
		t.Fatalf("cancel answered %s", o.Status)
	}
	var tx struct{ RefundedAmount, ReservedAmount, RefundableAmount int64 }
	s.Do(t, "GET", "/v1/transactions/"+txID, nil).JSON(t, &tx)
	if tx.ReservedAmount != 0 || tx.RefundableAmount != 10000 {
		t.Fatalf("after cancel: %+v", tx)
	}
	assertLedger(t, s, id, false)
	if n := s.Sandbox.Requests(id); n != 0 {
		t.Fatalf("provider saw %d requests for a canceled refund", n)
	}
	// A second cancel is refused: the refund is final.
	rig.Must(t, s.Do(t, "POST", "/v1/refunds/"+id+"/cancel", nil), http.StatusConflict)
	recordHistory(t, s, id, "cardpay_approval_canceled")
}
