package providers

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestVerifySignature(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"data":{"id":"r1"}}`)
	const secret = "s3cret"
	valid := SignCallback(secret, now, body)
	tests := []struct {
		name   string
		header string
		body   []byte
		secret string
		ok     bool
	}{
		{name: "valid", header: valid, body: body, secret: secret, ok: true},
		{name: "within tolerance", header: SignCallback(secret, now.Add(-4*time.Minute), body), body: body, secret: secret, ok: true},
		{name: "rotated: any v1 matches", header: valid + ",v1=" + "00ff", body: body, secret: secret, ok: true},
		{name: "tampered body", header: valid, body: []byte(`{"data":{"id":"r2"}}`), secret: secret},
		{name: "wrong secret", header: SignCallback("other", now, body), body: body, secret: secret},
		{name: "old timestamp", header: SignCallback(secret, now.Add(-6*time.Minute), body), body: body, secret: secret},
		{name: "future timestamp", header: SignCallback(secret, now.Add(6*time.Minute), body), body: body, secret: secret},
		{name: "no header", header: "", body: body, secret: secret},
		{name: "no v1", header: "t=1800000000", body: body, secret: secret},
		{name: "garbage", header: "t=abc,v1=zz", body: body, secret: secret},
		{name: "no secret configured", header: SignCallback("", now, body), body: body, secret: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := VerifySignature(tt.header, tt.body, tt.secret, now, SignatureTolerance)
			if tt.ok && err != nil {
				t.Fatalf("VerifySignature() = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidSignature) {
				t.Fatalf("VerifySignature() = %v, want ErrInvalidSignature", err)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{"120", 2 * time.Minute},
		{"-3", 0},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{"soon", 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	err := notFound(&Error{Kind: KindInvalid, Code: "refund_not_found", HTTPStatus: http.StatusNotFound})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("a 404 look-up is not ErrNotFound: %v", err)
	}
	if errors.Is(Invalid("payment.not-found", ""), ErrNotFound) {
		t.Error("an invalid create matches ErrNotFound")
	}
	if KindOf(err) != KindRetryable {
		t.Errorf("KindOf(not found) = %s", KindOf(err))
	}
}
