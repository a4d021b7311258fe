package sandbox_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/backflow/backflow/providers/internal/fixture"
)

// TestSandboxFixtures sends every request fixture of the documents to the
// sandbox, creates first and status checks after, and compares each answer
// with its answer fixture; fields the provider generates compare by type.
func TestSandboxFixtures(t *testing.T) {
	t.Parallel()
	for _, provider := range []string{"cardpay", "paydesk", "orchestra", "momo", "banktransfer"} {
		t.Run(provider, func(t *testing.T) {
			t.Parallel()
			_, srv := newServer(t)
			set := fixture.Open("../testdata", provider)
			names, err := set.Exchanges()
			if err != nil || len(names) == 0 {
				t.Fatalf("no %s fixtures: %v", provider, err)
			}
			var creates, reads []string
			for _, name := range names {
				req, err := set.Request(name)
				if err != nil {
					t.Fatal(err)
				}
				if req.Method == http.MethodGet {
					reads = append(reads, name)
				} else {
					creates = append(creates, name)
				}
			}
			for _, name := range append(creates, reads...) {
				checkExchange(t, srv.URL, set, name)
			}
		})
	}
}

func checkExchange(t *testing.T, baseURL string, set fixture.Set, name string) {
	t.Helper()
	req, err := set.Request(name)
	if err != nil {
		t.Fatal(err)
	}
	want, err := set.Response(name)
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader
	if len(req.Body) > 0 {
		body = bytes.NewReader(req.Body)
	}
	r, err := http.NewRequest(req.Method, baseURL+req.Path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.Headers {
		r.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: read answer: %v", name, err)
	}
	if resp.StatusCode != want.Status {
		t.Errorf("%s: status %d, want %d; answer %s", name, resp.StatusCode, want.Status, got)
		return
	}
	for k, v := range want.Headers {
		if g := resp.Header.Get(k); g != v {
			t.Errorf("%s: header %s = %q, want %q", name, k, g, v)
		}
	}
	gotBody, err := fixture.Masked(got, want.Generated)
	if err != nil {
		t.Fatalf("%s: answer %q: %v", name, got, err)
	}
	wantBody, err := fixture.Masked(want.Body, want.Generated)
	if err != nil {
		t.Fatal(err)
	}
	if gotBody != wantBody {
		t.Errorf("%s: answer\n got %s\nwant %s", name, strings.TrimSpace(gotBody), wantBody)
	}
}
