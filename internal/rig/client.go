package rig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/backflow/backflow/refund"
	"github.com/backflow/backflow/server"
)

// Client calls the Backflow API as one merchant.
type Client struct {
	BaseURL string
	Key     string
	HTTP    *http.Client
}

// NewClient returns a client with a 30 s request timeout.
func NewClient(baseURL, key string) *Client {
	return &Client{BaseURL: baseURL, Key: key, HTTP: &http.Client{Timeout: 30 * time.Second}}
}

// Response is one API answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode decodes the body into v.
func (r Response) Decode(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decode %d %q: %w", r.Status, truncate(r.Body, 300), err)
	}
	return nil
}

// JSON decodes the body into v or fails the test.
func (r Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Problem decodes a problem document; ok is false when the body is not one.
func (r Response) Problem() (Problem, bool) {
	var p Problem
	if r.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(r.Body, &p) != nil || p.Code == "" {
		return p, false
	}
	return p, true
}

// Problem is the API's error document.
type Problem = server.Problem

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// Do sends one request. body may be nil, a string, []byte or any JSON value;
// headers are name, value pairs.
func (c *Client) Do(ctx context.Context, method, path string, body any, headers ...string) (Response, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			return Response{}, fmt.Errorf("encode body: %w", err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return Response{}, fmt.Errorf("new request: %w", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Key != "" {
		req.Header.Set("Authorization", "Bearer "+c.Key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return Response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: out}, nil
}

// expect sends a request and fails unless the answer has status want.
func (c *Client) expect(ctx context.Context, want int, v any, method, path string, body any, headers ...string) error {
	r, err := c.Do(ctx, method, path, body, headers...)
	if err != nil {
		return err
	}
	if r.Status != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", method, path, r.Status, want, truncate(r.Body, 300))
	}
	if v != nil {
		return r.Decode(v)
	}
	return nil
}

// Paths of the sandbox providers: provider, method and extra transaction fields.
var Providers = []struct {
	Name   string
	Fields map[string]any
}{
	{"cardpay", map[string]any{"provider": "cardpay", "method": "card"}},
	{"paydesk", map[string]any{"provider": "paydesk", "method": "card"}},
	{"orchestra", map[string]any{"provider": "orchestra", "method": "card", "currency": "USD"}},
	{"momo", map[string]any{"provider": "momo", "method": "mobile_money", "currency": "KES",
		"payoutDestination": map[string]any{"type": "mobile_money", "mobileNumber": "+254700000001", "network": "MPESA"}}},
	{"banktransfer", map[string]any{"provider": "banktransfer", "method": "bank_transfer", "payoutDestination": map[string]any{
		"type": "bank_account", "accountHolder": "Ada Lovelace", "iban": "DE89370400440532013000", "country": "DE"}}},
}

// Transaction is a registered original payment.
type Transaction struct {
	SessionID string
	ID        string
	Currency  string
}

// CreateTransaction registers a session and a captured transaction (cardpay,
// 10000 EUR unless fields say otherwise).
func (c *Client) CreateTransaction(ctx context.Context, fields map[string]any) (Transaction, error) {
	var sess struct{ SessionID string }
	if err := c.expect(ctx, http.StatusCreated, &sess, "POST", "/v1/sessions", map[string]any{}); err != nil {
		return Transaction{}, err
	}
	body := map[string]any{"sessionId": sess.SessionID, "provider": "cardpay", "method": "card", "amount": 10000,
		"currency": "EUR", "status": "CAPTURED", "providerReference": "pay_" + uuid.NewString()[:8]}
	for k, v := range fields {
		body[k] = v
	}
	var tx struct {
		TransactionID string
		Currency      string
	}
	if err := c.expect(ctx, http.StatusCreated, &tx, "POST", "/v1/transactions", body); err != nil {
		return Transaction{}, err
	}
	return Transaction{SessionID: sess.SessionID, ID: tx.TransactionID, Currency: tx.Currency}, nil
}

// RefundBody is the usual create-refund body: amount of tx.
func RefundBody(tx Transaction, amount int64) map[string]any {
	return map[string]any{"originalTransactionId": tx.ID, "refundValue": map[string]any{"amount": amount, "currency": tx.Currency}}
}

// CreateRefund posts body with an idempotency key (a fresh one when key is "").
func (c *Client) CreateRefund(ctx context.Context, body any, key string) (Response, error) {
	if key == "" {
		key = uuid.NewString()
	}
	return c.Do(ctx, "POST", "/v1/refunds", body, "Idempotency-Key", key)
}

// Refund creates a refund that must be accepted and returns its id.
func (c *Client) Refund(ctx context.Context, tx Transaction, amount int64) (string, error) {
	var o refund.Object
	if err := c.expect(ctx, http.StatusAccepted, &o, "POST", "/v1/refunds", RefundBody(tx, amount), "Idempotency-Key", uuid.NewString()); err != nil {
		return "", err
	}
	return o.TransactionID.String(), nil
}

// GetRefund reads a refund.
func (c *Client) GetRefund(ctx context.Context, id string) (refund.Object, error) {
	var o refund.Object
	err := c.expect(ctx, http.StatusOK, &o, "GET", "/v1/refunds/"+id, nil)
	return o, err
}

// TransactionState is the balance part of GET /v1/transactions/{id}.
type TransactionState struct {
	Amount, RefundedAmount, ReservedAmount, RefundableAmount int64
	Status                                                   refund.TxStatus
}

// GetTransaction reads a transaction's balance.
func (c *Client) GetTransaction(ctx context.Context, id string) (TransactionState, error) {
	var o TransactionState
	err := c.expect(ctx, http.StatusOK, &o, "GET", "/v1/transactions/"+id, nil)
	return o, err
}

// AttemptsTo is the event's delivery attempts to one endpoint, oldest first.
func AttemptsTo(d server.EventDetail, endpoint uuid.UUID) []server.WebhookAttemptObject {
	var out []server.WebhookAttemptObject
	for _, a := range d.Attempts {
		if a.EndpointID == endpoint {
			out = append(out, a)
		}
	}
	return out
}
