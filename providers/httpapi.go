package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of a provider answer is read.
const maxResponseBytes = 1 << 20

// errorDecoder turns a provider's non-2xx answer into a typed error, usually
// by extracting the provider's error code and calling classify.
type errorDecoder func(status int, header http.Header, body []byte) *Error

// httpAPI is the HTTP plumbing every connector shares: base URL, client,
// authentication and the provider's error format.
type httpAPI struct {
	provider  string
	baseURL   string
	client    *http.Client
	authorize func(*http.Request)
	decodeErr errorDecoder
}

// doJSON sends in (if not nil) as JSON and decodes a 2xx answer into out.
func (a *httpAPI) doJSON(ctx context.Context, method, path, idempotencyKey string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encode %s request: %w", a.provider, err)
		}
	}
	return a.do(ctx, method, path, idempotencyKey, "application/json", body, out)
}

// doForm sends form as application/x-www-form-urlencoded.
func (a *httpAPI) doForm(ctx context.Context, method, path, idempotencyKey string, form url.Values, out any) error {
	return a.do(ctx, method, path, idempotencyKey, "application/x-www-form-urlencoded", []byte(form.Encode()), out)
}

// do sends one request. Transport failures and unreadable answers are
// retryable: the provider may have acted, and the idempotency key makes the
// retry safe.
func (a *httpAPI) do(ctx context.Context, method, path, idempotencyKey, contentType string, body []byte, out any) error {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.baseURL+path, reader)
	if err != nil {
		return Invalid("bad_request", fmt.Sprintf("build %s request: %v", a.provider, err))
	}
	// A request carrying an Idempotency-Key is one Go's transport may resend
	// by itself on a reused connection that died: never, for us. Every send
	// after the first must go through the look-up, so the answer to a second
	// request is never taken for the first's.
	req.GetBody = nil
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	a.authorize(req)

	resp, err := a.client.Do(req)
	if err != nil {
		return Retryable("network", "", fmt.Errorf("send %s %s request: %w", a.provider, method, err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return Retryable("network", "", fmt.Errorf("read %s answer: %w", a.provider, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := a.decodeErr(resp.StatusCode, resp.Header, data)
		e.HTTPStatus = resp.StatusCode
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return Retryable("bad_response", "", fmt.Errorf("decode %s answer: %w", a.provider, err))
	}
	return nil
}

// classify is the common error policy (see outcome.go): 429, 408 and 5xx are
// retryable (429 with its Retry-After); a decline code or 402 is a decline,
// whatever the status (paydesk 403 amount.insufficient, Stripe card_error);
// 401/403 are credentials; 400, 404 and 422 are invalid requests; any other
// answer (409 duplicate, ...) leaves the outcome unknown.
func classify(status int, header http.Header, code, msg string, declined bool) *Error {
	if code == "" {
		code = "http_" + strconv.Itoa(status)
	}
	switch {
	case status == http.StatusTooManyRequests:
		e := Retryable(code, msg, nil)
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
		return e
	case status == http.StatusRequestTimeout || status >= 500:
		return Retryable(code, msg, nil)
	case declined || status == http.StatusPaymentRequired:
		return Declined(code, msg)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return &Error{Kind: KindAuth, Code: code, Message: msg}
	case status == http.StatusBadRequest || status == http.StatusNotFound || status == http.StatusUnprocessableEntity:
		return Invalid(code, msg)
	default:
		return &Error{Kind: KindUnknown, Code: code, Message: msg}
	}
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// envelopeError decodes {"error":{"code","message"}}, the error shape of the
// sandbox's card, mobile-money and bank APIs.
func envelopeError(status int, header http.Header, body []byte) *Error {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e) // an unreadable body still classifies by status
	return classify(status, header, e.Error.Code, e.Error.Message, false)
}

// notFound turns a 404 answer to a look-up into ErrNotFound.
func notFound(err error) error {
	var pe *Error
	if errors.As(err, &pe) && pe.HTTPStatus == http.StatusNotFound {
		return &Error{Kind: ErrNotFound.Kind, Code: ErrNotFound.Code, Message: pe.Message, HTTPStatus: pe.HTTPStatus, Err: pe}
	}
	return err
}

// bearer authenticates with "Authorization: Bearer <token>".
func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// pathEscape escapes one path segment of a provider URL.
func pathEscape(s string) string { return url.PathEscape(s) }

// find reads a refund or payout: at itemPath when the provider reference is
// known, otherwise as the first entry of the list field of the answer at
// listPath, a search by idempotency key. Nothing found is ErrNotFound.
func find[T any](ctx context.Context, api *httpAPI, ref, key, itemPath, listPath, listField string) (T, error) {
	var out T
	switch {
	case ref != "":
		return out, notFound(api.doJSON(ctx, http.MethodGet, itemPath, "", nil, &out))
	case key != "":
		var page map[string]json.RawMessage
		if err := api.doJSON(ctx, http.MethodGet, listPath, "", nil, &page); err != nil {
			return out, err
		}
		// The answer decides whether a refund is sent again: only a list that
		// is there and empty means "none".
		raw, ok := page[listField]
		if !ok {
			return out, Retryable("bad_response", "", fmt.Errorf("%s list answer has no %q", api.provider, listField))
		}
		var items []T
		if err := json.Unmarshal(raw, &items); err != nil {
			return out, Retryable("bad_response", "", fmt.Errorf("decode %s list: %w", api.provider, err))
		}
		switch len(items) {
		case 0:
			return out, ErrNotFound
		case 1:
			return items[0], nil
		}
		return out, Retryable("ambiguous_lookup", fmt.Sprintf("%s found %d objects for one idempotency key", api.provider, len(items)), nil)
	default:
		return out, errNoReference
	}
}
