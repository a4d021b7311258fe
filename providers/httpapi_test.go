package providers

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A look-up by key decides whether a refund is sent again: only a list that
// is present and empty means the provider holds none.
func TestFindByKeyTrustsOnlyAClearAnswer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body string
		notFound   bool
		code       string
	}{
		{"empty list", `{"refunds":[]}`, true, ""},
		{"one match", `{"refunds":[{"id":"r1"}]}`, false, ""},
		{"list field missing", `{"data":[]}`, false, "bad_response"},
		{"list of the wrong shape", `{"refunds":{"id":"r1"}}`, false, "bad_response"},
		{"several for one key", `{"refunds":[{"id":"r1"},{"id":"r2"}]}`, false, "ambiguous_lookup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			api := &httpAPI{provider: "p", baseURL: srv.URL, client: srv.Client(), authorize: func(*http.Request) {}, decodeErr: envelopeError}
			got, err := find[struct{ ID string }](context.Background(), api, "", "key-1", "", "/refunds?idempotencyKey=key-1", "refunds")
			switch {
			case tc.notFound:
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want ErrNotFound", err)
				}
			case tc.code == "":
				if err != nil || got.ID != "r1" {
					t.Fatalf("got %+v, %v", got, err)
				}
			default:
				var pe *Error
				if !errors.As(err, &pe) || pe.Kind != KindRetryable || pe.Code != tc.code || errors.Is(err, ErrNotFound) {
					t.Fatalf("err = %v, want retryable %s", err, tc.code)
				}
			}
		})
	}
}

// recordingTransport keeps the requests a client sends.
type recordingTransport struct{ reqs []*http.Request }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.reqs = append(r.reqs, req)
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(strings.NewReader(`{}`)), Header: http.Header{}}, nil
}

// Go's transport silently resends a request with an Idempotency-Key on a
// reused connection that died before the answer. A provider send must not
// be resent behind the look-up's back: its body cannot be replayed.
func TestSendsAreNeverReplayedByTheTransport(t *testing.T) {
	t.Parallel()
	rt := &recordingTransport{}
	api := &httpAPI{provider: "p", baseURL: "http://provider.test", client: &http.Client{Transport: rt},
		authorize: func(*http.Request) {}, decodeErr: envelopeError}
	if err := api.doJSON(context.Background(), http.MethodPost, "/refunds", "refund-1", map[string]int{"amount": 1}, nil); err != nil {
		t.Fatal(err)
	}
	req := rt.reqs[0]
	if req.Header.Get("Idempotency-Key") != "refund-1" || req.GetBody != nil {
		t.Fatalf("request key %q, GetBody set %t: the transport may replay it", req.Header.Get("Idempotency-Key"), req.GetBody != nil)
	}
}
