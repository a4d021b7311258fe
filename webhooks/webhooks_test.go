package webhooks_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backflow/backflow/webhooks"
)

const (
	testSecret  = "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
	otherSecret = "whsec_ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
)

var (
	testBody = []byte(`{"id":"0190f0a0-0000-7000-8000-000000000001","type":"refund.succeeded","sequence":2,"data":{"refund":{"status":"SUCCEEDED"}}}`)
	signedAt = time.Unix(1_750_000_000, 0)
)

// TestSignFormat checks the header against an independent computation of
// the documented format: t=<unix>,v1=<hex HMAC-SHA256(secret, t + "." + body)>.
func TestSignFormat(t *testing.T) {
	t.Parallel()
	h := hmac.New(sha256.New, []byte(testSecret))
	h.Write([]byte(strconv.FormatInt(signedAt.Unix(), 10) + "." + string(testBody)))
	want := "t=1750000000,v1=" + hex.EncodeToString(h.Sum(nil))
	if got := webhooks.Sign(testBody, []string{testSecret}, signedAt); got != want {
		t.Fatalf("Sign = %q\nwant  %q", got, want)
	}
	two := webhooks.Sign(testBody, []string{testSecret, otherSecret}, signedAt)
	if !strings.HasPrefix(two, want+",v1=") || strings.Count(two, "v1=") != 2 {
		t.Fatalf("two secrets: %q does not extend %q with a second v1", two, want)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	valid := webhooks.Sign(testBody, []string{testSecret}, signedAt)
	rotating := webhooks.Sign(testBody, []string{otherSecret, testSecret}, signedAt)
	sigOnly := strings.SplitN(valid, ",", 2)[1]
	tampered := append([]byte(nil), testBody...)
	tampered[len(tampered)-3] = 'X'
	tests := []struct {
		name      string
		body      []byte
		header    string
		secret    string
		tolerance time.Duration
		now       time.Time
		want      error // nil: valid
	}{
		{"valid", testBody, valid, testSecret, 0, signedAt.Add(time.Minute), nil},
		{"valid with the old secret during rotation", testBody, rotating, testSecret, 0, signedAt, nil},
		{"valid with the new secret during rotation", testBody, rotating, otherSecret, 0, signedAt, nil},
		{"valid with spaces around entries", testBody, strings.ReplaceAll(valid, ",", ", "), testSecret, 0, signedAt, nil},
		{"unknown schemes are ignored", testBody, valid + ",v0=abc", testSecret, 0, signedAt, nil},
		{"clock skew within tolerance", testBody, valid, testSecret, time.Minute, signedAt.Add(-59 * time.Second), nil},
		{"tampered body", tampered, valid, testSecret, 0, signedAt, webhooks.ErrNoMatch},
		{"wrong secret", testBody, valid, otherSecret, 0, signedAt, webhooks.ErrNoMatch},
		{"empty body", nil, valid, testSecret, 0, signedAt, webhooks.ErrNoMatch},
		{"timestamp swapped", testBody, "t=1750000001," + sigOnly, testSecret, 0, signedAt, webhooks.ErrNoMatch},
		{"old timestamp (default 5 min)", testBody, valid, testSecret, 0, signedAt.Add(5*time.Minute + time.Second), webhooks.ErrTimestamp},
		{"old timestamp (custom tolerance)", testBody, valid, testSecret, 30 * time.Second, signedAt.Add(31 * time.Second), webhooks.ErrTimestamp},
		{"future timestamp", testBody, valid, testSecret, 0, signedAt.Add(-6 * time.Minute), webhooks.ErrTimestamp},
		{"empty header", testBody, "", testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"no timestamp", testBody, sigOnly, testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"no signature", testBody, "t=1750000000", testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"timestamp not a number", testBody, "t=yesterday," + sigOnly, testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"two timestamps", testBody, "t=1750000000," + valid, testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"signature not hex", testBody, "t=1750000000,v1=zz", testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"signature truncated", testBody, valid[:len(valid)-2], testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"entry without value", testBody, valid + ",v1=", testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
		{"garbage", testBody, "sha256=deadbeef", testSecret, 0, signedAt, webhooks.ErrMalformedHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := webhooks.Verify(tc.body, tc.header, tc.secret, tc.tolerance, tc.now)
			if tc.want == nil && err != nil {
				t.Fatalf("Verify = %v, want valid", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := webhooks.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || !strings.HasPrefix(a, webhooks.SecretPrefix) || len(a) != len(webhooks.SecretPrefix)+64 {
		t.Fatalf("secrets %q and %q: want distinct whsec_ + 64 hex characters", a, b)
	}
}

// ExampleVerify shows a receiver checking a delivery: the raw body, the
// Backflow-Signature header and the endpoint's secret.
func ExampleVerify() {
	secret := "whsec_0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
	body := []byte(`{"id":"0190f0a0-0000-7000-8000-000000000001","type":"refund.succeeded"}`)
	now := time.Unix(1_750_000_000, 0)
	header := webhooks.Sign(body, []string{secret}, now) // what Backflow sends

	if err := webhooks.Verify(body, header, secret, webhooks.DefaultTolerance, now.Add(2*time.Second)); err != nil {
		fmt.Println("reject:", err)
		return
	}
	fmt.Println("verified")

	err := webhooks.Verify([]byte(`{"forged":true}`), header, secret, webhooks.DefaultTolerance, now)
	fmt.Println(errors.Is(err, webhooks.ErrNoMatch))
	// Output:
	// verified
	// true
}
