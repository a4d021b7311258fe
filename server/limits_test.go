package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/internal/rig"
	"github.com/backflow/backflow/server"
)

// rawRequest sends head and body whole before reading the answer.
func rawRequest(t *testing.T, apiURL, head string, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, out, err := rig.SendRaw(apiURL, append([]byte(head), body...))
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func assertTooLarge(t *testing.T, apiURL, head string, sent []byte) {
	t.Helper()
	resp, body := rawRequest(t, apiURL, head, sent)
	var p server.Problem
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Content-Type") != "application/problem+json" ||
		json.Unmarshal(body, &p) != nil || p.Code != server.CodeTooLarge || p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("answer %d %s: %s, want 413 %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, server.CodeTooLarge)
	}
}

// TestOversizedBody: a body over the limit is 413 request.too_large, and a
// client that sends all of it before reading receives that answer (the
// server reads the rest, up to a bound, before closing), whether the body
// has a Content-Length or is chunked, on every kind of route.
func TestOversizedBody(t *testing.T) {
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true})
	big := bytes.Repeat([]byte("x"), 6<<20)
	for _, tc := range []struct{ name, path, headers string }{
		{"create refund", "/v1/refunds", "Authorization: Bearer " + s.MerchantKey + "\r\n"},
		{"with an Idempotency-Key", "/v1/refunds", "Authorization: Bearer " + s.MerchantKey + "\r\nIdempotency-Key: big-1\r\n"},
		{"ops action", "/v1/ops/merchants", "Authorization: Bearer " + s.OpsKey + "\r\n"},
		{"provider callback", "/v1/provider-callbacks/cardpay", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", tc.path, tc.headers, len(big))
			assertTooLarge(t, s.APIURL, head, big)

			head = fmt.Sprintf("POST %s HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n%sTransfer-Encoding: chunked\r\n\r\n", tc.path, tc.headers)
			assertTooLarge(t, s.APIURL, head, rig.Chunked(big))
		})
	}
	// A client that waits for 100-continue gets the 413 without sending the body.
	t.Run("expect 100-continue", func(t *testing.T) {
		head := fmt.Sprintf("POST /v1/refunds HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n",
			s.MerchantKey, len(big))
		assertTooLarge(t, s.APIURL, head, nil)
	})
	// Go's own client, which writes while it reads, gets it too.
	t.Run("http.Client", func(t *testing.T) {
		r := s.Do(t, "POST", "/v1/refunds", big)
		rig.AssertProblem(t, r, http.StatusRequestEntityTooLarge, server.CodeTooLarge)
	})
	// Under the limit the body is read as usual.
	r := s.Do(t, "POST", "/v1/refunds", `{"sessionId": "`+strings.Repeat("a", 60<<10)+`"}`)
	rig.AssertProblem(t, r, http.StatusBadRequest, server.CodeMalformed)
}

// TestSlowClients: a client trickling its headers or its body loses the
// connection at the server's read timeouts; oversized headers are refused.
func TestSlowClients(t *testing.T) {
	limits := server.Limits{ReadHeaderTimeout: 500 * time.Millisecond, ReadTimeout: time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: time.Second, MaxHeaderBytes: 8 << 10}
	s := rig.StartStack(t, rig.StackOptions{NoWorker: true, HTTPLimits: limits})
	u, _ := url.Parse(s.APIURL)
	trickle := func(t *testing.T, head, drip string) time.Duration {
		t.Helper()
		d, err := rig.Trickle(s.APIURL, head, drip)
		if err != nil || d >= 10*time.Second {
			t.Fatalf("the server kept a trickling connection %s (%v)", d, err)
		}
		return d
	}
	t.Run("headers", func(t *testing.T) {
		if d := trickle(t, "GET /v1/refunds HTTP/1.1\r\nHost: api\r\n", "X-Slow: 1\r\n"); d < limits.ReadHeaderTimeout*4/5 || d > 3*time.Second {
			t.Fatalf("closed after %s, want about %s", d, limits.ReadHeaderTimeout)
		}
	})
	t.Run("body", func(t *testing.T) {
		head := "POST /v1/refunds HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer " + s.MerchantKey + "\r\nContent-Length: 60000\r\n\r\n{"
		if d := trickle(t, head, " "); d < limits.ReadTimeout*4/5 || d > 4*time.Second {
			t.Fatalf("closed after %s, want about %s", d, limits.ReadTimeout)
		}
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		_, _ = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: api\r\n\r\n")
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("an idle connection was kept %s", d)
		}
	})
	t.Run("header size", func(t *testing.T) {
		head := "GET /v1/refunds HTTP/1.1\r\nHost: api\r\nX-Big: " + strings.Repeat("h", 16<<10) + "\r\n\r\n"
		resp, _ := rawRequest(t, s.APIURL, head, nil)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("16 KiB of headers: %d, want 431", resp.StatusCode)
		}
	})
}
