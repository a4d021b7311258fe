package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// apiClient speaks to the Backflow API as a merchant (and upstream
// platform), spreading requests round-robin over the API processes' URLs.
type apiClient struct {
	bases []string
	next  atomic.Uint64
	key   string
	http  *http.Client
}

func newAPIClient(bases []string, key string, conns int) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	return &apiClient{bases: bases, key: key, http: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// url is path on the next API process.
func (a *apiClient) url(path string) string {
	return a.bases[(a.next.Add(1)-1)%uint64(len(a.bases))] + path
}

// post sends a JSON body and decodes a JSON answer into out when the status is want.
func (a *apiClient) post(ctx context.Context, path, idemKey string, body, out any, want int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url(path), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.key)
	req.Header.Set("Content-Type", "application/json")
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		if len(raw) > 300 {
			raw = raw[:300]
		}
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(raw))
	}
	if out != nil {
		return json.Unmarshal(raw, out)
	}
	return nil
}

// captured is a transaction ready to refund.
type captured struct {
	SessionID     uuid.UUID
	TransactionID uuid.UUID
}

// createTransactions registers n captured transactions through the API, one
// per session, so refunds never wait on each other's row lock.
func (a *apiClient) createTransactions(ctx context.Context, n, conc int, provider, currency string, amount int64, tag string) ([]captured, error) {
	out := make([]captured, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				var s struct {
					SessionID uuid.UUID `json:"sessionId"`
				}
				err := a.post(ctx, "/v1/sessions", "", map[string]any{}, &s, http.StatusCreated)
				var t struct {
					TransactionID uuid.UUID `json:"transactionId"`
				}
				if err == nil {
					err = a.post(ctx, "/v1/transactions", "", map[string]any{
						"sessionId": s.SessionID, "provider": provider, "method": "card", "amount": amount,
						"currency": currency, "status": "CAPTURED", "providerReference": fmt.Sprintf("bench_%s_%d", tag, i),
					}, &t, http.StatusCreated)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				out[i] = captured{SessionID: s.SessionID, TransactionID: t.TransactionID}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("create transactions: %w", firstErr)
	}
	return out, ctx.Err()
}

// refundAnswer is the part of the 202 body the bench reads.
type refundAnswer struct {
	RefundID uuid.UUID `json:"transactionId"`
	Status   string    `json:"status"`
}

func (a *apiClient) createRefund(ctx context.Context, tx captured, amount int64, currency, idemKey, reference string) (refundAnswer, error) {
	var out refundAnswer
	err := a.post(ctx, "/v1/refunds", idemKey, map[string]any{
		"originalTransactionId": tx.TransactionID,
		"refundValue":           map[string]any{"amount": amount, "currency": currency},
		"reason":                "benchmark",
		"reasonCode":            "REQUESTED_BY_CUSTOMER",
		"reference":             reference,
	}, &out, http.StatusAccepted)
	return out, err
}
