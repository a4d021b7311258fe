package rig

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// echoHeader marks CallbackEcho's own copies so they are not copied again.
const echoHeader = "X-Reliability-Echo"

type callback struct {
	path   string
	header http.Header
	body   []byte
}

// CallbackEcho sits in front of the API and doubles every provider
// callback: each one is sent again at once, concurrently (a duplicate), and
// kept so Replay can send it again after the refund finished (a late one).
type CallbackEcho struct {
	apiURL string
	client *http.Client

	mu         sync.Mutex
	seen       []callback
	duplicates int
	replayed   int
	wg         sync.WaitGroup
}

// NewCallbackEcho returns an echo; call SetAPIURL before traffic flows.
func NewCallbackEcho() *CallbackEcho { return &CallbackEcho{client: &http.Client{}} }

// SetAPIURL is where duplicates go.
func (e *CallbackEcho) SetAPIURL(u string) {
	e.mu.Lock()
	e.apiURL = u
	e.mu.Unlock()
}

// Wrap is the API middleware.
func (e *CallbackEcho) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/provider-callbacks/") && r.Header.Get(echoHeader) == "" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			cb := callback{path: r.URL.Path, header: r.Header.Clone(), body: body}
			e.mu.Lock()
			e.seen = append(e.seen, cb)
			e.duplicates++
			url := e.apiURL
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = e.send(context.Background(), url, cb)
			}()
		}
		next.ServeHTTP(w, r)
	})
}

func (e *CallbackEcho) send(ctx context.Context, apiURL string, cb callback) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, apiURL+cb.path, bytes.NewReader(cb.body))
	if err != nil {
		return 0, err
	}
	req.Header = cb.header.Clone()
	req.Header.Set(echoHeader, "1")
	resp, err := e.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Replay sends every callback seen so far once more (late callbacks) and
// fails unless each is acknowledged with 200.
func (e *CallbackEcho) Replay(ctx context.Context) (int, error) {
	e.wg.Wait()
	e.mu.Lock()
	all := append([]callback(nil), e.seen...)
	url := e.apiURL
	e.mu.Unlock()
	for _, cb := range all {
		code, err := e.send(ctx, url, cb)
		if err != nil {
			return 0, fmt.Errorf("late callback: %w", err)
		}
		if code != http.StatusOK {
			return 0, fmt.Errorf("late callback to %s answered %d", cb.path, code)
		}
	}
	e.mu.Lock()
	e.replayed += len(all)
	e.mu.Unlock()
	return len(all), nil
}

// Counts returns how many callbacks were duplicated and replayed late.
func (e *CallbackEcho) Counts() (duplicated, late int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.duplicates, e.replayed
}
