package providers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SandboxSignatureHeader carries the signature of sandbox PSP callbacks.
const SandboxSignatureHeader = "Sandbox-Signature"

// SignatureTolerance is how far a callback's signed timestamp may be from now.
const SignatureTolerance = 5 * time.Minute

// ErrInvalidSignature is wrapped by every callback verification failure; the
// callback endpoint answers it with 400 and does not act on the body.
var ErrInvalidSignature = errors.New("invalid callback signature")

// ErrIgnoredCallback means the callback is authentic but not about a refund or
// payout (another event type); the endpoint should acknowledge and drop it.
var ErrIgnoredCallback = errors.New("callback not about a refund or payout")

// SignCallback returns a signature header value "t=<unix>,v1=<hex>" where the
// MAC is HMAC-SHA256(secret, t + "." + body). The sandbox PSP and Stripe both
// use this scheme.
func SignCallback(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// VerifySignature checks a "t=<unix>,v1=<hex>[,v1=...]" header against body
// and secret: any v1 may match (secret rotation), and t must lie within
// tolerance of now. Failures wrap ErrInvalidSignature.
func VerifySignature(header string, body []byte, secret string, now time.Time, tolerance time.Duration) error {
	if secret == "" {
		return fmt.Errorf("%w: no callback secret configured", ErrInvalidSignature)
	}
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			if sig, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: malformed header", ErrInvalidSignature)
	}
	if age := now.Sub(time.Unix(unix, 0)).Abs(); age > tolerance {
		return fmt.Errorf("%w: timestamp outside tolerance (%s)", ErrInvalidSignature, age.Round(time.Second))
	}
	want := mac(secret, ts, body)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching signature", ErrInvalidSignature)
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte("."))
	h.Write(body)
	return h.Sum(nil)
}

// verifySandboxCallback checks the Sandbox-Signature of a callback.
func verifySandboxCallback(header http.Header, body []byte, secret string) error {
	return VerifySignature(header.Get(SandboxSignatureHeader), body, secret, time.Now(), SignatureTolerance)
}
