package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client calls the ops API with an ops key.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Key     string // an API key with the ops scope
	HTTP    *http.Client
}

// APIError is a problem document the API answered with.
type APIError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors,omitempty"`
}

func (e *APIError) Error() string {
	msg := fmt.Sprintf("%s (HTTP %d %s)", e.Detail, e.Status, e.Code)
	for _, f := range e.Errors {
		msg += fmt.Sprintf("\n  %s: %s", f.Field, f.Message)
	}
	return msg
}

// ListFilter narrows ListRefunds.
type ListFilter struct {
	Stuck      bool
	Status     string
	Provider   string
	MerchantID string
	Cursor     string
	Limit      int
}

// ListRefunds lists refunds across merchants, newest first.
func (c *Client) ListRefunds(ctx context.Context, f ListFilter) (RefundPage, []byte, error) {
	q := url.Values{}
	if f.Stuck {
		q.Set("stuck", "true")
	}
	for k, v := range map[string]string{"status": f.Status, "provider": f.Provider, "merchantId": f.MerchantID, "cursor": f.Cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if f.Limit > 0 {
		q.Set("limit", fmt.Sprint(f.Limit))
	}
	var page RefundPage
	raw, err := c.do(ctx, http.MethodGet, "/v1/ops/refunds?"+q.Encode(), nil, &page)
	return page, raw, err
}

// ShowRefund returns everything known about one refund.
func (c *Client) ShowRefund(ctx context.Context, id string) (RefundDetail, []byte, error) {
	var d RefundDetail
	raw, err := c.do(ctx, http.MethodGet, "/v1/ops/refunds/"+url.PathEscape(id), nil, &d)
	return d, raw, err
}

// RefundAction runs retry, cancel, approve or reject on a refund.
func (c *Client) RefundAction(ctx context.Context, action, id string, req ActionRequest) (ActionResult, []byte, error) {
	var res ActionResult
	raw, err := c.do(ctx, http.MethodPost, "/v1/ops/refunds/"+url.PathEscape(id)+"/"+action, req, &res)
	return res, raw, err
}

// Redeliver starts a new delivery of an event.
func (c *Client) Redeliver(ctx context.Context, eventID string) (ActionResult, []byte, error) {
	var res ActionResult
	raw, err := c.do(ctx, http.MethodPost, "/v1/ops/events/"+url.PathEscape(eventID)+"/redeliver", nil, &res)
	return res, raw, err
}

// Audit lists ops audit entries, newest first, optionally of one refund.
func (c *Client) Audit(ctx context.Context, refundID string, limit int) (AuditPage, []byte, error) {
	q := url.Values{}
	if refundID != "" {
		q.Set("refundId", refundID)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var page AuditPage
	raw, err := c.do(ctx, http.MethodGet, "/v1/ops/audit?"+q.Encode(), nil, &page)
	return page, raw, err
}

// do sends one request and decodes the answer into out; it returns the raw
// body too, for --json.
func (c *Client) do(ctx context.Context, method, path string, body, out any) ([]byte, error) {
	if c.Key == "" {
		return nil, errors.New("no ops key: set BACKFLOW_OPS_KEY (the dev stack writes it to .dev/demo.env)")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Key)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the Backflow API at %s (set BACKFLOW_URL): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 400 {
		apiErr := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(raw, apiErr) != nil || apiErr.Detail == "" {
			apiErr.Detail = strings.TrimSpace(string(raw))
			if apiErr.Detail == "" {
				apiErr.Detail = http.StatusText(resp.StatusCode)
			}
		}
		apiErr.Status = resp.StatusCode
		return raw, apiErr
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return raw, fmt.Errorf("decode %s %s response: %w", method, path, err)
		}
	}
	return raw, nil
}
